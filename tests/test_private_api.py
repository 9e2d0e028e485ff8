"""The proxy uses aiohttp through its public API only: a private name could change or
vanish in any aiohttp release, under a pin that allows new ones."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.private_api import private_uses

PROXY = Path(__file__).resolve().parents[1] / "proxy"


def uses(source: str, **more: str) -> list[str]:
    files = {"m.py": textwrap.dedent(source), **{k: textwrap.dedent(v) for k, v in more.items()}}
    return [u.what for u in private_uses(files)]


def test_the_proxy_uses_no_private_aiohttp_api() -> None:
    files = {str(p.relative_to(PROXY.parent)): p.read_text() for p in PROXY.rglob("*.py")}
    found = private_uses(files)
    assert not found, "\n".join(map(str, found))


@pytest.mark.parametrize("source, expected", [
    ("""
     from aiohttp import web
     class Runner(web.BaseRunner):
         async def _make_server(self):
             return self._kwargs
     """, ["class Runner (an aiohttp subclass) overrides _make_server",
           "class Runner (an aiohttp subclass) reads self._kwargs"]),
    ("""
     from aiohttp import web
     class Request(web.BaseRequest):
         async def _prepare_hook(self, response):
             pass
     """, ["class Request (an aiohttp subclass) overrides _prepare_hook"]),
    ("""
     import aiohttp.web
     class Held(aiohttp.web.StreamResponse):
         def __init__(self):
             super().__init__()
             self._send_headers_immediately = False
     """, ["class Held (an aiohttp subclass) sets self._send_headers_immediately"]),
    ("""
     from aiohttp.web import Response as R
     class Mine(R):
         _send_headers_immediately = False
         __slots__ = ("_req", "mine")
     """, ["class Mine (an aiohttp subclass) sets _send_headers_immediately",
           "class Mine (an aiohttp subclass) declares slot _req"]),
    ("""
     async def hook(request, resp):
         await request._prepare_hook(resp)
         return request.protocol._keepalive
     """, ["reads _prepare_hook, private on aiohttp's classes",
           "reads _keepalive, private on aiohttp's classes"]),
    ("""
     from aiohttp._http_writer import _serialize_headers
     import aiohttp._websocket.reader
     """, ["imports _serialize_headers from aiohttp._http_writer",
           "imports aiohttp._websocket.reader"]),
])
def test_each_kind_of_private_use_is_found(source: str, expected: list[str]) -> None:
    assert sorted(uses(source)) == sorted(expected)


def test_a_subclass_of_a_subclass_in_another_module_is_still_an_aiohttp_subclass() -> None:
    found = uses("""
        from proxy.http.server import EdgeRequest
        class Deeper(EdgeRequest):
            def _finish(self):
                pass
        """)
    assert found == ["class Deeper (an aiohttp subclass) overrides _finish"]


def test_our_own_private_names_are_ours() -> None:
    """`_finish` is aiohttp's too, but here it is read on our own object; `self._x`
    in a class of ours and a named tuple's `_replace` are no aiohttp API either."""
    assert uses("""
        import asyncio
        from aiohttp import web
        class Body:
            def __init__(self):
                self._loop = asyncio.get_running_loop()
            def _finish(self):
                return self._loop
        def done(body: Body, url):
            body._finish()
            return url._replace(path="/")
        class Seam(web.StreamResponse):
            def __init__(self):
                super().__init__()
                self.held = []
            async def write(self, data):
                self.held.append(data)
        """) == []
