"""The Python floor is stated once in the package and agrees with pyproject's."""

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
