"""background.part: start, run and stop owned by app.cleanup_ctx; failures logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from aiohttp import web

from proxy.background import cancel, part, spawn


async def test_part_starts_runs_and_stops_in_order(aiohttp_client: Callable) -> None:
    seen: list[str] = []
    running = asyncio.Event()

    async def run() -> None:
        seen.append("run")
        running.set()
        try:
            await asyncio.Event().wait()
        finally:
            seen.append("cancelled")

    app = web.Application()
    app.cleanup_ctx.append(part("p", start=lambda: seen.append("start"), run=run,
                                stop=lambda: seen.append("stop")))
    client = await aiohttp_client(app)
    await running.wait()
    assert seen == ["start", "run"]
    await client.close()
    assert seen == ["start", "run", "cancelled", "stop"]


async def test_a_crashed_loop_and_a_failed_stop_are_logged_not_fatal(
        aiohttp_client: Callable, caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> None:
        raise RuntimeError("loop broke")

    async def stop() -> None:
        raise OSError("disk gone")

    later: list[str] = []
    app = web.Application()
    app.cleanup_ctx.append(part("broken", run=run, stop=stop))
    app.cleanup_ctx.append(part("later", stop=lambda: later.append("stopped")))
    with caplog.at_level(logging.ERROR, "careers_edge"):
        client = await aiohttp_client(app)
        for _ in range(3):
            await asyncio.sleep(0)
        await client.close()
    messages = [r.getMessage() for r in caplog.records]
    assert "background task broken failed" in messages
    assert "stopping broken failed" in messages
    assert later == ["stopped"]


async def test_cancel_waits_for_the_task_and_takes_none() -> None:
    await cancel(None)
    done: list[bool] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)
            done.append(True)

    task = spawn(slow(), "slow")
    await asyncio.sleep(0)
    await cancel(task)
    assert done == [True] and task.cancelled()
