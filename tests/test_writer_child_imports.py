"""The writer process stays light: what it imports to write the outbox's submits and
the journeys' slices pulls in none of the event loop's world (aiohttp, the request
path), which cost each worker's writer some 20 MB for code it never runs."""

from __future__ import annotations

import subprocess
import sys

from proxy.attribution.journeys import write_journeys
from proxy.conversions.sqlite_outbox import init_submit, submit_many

HEAVY = ("aiohttp", "proxy.pipeline", "proxy.attribution.write_behind", "yarl")


def test_the_writers_batch_functions_import_nothing_heavy() -> None:
    refs = [f"{f.__module__}" for f in (write_journeys, init_submit, submit_many)]
    code = ("import sys, importlib\n"
            "import proxy.writer_process\n"
            f"for m in {refs!r}: importlib.import_module(m)\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]", f"the writer process would import {out.strip()}"
