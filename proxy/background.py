"""Background work, one way: a part owned by `app.cleanup_ctx`.

`part(...)` is what `build_app` appends to `app.cleanup_ctx`: on startup it awaits the
part's `start`, then runs its `run` loop as a task; on shutdown it cancels and awaits
that task, then awaits `stop`. A part's own tasks (a sink's loop, a flusher) go through
`spawn` and `cancel` below. A crashed loop or a failed stop is logged, never fatal:
one broken part must not take the visitors' pages or the other parts down with it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

log = logging.getLogger("careers_edge")

T = TypeVar("T")
Step = Callable[[], Awaitable[None] | None]
CleanupCtx = Callable[[web.Application], AsyncIterator[None]]

__all__ = ["CleanupCtx", "cancel", "part", "spawn"]


def spawn(coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    """`coro` as a named task whose crash is logged (a cancel is no crash)."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    task.add_done_callback(_log_crash)
    return task


async def cancel(task: asyncio.Future[Any] | None) -> None:
    """Cancel `task` and wait for it to end; what it raised was logged by `spawn`."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise                       # we are being cancelled ourselves: let it through
    except Exception:
        pass


def part(name: str, *, start: Step | None = None, run: Callable[[], Awaitable[None]] | None
         = None, stop: Step | None = None) -> CleanupCtx:
    """For `app.cleanup_ctx`: `start` on startup (its failure fails the startup), `run`
    as a task while the app serves, on shutdown the task cancelled and awaited, then
    `stop` (its failure logged)."""
    async def ctx(_app: web.Application) -> AsyncIterator[None]:
        if start is not None:
            await _maybe(start())
        task = spawn(_as_coro(run), name) if run is not None else None
        try:
            yield
        finally:
            await cancel(task)
            if stop is not None:
                try:
                    await _maybe(stop())
                except Exception:
                    log.exception("stopping %s failed", name)
    return ctx


async def _as_coro(run: Callable[[], Awaitable[None]]) -> None:
    await run()


async def _maybe(result: Awaitable[None] | None) -> None:
    if inspect.isawaitable(result):
        await result


def _log_crash(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("background task %s failed", task.get_name(), exc_info=exc)
