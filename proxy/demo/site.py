"""The bundled demo careers site: a hosted-ATS look-alike the proxy is shown in front of.

It behaves the way real ATS pages do and so exercises the proxy's hard cases: absolute
links and an absolute 303 `Location` naming its own origin, two `Set-Cookie` headers
with a `Domain`, gzip bodies, a strict nonce-based CSP with a site inline script,
schema.org JSON-LD, a multipart résumé upload read in chunks (never held), a JSON API
for the job page's "Quick apply" (`POST /api/jobs/{id}/applications`: 200 with
`{"ok": true, …}` when accepted, 200 with `{"ok": false, "errors": […]}` when not, as
single-page ATS front ends do), a sitemap, server-sent events and a WebSocket.
`serve()` starts any of the demo apps on a port.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import BodyPartReader, WSMsgType, hdrs, web
from yarl import URL

from proxy.demo import pages
from proxy.demo.jobs import Job, job_by_id
from proxy.demo.quick_apply import quick_apply_handler

SESSION_COOKIE = "ats_session"
LANG_COOKIE = "ats_lang"
MAX_BODY = 1024 * 1024          # aiohttp's read()/post() limit: a résumé must be streamed
UPLOAD_CHUNK = 64 * 1024        # résumé bytes read at a time, then dropped
MAX_FIELD = 8 * 1024            # a text form field larger than this is refused
SSE_COUNT, SSE_INTERVAL, SSE_MAX_INTERVAL = 3, 0.1, 60.0
CSS_BYTES = pages.STYLESHEET.encode()
CSS_ETAG = '"css-' + hashlib.sha256(CSS_BYTES).hexdigest()[:16] + '"'


@dataclass(frozen=True, slots=True)
class Submission:
    """One received application; the résumé is counted, not kept."""

    ref: str
    job_id: str
    job_title: str
    name: str
    email: str
    resume_filename: str | None
    resume_bytes: int
    largest_chunk: int


BASE_URL = web.AppKey("base_url", str)
SUBMISSIONS = web.AppKey("submissions", list[Submission])


def build_site(base_url: str) -> web.Application:
    """The demo site as it answers on `base_url` (e.g. "http://127.0.0.1:8081")."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[_session, _not_found])
    app[BASE_URL] = base_url.rstrip("/")
    app[SUBMISSIONS] = []
    app.router.add_get("/", _root)
    app.router.add_get("/jobs", _job_list)
    app.router.add_get("/jobs/{job_id}", _job)
    app.router.add_get("/jobs/{job_id}/apply", _apply_form)
    app.router.add_post("/jobs/{job_id}/apply", _apply_submit)
    app.router.add_get("/jobs/{job_id}/thanks", _thanks)
    app.router.add_post("/api/jobs/{job_id}/applications", quick_apply_handler(_record_quick))
    app.router.add_get("/static/site.css", _stylesheet)
    app.router.add_get("/sitemap.xml", _sitemap)
    app.router.add_get("/events", _events)
    app.router.add_get("/ws", _websocket)
    return app


async def serve(build: Callable[[str], web.Application], host: str = "127.0.0.1",
                port: int = 0) -> tuple[web.AppRunner, str]:
    """Bind first, then build the app with its real base URL (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    base_url = f"http://[{host}]:{bound}" if family == socket.AF_INET6 else f"http://{host}:{bound}"
    runner = web.AppRunner(build(base_url), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner, base_url


# --- middlewares ------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _session(request: web.Request, handler: Handler) -> web.StreamResponse:
    """First visit: a session cookie for the site's own host, plus a language cookie."""
    resp = await handler(request)
    if SESSION_COOKIE not in request.cookies and not resp.prepared:
        host = URL(request.app[BASE_URL]).host
        resp.set_cookie(SESSION_COOKIE, secrets.token_hex(16), domain=host, path="/",
                        httponly=True, samesite="Lax")
        resp.set_cookie(LANG_COOKIE, "en", domain=host, path="/", max_age=31536000)
    return resp


@web.middleware
async def _not_found(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return _not_found_response(request)


# --- helpers ----------------------------------------------------------------------

def _accepts_gzip(request: web.Request) -> bool:
    for item in request.headers.get(hdrs.ACCEPT_ENCODING, "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip", "*"):
            q = params.strip().lower()
            return not (q.startswith("q=") and _qvalue(q[2:]) == 0.0)
    return False


def _qvalue(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 1.0


def _body(request: web.Request, data: bytes, content_type: str, status: int = 200,
          headers: dict[str, str] | None = None) -> web.Response:
    """A response whose body is gzipped when the client accepts gzip."""
    out = {hdrs.VARY: "Accept-Encoding", **(headers or {})}
    if _accepts_gzip(request) and request.method != hdrs.METH_HEAD:
        data = gzip.compress(data, compresslevel=6)
        out[hdrs.CONTENT_ENCODING] = "gzip"
    resp = web.Response(body=data, status=status, headers=out)
    resp.content_type, resp.charset = content_type, "utf-8"
    return resp


def _nonce() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def _html(request: web.Request, render: Callable[[str], str], status: int = 200) -> web.Response:
    """An HTML page under a strict CSP whose nonce is fresh for each response."""
    nonce = _nonce()
    csp = (f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; img-src 'self' data:; "
           "base-uri 'self'; form-action 'self'")
    headers = {"Content-Security-Policy": csp, hdrs.CACHE_CONTROL: "private, no-cache",
               "X-Frame-Options": "SAMEORIGIN"}
    return _body(request, render(nonce).encode(), "text/html", status, headers)


def _not_found_response(request: web.Request) -> web.Response:
    base = request.app[BASE_URL]
    return _html(request, lambda n: pages.not_found_page(base, n), status=404)


def _job_or_404(request: web.Request) -> Job:
    job = job_by_id(request.match_info["job_id"])
    if job is None:
        raise web.HTTPNotFound()
    return job


# --- pages ------------------------------------------------------------------------

async def _root(request: web.Request) -> web.Response:
    location = f"{request.app[BASE_URL]}/jobs"
    return web.Response(status=302, text="Found", headers={hdrs.LOCATION: location})


async def _job_list(request: web.Request) -> web.Response:
    base = request.app[BASE_URL]
    return _html(request, lambda n: pages.job_list_page(base, n))


async def _job(request: web.Request) -> web.Response:
    job, base = _job_or_404(request), request.app[BASE_URL]
    return _html(request, lambda n: pages.job_page(base, job, n))


async def _apply_form(request: web.Request) -> web.Response:
    job, base = _job_or_404(request), request.app[BASE_URL]
    return _html(request, lambda n: pages.apply_page(base, job, n))


async def _thanks(request: web.Request) -> web.Response:
    job, base = _job_or_404(request), request.app[BASE_URL]
    ref = request.query.get("ref")
    name = next((s.name for s in request.app[SUBMISSIONS] if s.ref == ref), None)
    return _html(request, lambda n: pages.thanks_page(base, job, name, n))


async def _apply_submit(request: web.Request) -> web.Response:
    job, base = _job_or_404(request), request.app[BASE_URL]
    if request.content_type == "multipart/form-data":
        fields, filename, size, largest = await _read_multipart(request)
    elif request.content_type == "application/x-www-form-urlencoded":
        form = await request.post()   # small by nature; MAX_BODY bounds it
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        filename, size, largest = None, 0, 0
    else:
        raise web.HTTPUnsupportedMediaType()
    missing = [k for k in ("job_title", "name", "email") if not fields.get(k, "").strip()]
    if missing:
        error = "Please fill in: " + ", ".join(missing).replace("_", " ")
        return _html(request, lambda n: pages.apply_page(base, job, n, error), status=422)
    sub = Submission(secrets.token_hex(8), job.id, fields["job_title"], fields["name"],
                     fields["email"], filename, size, largest)
    request.app[SUBMISSIONS].append(sub)
    location = f"{base}/jobs/{job.id}/thanks?ref={sub.ref}"
    return web.Response(status=303, text="See Other", headers={hdrs.LOCATION: location})


def _record_quick(request: web.Request, job: Job, name: str, email: str) -> str:
    sub = Submission(secrets.token_hex(8), job.id, job.title, name, email, None, 0, 0)
    request.app[SUBMISSIONS].append(sub)
    return sub.ref


async def _read_multipart(request: web.Request) -> tuple[dict[str, str], str | None, int, int]:
    """Text fields are kept (each at most MAX_FIELD); file parts are counted and dropped."""
    fields: dict[str, str] = {}
    filename, size, largest = None, 0, 0
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            await part.release()      # a nested multipart: not something this form sends
            continue
        if part.filename is not None:
            filename = part.filename
            while chunk := await part.read_chunk(UPLOAD_CHUNK):
                size += len(chunk)
                largest = max(largest, len(chunk))
            continue
        data = bytearray()
        while chunk := await part.read_chunk(UPLOAD_CHUNK):
            data += chunk
            if len(data) > MAX_FIELD:
                raise web.HTTPRequestEntityTooLarge(max_size=MAX_FIELD, actual_size=len(data))
        if part.name:
            fields[part.name] = data.decode(part.get_charset("utf-8"), errors="replace")
    return fields, filename, size, largest


async def _stylesheet(request: web.Request) -> web.Response:
    headers: dict[str, str] = {hdrs.ETAG: CSS_ETAG, hdrs.CACHE_CONTROL: "public, max-age=3600"}
    if CSS_ETAG in request.headers.get(hdrs.IF_NONE_MATCH, ""):
        return web.Response(status=304, headers={**headers, hdrs.VARY: "Accept-Encoding"})
    return _body(request, CSS_BYTES, "text/css", headers=headers)


async def _sitemap(request: web.Request) -> web.Response:
    return _body(request, pages.sitemap(request.app[BASE_URL]).encode(), "application/xml")


# --- streaming --------------------------------------------------------------------

async def _events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `count` ticks `interval` seconds apart (defaults 3 and 0.1 s)."""
    try:
        count = min(max(int(request.query.get("count", SSE_COUNT)), 1), 100)
        interval = min(max(float(request.query.get("interval", SSE_INTERVAL)), 0.0),
                       SSE_MAX_INTERVAL)
    except ValueError:
        raise web.HTTPBadRequest(text="count and interval must be numbers") from None
    resp = web.StreamResponse(headers={hdrs.CONTENT_TYPE: "text/event-stream",
                                       hdrs.CACHE_CONTROL: "no-cache"})
    await resp.prepare(request)
    try:
        for i in range(1, count + 1):
            await resp.write(f'id: {i}\nevent: tick\ndata: {{"n": {i}}}\n\n'.encode())
            if i < count and not await _pause(request, interval):
                break
        await resp.write_eof()
    except ConnectionResetError:
        pass
    return resp


async def _pause(request: web.Request, seconds: float) -> bool:
    """Sleep, waking early (False) when the client has gone, so long waits end cleanly."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        if request.transport is None or request.transport.is_closing():
            return False
        await asyncio.sleep(min(left, 0.05))
    return True


async def _websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws
