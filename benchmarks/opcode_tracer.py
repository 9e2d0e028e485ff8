"""Run a Python program counting the bytecode instructions it executes, per function.

    python benchmarks/opcode_tracer.py OUT -m proxy run ...
    python benchmarks/opcode_tracer.py OUT script.py args...

Counting starts at the first SIGUSR2 and stops at the second, when the counts are
written to OUT as JSON: per function ("file:line name") the instructions executed in
its own frames and the times it was called. `bench_opcodes.py` uses it to read a
proxy's work per request under load: unlike CPU time, the count does not move with
what else the machine is running.
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import threading
from collections import Counter
from types import CodeType, FrameType
from typing import Any

ops: Counter[CodeType] = Counter()
calls: Counter[CodeType] = Counter()
counting = False


def _opcode(frame: FrameType, event: str, arg: Any) -> Any:
    if event == "opcode" and counting:
        ops[frame.f_code] += 1
    return _opcode


def _call(frame: FrameType, event: str, arg: Any) -> Any:
    if event != "call":
        return None
    if counting:
        calls[frame.f_code] += 1
    frame.f_trace_opcodes = True
    frame.f_trace_lines = False
    return _opcode


def name(code: CodeType) -> str:
    path = code.co_filename
    for marker in ("site-packages/", f"{os.getcwd()}/"):
        path = path.split(marker)[-1]
    return f"{path}:{code.co_firstlineno} {code.co_qualname}"


def _toggle(out: str) -> None:
    global counting
    if not counting:
        ops.clear()
        calls.clear()
        counting = True
        return
    counting = False
    rows = {name(c): [n, calls.get(c, 0)] for c, n in ops.items()}
    for c, n in calls.items():
        rows.setdefault(name(c), [0, n])
    with open(out + ".part", "w") as f:
        json.dump(rows, f)
    os.replace(out + ".part", out)


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out, rest = sys.argv[1], sys.argv[2:]
    signal.signal(signal.SIGUSR2, lambda *_: _toggle(out))
    sys.settrace(_call)
    threading.settrace(_call)
    if rest[0] == "-m":
        sys.argv = [rest[1], *rest[2:]]
        runpy.run_module(rest[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = rest
        sys.path.insert(0, os.path.dirname(os.path.abspath(rest[0])))
        runpy.run_path(rest[0], run_name="__main__")


if __name__ == "__main__":
    main()
