"""What `pip install .` needs: the Python floor the package checks, and every package."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import proxy

REPO = Path(__file__).resolve().parents[1]


def test_requires_python_is_the_floor_the_package_checks() -> None:
    spec = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    floor = re.fullmatch(r">=(\d+)\.(\d+)\.(\d+)", spec.split("#")[0].strip())
    assert floor is not None, spec
    assert tuple(int(x) for x in floor.groups()) == proxy.MIN_PYTHON


def test_possessive_quantifiers_match_as_atomic_groups_here() -> None:
    """The CPython bug the floor keeps out (python/cpython#106052): a possessive
    repeat must never match where the same atomic group does not."""
    assert re.fullmatch("(?:ab?c)*+", "a") is None
    assert re.match(rb"[^<]*+(?:<(?!/b)[^>]*+>[^<]*+)*+", b"ab<i>cd</b>").group() == b"ab<i>cd"


def test_every_package_is_installed() -> None:
    """`pip install .` ships only the packages pyproject names: a new one left out
    installs a proxy that fails on import (a checkout's tests would not notice)."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())
                 ["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts)
             for p in (REPO / "proxy").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
