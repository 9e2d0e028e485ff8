"""benchmarks/opcode_tracer.py: what bench_opcodes.py reads a proxy's work with."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

TRACER = Path(__file__).resolve().parent.parent / "benchmarks" / "opcode_tracer.py"

SCRIPT = """
import sys, time
def small():
    return 1
def large():
    total = 0
    for i in range(50):
        total += i
    return total
open(sys.argv[1], "w").close()
while True:
    small(); large()
    time.sleep(0.001)
"""


def wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_counts_only_between_the_two_signals_per_function(tmp_path: Path) -> None:
    script, ready, out = tmp_path / "work.py", tmp_path / "ready", tmp_path / "counts.json"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(TRACER), str(out), str(script), str(ready)])
    try:
        wait_for(ready)
        time.sleep(0.2)
        assert not out.exists()                 # nothing written before counting ends
        proc.send_signal(signal.SIGUSR2)
        time.sleep(0.5)
        proc.send_signal(signal.SIGUSR2)
        wait_for(out)
    finally:
        proc.kill()
        proc.wait()
    rows = json.loads(out.read_text())
    (small_ops, small_calls), = (v for k, v in rows.items() if k.endswith(" small"))
    (large_ops, large_calls), = (v for k, v in rows.items() if k.endswith(" large"))
    assert small_calls > 10 and abs(small_calls - large_calls) <= 1
    # The loop of 50 runs a few hundred instructions per call; `small` a handful.
    assert 100 < large_ops / large_calls < 1000
    assert small_ops / small_calls < 10
