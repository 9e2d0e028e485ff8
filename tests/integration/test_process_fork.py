"""`careers-edge run --workers 2`: each worker starts with the supervisor's objects
frozen (`gc.freeze()` before the fork), so its collections leave the pages it shares
with the supervisor unwritten, and uncopied."""

from __future__ import annotations

import re
from pathlib import Path

from proxy.demo.site import build_site, serve
from tests.integration.procs import running, write_rules

WORKERS = 2
SHARED = re.compile(r"worker (\d+) shares (\d+) frozen objects with the supervisor")


async def test_each_forked_worker_starts_with_the_supervisors_objects_frozen(
        tmp_path: Path) -> None:
    site_runner, upstream = await serve(build_site)
    try:
        rules = write_rules(tmp_path, upstream)
        async with running(rules, tmp=tmp_path, workers=WORKERS,
                           args=["--log-level", "DEBUG"]) as p:
            text = await p.wait_log(lambda t: len(SHARED.findall(t)) == WORKERS)
    finally:
        await site_runner.cleanup()
    frozen = {int(worker): int(n) for worker, n in SHARED.findall(text)}
    assert set(frozen) == set(range(WORKERS))
    # The supervisor has imported the whole proxy: tens of thousands of objects.
    assert all(n > 10_000 for n in frozen.values()), frozen
