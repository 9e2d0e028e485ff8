"""The WAL of a busy state file stays bounded: journey batches rewrite thousands of
pages in a few jobs, and a WAL checkpointed by job count alone grew without end
(its index, mapped by every process on the file, with it: RSS that never came back)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from pathlib import Path

from proxy.attribution.clickids import ClickId
from proxy.attribution.journeys import JourneyStore
from proxy.attribution.visit import Visit
from proxy.sqlite_worker import CHECKPOINT_BYTES, CHECKPOINT_JOBS

BATCHES, PER_BATCH = 200, 50


def new_visitor(n: int) -> Visit:
    return Visit(links_clicked_id=uuid.uuid4().hex, new_visitor=True,
                 click_ids={"tlr_sid": ClickId(str(uuid.uuid4()), 1_700_000_000.0 + n)},
                 captured=["tlr_sid"], rejected=[], cookie_rejected=False, consent=True,
                 fbc=None, fbp=None, set_cookies=[], upstream_query=None)


async def test_journey_batches_leave_a_bounded_wal(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    store = JourneyStore(path, max_pending=PER_BATCH)
    await store.start()
    largest = 0
    try:
        for b in range(BATCHES):
            for n in range(PER_BATCH):
                store.record(new_visitor(b * PER_BATCH + n))
            await store.flush()
            while store.worker.checkpoint_running:     # what was asked is done
                await asyncio.sleep(0.01)
            largest = max(largest, os.path.getsize(path + "-wal"))
        assert BATCHES < CHECKPOINT_JOBS                  # few jobs, many pages
        assert store.worker.checkpoints >= 1
    finally:
        await store.stop()
    # Restarted WALs are truncated back; each batch writes ~1 MB, all of them ~200 MB.
    assert largest <= 4 * CHECKPOINT_BYTES, largest
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM journeys").fetchone()[0] == BATCHES * PER_BATCH
