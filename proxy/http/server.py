"""Serving the proxy: the application's lifecycle, each request straight to the pipeline.

Every path the proxy serves goes to one handler, so aiohttp's URL dispatcher,
middleware chain and per-request signal lookup are work with no result on the
request path. `EdgeRunner` runs the `web.Application`'s startup, shutdown and
cleanup (its parts live in `cleanup_ctx`) and serves with aiohttp's low-level
`web.Server`, which hands the handler each `EdgeRequest` directly. The application
keeps its catch-all route, so it also runs under a plain `web.AppRunner`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from proxy.http.response import strip_server_defaults

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class EdgeRequest(web.BaseRequest):
    """A request outside any application: takes aiohttp's defaults back off a proxied
    response, as the application's `on_response_prepare` does."""

    __slots__ = ()

    async def _prepare_hook(self, response: web.StreamResponse) -> None:
        await strip_server_defaults(self, response)


class EdgeRunner(web.BaseRunner):
    __slots__ = ("_app", "_handler")

    def __init__(self, app: web.Application, handler: Handler, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._app = app
        self._handler = handler

    @property
    def app(self) -> web.Application:
        return self._app

    async def shutdown(self) -> None:
        await self._app.shutdown()

    async def _make_server(self) -> web.Server:
        self._app.on_startup.freeze()
        await self._app.startup()
        self._app.freeze()
        loop = asyncio.get_running_loop()

        def make_request(message: Any, payload: Any, protocol: Any, writer: Any,
                         task: asyncio.Task[None]) -> EdgeRequest:
            return EdgeRequest(message, payload, protocol, writer, task, loop)

        return web.Server(self._handler, request_factory=make_request, **self._kwargs)

    async def _cleanup_server(self) -> None:
        await self._app.cleanup()
