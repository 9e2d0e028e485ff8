"""Upstream applications the proxy is tested against (real aiohttp servers)."""

from __future__ import annotations

import asyncio
import hashlib

from aiohttp import WSMsgType, web

ORIGIN_KEY = web.AppKey("origin", list)


def echo_app() -> web.Application:
    """Answers with what it received, plus endpoints for each proxy behaviour."""
    app = web.Application(client_max_size=0)
    app[ORIGIN_KEY] = [""]

    def origin(request: web.Request) -> str:
        return f"http://{request.app[ORIGIN_KEY][0] or request.host}"

    async def echo(request: web.Request) -> web.Response:
        size = 0
        while chunk := await request.content.readany():
            size += len(chunk)
        return web.json_response({
            "method": request.method,
            "raw_path": request.raw_path,
            "headers": [[n.decode("latin-1"), v.decode("latin-1")]
                        for n, v in request.raw_headers],
            "body_len": size,
        })

    async def redirect(request: web.Request) -> web.StreamResponse:
        host = request.host
        resp = web.Response(status=302, text="moved")
        resp.headers["Location"] = f"http://{host}/target?x=1"
        resp.headers["Content-Location"] = f"http://{host}/here"
        resp.headers["Refresh"] = f"5; url=http://{host}/later"
        resp.headers.add("Set-Cookie", f"sid=abc; Domain={host.split(':')[0]}; Path=/; HttpOnly")
        resp.headers.add("Set-Cookie", "lang=en; Path=/")
        resp.headers.add("Set-Cookie", "other=1; Domain=elsewhere.example; Path=/")
        return resp

    async def no_content_type(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = 5
        await resp.prepare(request)
        await resp.write(b"hello")
        return resp

    async def status(request: web.Request) -> web.StreamResponse:
        code = int(request.match_info["code"])
        resp = web.StreamResponse(status=code, reason="Custom Reason")
        if code not in (204, 304):
            resp.content_type = "text/plain"
            await resp.prepare(request)
            await resp.write(b"body")
        else:
            await resp.prepare(request)
        return resp

    async def etag(request: web.Request) -> web.Response:
        tag = '"v1"'
        if request.headers.get("If-None-Match") == tag:
            return web.Response(status=304, headers={"ETag": tag})
        return web.Response(text="<html><head></head><body>etag</body></html>",
                            content_type="text/html", headers={"ETag": tag})

    async def sse(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)
        for i in range(3):
            await resp.write(f"data: tick {i}\n\n".encode())
            await asyncio.sleep(0.3)
        return resp

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse(protocols=("chat.v2", "chat.v1"))
        await sock.prepare(request)
        async for msg in sock:
            if msg.type == WSMsgType.TEXT:
                if msg.data == "bye":
                    await sock.close(code=4001, message=b"bye")
                    break
                await sock.send_str("echo:" + msg.data)
            elif msg.type == WSMsgType.BINARY:
                await sock.send_bytes(msg.data[::-1])
        return sock

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "3")))
        return web.Response(text="late")

    async def cut(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.content_length = 100_000
        await resp.prepare(request)
        await resp.write(b"x" * 1000)
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.abort()
        return resp

    async def big(request: web.Request) -> web.StreamResponse:
        mb = int(request.query.get("mb", "1"))
        resp = web.StreamResponse(headers={"Content-Type": request.query.get(
            "type", "application/octet-stream")})
        if request.query.get("length"):
            resp.content_length = mb * 1024 * 1024
        await resp.prepare(request)
        block = b"<p>" + b"x" * (64 * 1024 - 7) + b"</p>\n"
        for _ in range(mb * 16):
            await resp.write(block)
        return resp

    async def upload(request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        size = 0
        while chunk := await request.content.readany():
            size += len(chunk)
            digest.update(chunk)
        return web.json_response({"size": size, "sha256": digest.hexdigest()})

    async def page(request: web.Request) -> web.Response:
        body = (f"<!doctype html><html><head><title>Job</title></head><body>"
                f'<a href="{origin(request)}/jobs/2">next</a></body></html>')
        return web.Response(text=body, content_type="text/html")

    async def drop_type(request: web.Request, response: web.StreamResponse) -> None:
        if request.path == "/no-content-type":
            response.headers.popall("Content-Type", None)

    app.on_response_prepare.append(drop_type)
    app.router.add_route("*", "/echo{tail:.*}", echo)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/no-content-type", no_content_type)
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_get("/etag", etag)
    app.router.add_get("/sse", sse)
    app.router.add_get("/ws", ws)
    app.router.add_get("/slow", slow)
    app.router.add_get("/cut", cut)
    app.router.add_get("/big", big)
    app.router.add_post("/upload", upload)
    app.router.add_get("/page", page)
    return app
