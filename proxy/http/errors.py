"""The proxy's own error answers: a small HTML page, or JSON when the client asked for it.

Every one says only what went wrong in our words: nothing the client sent is echoed
back. They carry `X-Content-Type-Options: nosniff` and our version-less `Server`.
"""

from __future__ import annotations

import html
from http import HTTPStatus

import orjson
from aiohttp import web

from proxy.http.headers import SERVER

TITLES = {
    400: "Bad request",
    404: "Not found",
    408: "Request timeout",
    413: "Request too large",
    502: "The careers site is not answering",
    503: "Temporarily unavailable",
    504: "The careers site took too long to answer",
    505: "HTTP version not supported",
}
NOSNIFF = ("X-Content-Type-Options", "nosniff")


def wants_json(accept: str | None) -> bool:
    if not accept:
        return False
    accept = accept.lower()
    return "json" in accept and "text/html" not in accept


def title_of(status: int) -> str:
    return TITLES.get(status) or HTTPStatus(status).phrase


def error_page(status: int, detail: str) -> str:
    """The HTML page for `status`; `detail` is our own text, never the client's."""
    title = html.escape(title_of(status))
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>{status} {title}</title>"
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:4em auto;"
        "padding:0 1em;color:#333}</style></head><body>"
        f"<h1>{title}</h1><p>{html.escape(detail)}</p>"
        # a retry helps when the site is down or slow, never when the request is wrong
        + ("<p>Please try again in a moment.</p>" if status >= 500 else "")
        + "</body></html>"
    )


def error_response(status: int, detail: str, accept: str | None = None,
                   *, headers: dict[str, str] | None = None) -> web.Response:
    hdrs = {"Cache-Control": "no-store", NOSNIFF[0]: NOSNIFF[1], "Server": SERVER,
            **(headers or {})}
    if wants_json(accept):
        body = orjson.dumps({"error": title_of(status), "detail": detail, "status": status})
        resp = web.Response(status=status, body=body, content_type="application/json",
                            headers=hdrs)
    else:
        resp = web.Response(status=status, text=error_page(status, detail),
                            content_type="text/html", headers=hdrs)
    if hdrs.get("Connection", "").lower() == "close":
        resp.force_close()          # the header alone would not end aiohttp's keep-alive
    return resp
