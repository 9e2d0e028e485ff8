"""careers-edge: a reverse proxy in front of a hosted careers site."""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

# The HTML scanners use possessive quantifiers, which CPython's `re` matched wrongly
# before 3.11.5 (python/cpython#106052, #100061): a pixel would land after `</body>`.
MIN_PYTHON = (3, 11, 5)
if sys.version_info < MIN_PYTHON:
    raise RuntimeError(f"careers-edge needs Python {'.'.join(map(str, MIN_PYTHON))} or newer, "
                       f"not {sys.version.split()[0]}")


def _version() -> str:
    """pyproject.toml's version: read from the file in a source checkout (an editable
    install's metadata is only as new as its last install), else from the installed
    distribution's metadata."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        project = tomllib.loads(pyproject.read_text("utf-8")).get("project", {})
        if project.get("name") == "careers-edge":
            return str(project["version"])
    except (OSError, ValueError, KeyError):
        pass
    try:
        return metadata.version("careers-edge")
    except metadata.PackageNotFoundError:
        return "0+unknown"


__version__ = _version()
