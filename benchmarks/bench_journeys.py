"""The SQLite journey store's flush, with and without a busy event loop beside it.

Under load the event loop holds the GIL; the store's writer thread gets it back only
at the interpreter's switch interval (5 ms). A flush that lets go of the GIL once
per row (one sqlite3 step each) crawls then. This measures journeys flushed per
second, alone and with a thread spinning in Python (the event loop's stand-in).

    python benchmarks/bench_journeys.py [--journeys 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
import uuid

from proxy.attribution.clickids import ClickId
from proxy.attribution.journeys import JourneyStore
from proxy.attribution.visit import Visit


def visit() -> Visit:
    return Visit(links_clicked_id=uuid.uuid4().hex, new_visitor=True,
                 click_ids={"tlr_sid": ClickId(str(uuid.uuid4()), time.time())},
                 captured=["tlr_sid"], rejected=[], cookie_rejected=False, consent=True,
                 fbc=None, fbp="fb.1.1700000000000.123456789", set_cookies=[],
                 upstream_query=None)


async def flush_rate(n: int, busy: bool) -> float:
    stop = threading.Event()

    def spin() -> None:
        x = 0
        while not stop.is_set():
            x += 1

    with tempfile.TemporaryDirectory() as d:
        store = JourneyStore(os.path.join(d, "journeys.db"), max_pending=n + 1)
        await store.start()
        spinner = threading.Thread(target=spin)
        if busy:
            spinner.start()
        try:
            for _ in range(n):
                store.record(visit())
            t0 = time.perf_counter()
            await store.flush()
            return n / (time.perf_counter() - t0)
        finally:
            stop.set()
            if busy:
                spinner.join()
            await store.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--journeys", type=int, default=20_000)
    args = p.parse_args()
    for busy in (False, True):
        rate = asyncio.run(flush_rate(args.journeys, busy))
        label = "with a busy thread" if busy else "alone"
        print(f"{args.journeys:,} new journeys flushed {label:<20} {rate:>10,.0f} /s")


if __name__ == "__main__":
    main()
