"""Two upstreams for the `[[routes]]` tests: a company's own careers site, and an
ATS serving an embeddable application form under `/embed/` (the shapes of
Greenhouse's embedded board: `job_app?for=&token=`, a multipart POST answered 303 to
`job_app/confirmation`). Each remembers the requests it was sent."""

from __future__ import annotations

import asyncio
import gzip
from dataclasses import dataclass, field

from aiohttp import web

BOARD, JOB = "acme", "4012345"
TITLE = "Backend Engineer"


@dataclass
class Seen:
    method: str
    raw_path: str
    host: str
    fields: dict[str, str] = field(default_factory=dict)
    cookie: str = ""


def company_site(ats_origin: str, seen: list[Seen]) -> web.Application:
    """The company's careers page, the form in an iframe pointing at the ATS's host."""
    frame = f"{ats_origin}/embed/job_app?for={BOARD}&amp;token={JOB}"
    page = (f"<!doctype html><html><head><title>{TITLE} - Acme careers</title></head>"
            f"<body><h1>{TITLE}</h1><p>Join us.</p><div id=\"grnhse_app\">"
            f"<iframe id=\"grnhse_iframe\" width=\"100%\" frameborder=\"0\" src=\"{frame}\">"
            f"</iframe></div><a href=\"{ats_origin}/embed/job_board?for={BOARD}\">all jobs</a>"
            f"</body></html>").encode()

    async def job(request: web.Request) -> web.Response:
        seen.append(Seen(request.method, request.raw_path, request.host))
        if request.match_info["slug"].endswith("-gz"):
            return web.Response(body=gzip.compress(page), content_type="text/html",
                                headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        return web.Response(body=page, content_type="text/html")

    async def anything(request: web.Request) -> web.Response:
        seen.append(Seen(request.method, request.raw_path, request.host))
        return web.Response(text="company site: " + request.raw_path)

    app = web.Application()
    app.router.add_get("/jobs/{slug}", job)
    app.router.add_route("*", "/{tail:.*}", anything)
    return app


def ats_embed(origin: str, seen: list[Seen], slow: asyncio.Event | None = None
              ) -> web.Application:
    """The ATS: the embedded form, its submit and its confirmation, under /embed/."""

    def where(request: web.Request) -> str:
        return f"for={request.query.get('for', '')}&amp;token={request.query.get('token', '')}"

    async def form(request: web.Request) -> web.Response:
        seen.append(Seen(request.method, request.raw_path, request.host))
        html = (f"<!doctype html><html><head><title>Job Application for {TITLE}</title>"
                f"</head><body><div id=\"app_body\"><h1 class=\"app-title\">{TITLE}</h1>"
                f"<form id=\"application_form\" method=\"post\" enctype=\"multipart/form-data\""
                f" action=\"/embed/job_app?{where(request)}\">"
                "<input name=\"job_application[first_name]\">"
                "<input name=\"job_application[email]\" type=\"email\">"
                "<input name=\"job_application[resume]\" type=\"file\">"
                "<button id=\"submit_app\">Submit Application</button></form></div>"
                f"<a href=\"{origin}/embed/job_board?for={BOARD}\">All jobs</a>"
                "</body></html>")
        resp = web.Response(text=html, content_type="text/html")
        resp.headers.add("Set-Cookie", "_ats_session=s1; Domain=127.0.0.1; Path=/; HttpOnly")
        return resp

    async def submit(request: web.Request) -> web.Response:
        fields: dict[str, str] = {}
        post = await request.post()
        for name, value in post.items():
            fields[name] = value if isinstance(value, str) else f"<file {value.filename}>"
        seen.append(Seen(request.method, request.raw_path, request.host, fields,
                         request.headers.get("Cookie", "")))
        resp = web.Response(status=303, text="see other")
        resp.headers["Location"] = (f"{origin}/embed/job_app/confirmation?for="
                                    f"{request.query.get('for', '')}&token="
                                    f"{request.query.get('token', '')}")
        resp.headers.add("Set-Cookie", "_ats_applied=1; Path=/embed/job_app; Domain=127.0.0.1")
        return resp

    async def confirmation(request: web.Request) -> web.Response:
        seen.append(Seen(request.method, request.raw_path, request.host))
        return web.Response(text="<!doctype html><html><head><title>Thank you</title></head>"
                                 "<body><h1>Thank you for applying.</h1></body></html>",
                            content_type="text/html")

    async def slow_page(request: web.Request) -> web.StreamResponse:
        """Half a body, then the rest once the test says so."""
        seen.append(Seen(request.method, request.raw_path, request.host))
        resp = web.StreamResponse()
        resp.content_type = "text/plain"
        await resp.prepare(request)
        await resp.write(b"first half;")
        if slow is not None:
            await slow.wait()
        await resp.write(b"second half")
        await resp.write_eof()
        return resp

    async def ws(request: web.Request) -> web.WebSocketResponse:
        seen.append(Seen(request.method, request.raw_path, request.host))
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            await sock.send_str(f"ats heard {msg.data}")
        return sock

    async def other(request: web.Request) -> web.Response:
        seen.append(Seen(request.method, request.raw_path, request.host))
        return web.Response(text="ats: " + request.raw_path)

    app = web.Application()
    app.router.add_get("/embed/job_app", form)
    app.router.add_post("/embed/job_app", submit)
    app.router.add_get("/embed/job_app/confirmation", confirmation)
    app.router.add_get("/embed/slow", slow_page)
    app.router.add_get("/embed/ws", ws)
    app.router.add_route("*", "/{tail:.*}", other)
    return app
