"""Shared test helpers: servers the suite needs, and the rule that CI never skips them."""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_SERVERS = os.environ.get("CAREERS_EDGE_REQUIRE_SERVERS") == "1"


def need_binary(*names: str) -> str:
    """The path of the first binary found; skip (locally) or fail (in CI) when none is."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    why = f"{' or '.join(names)} not installed"
    if REQUIRE_SERVERS:
        pytest.fail(f"{why}, and CAREERS_EDGE_REQUIRE_SERVERS=1 forbids skipping")
    pytest.skip(why)
