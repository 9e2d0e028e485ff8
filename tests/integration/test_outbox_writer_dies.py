"""A confirmation page whose submit's writer process dies under it is still served: the
loss is loud (logged, counted as an error), and the next application is written by a
new writer and delivered."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path

from proxy.demo.site import build_site
from tests.integration.harness import stack
from tests.integration.procs import apply_rule, metric_value

RULES = apply_rule("ats") + """
[sinks.ats]
type = "webhook"
url = "{recorder}/hooks/ats"
secret = "whsec-writer"
"""
FORM = {"job_title": "Line Cook", "name": "Ada", "email": "ada@example.com"}


async def test_a_page_is_served_when_the_writer_dies_under_its_submit(tmp_path: Path) -> None:
    async with stack(build_site, RULES, tmp=tmp_path) as s:
        writer = s.edge.outbox.writer
        first = writer.pid
        assert first is not None                  # started with the app
        async with s.session() as c:
            async with c.get("/jobs/2") as r:
                assert r.status == 200
            lock = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
            lock.execute("BEGIN IMMEDIATE")       # the submit waits in the child
            post = asyncio.ensure_future(c.post("/jobs/2/apply", data=FORM,
                                                allow_redirects=False))
            while writer.in_flight == 0:
                await asyncio.sleep(0.01)
            os.kill(first, signal.SIGKILL)
            async with await post as r:
                assert r.status == 303
            lock.execute("ROLLBACK")
            lock.close()
            assert metric_value(await s.metrics(), "edge_conversions_total",
                                sink="*", outcome="error") == 1
            async with c.post("/jobs/3/apply", data=FORM, allow_redirects=False) as r:
                assert r.status == 303
        assert writer.pid not in (None, first)
        delivery = await s.recorder.wait_for(lambda r: r.network == "webhook", timeout=15)
        assert delivery.json()["event"] == "ApplicationCompleted"
        rows = sqlite3.connect(tmp_path / "state.db").execute(
            "SELECT count(*) FROM edge_outbox").fetchone()[0]
        assert rows == 1


GO_RULES = RULES + """
[redirect]
allow = ["https://wa.me/*"]
send_to = ["ats"]
"""


async def test_a_redirect_is_served_when_the_writer_dies_under_its_submit(
        tmp_path: Path) -> None:
    """/go sends the visitor on even when the submit is lost; the loss is counted, and
    the page tracks no event the server did not keep."""
    async with stack(build_site, GO_RULES, tmp=tmp_path) as s:
        writer = s.edge.outbox.writer
        first = writer.pid
        assert first is not None
        async with s.session() as c:
            lock = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
            lock.execute("BEGIN IMMEDIATE")       # the submit waits in the child
            get = asyncio.ensure_future(c.get("/_edge/go?to=https://wa.me/4912345"))
            while writer.in_flight == 0:
                await asyncio.sleep(0.01)
            os.kill(first, signal.SIGKILL)
            async with await get as r:
                assert r.status == 200
                page = await r.text()
            lock.execute("ROLLBACK")
            lock.close()
            assert "https://wa.me/4912345" in page
            assert "RedirectPage" not in page
            assert metric_value(await s.metrics(), "edge_conversions_total",
                                sink="*", outcome="error") == 1
            async with c.get("/_edge/go?to=https://wa.me/4912345") as r:
                assert r.status == 200
                assert "RedirectPage" in await r.text()
