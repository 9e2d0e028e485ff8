"""The version: pyproject.toml's, as `--version` and `edge_build_info` report it."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.integration.procs import run_cli

ROOT = Path(__file__).resolve().parents[2]


def pyproject_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]


def test_package_version_is_pyprojects() -> None:
    from proxy import __version__
    assert __version__ == pyproject_version()


async def test_cli_version_is_pyprojects(tmp_path: Path) -> None:
    done = await run_cli("--version", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"careers-edge {pyproject_version()}"
