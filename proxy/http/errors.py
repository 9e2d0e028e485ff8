"""The proxy's own error answers: a small HTML page, or JSON when the client asked for it."""

from __future__ import annotations

import html
from http import HTTPStatus

import orjson
from aiohttp import web

TITLES = {
    400: "Bad request",
    404: "Not found",
    502: "The careers site is not answering",
    503: "Not ready",
    504: "The careers site took too long to answer",
}


def wants_json(accept: str | None) -> bool:
    if not accept:
        return False
    accept = accept.lower()
    return "json" in accept and "text/html" not in accept


def error_response(status: int, detail: str, accept: str | None = None,
                   *, headers: dict[str, str] | None = None) -> web.Response:
    title = TITLES.get(status) or HTTPStatus(status).phrase
    hdrs = {"Cache-Control": "no-store", **(headers or {})}
    if wants_json(accept):
        body = orjson.dumps({"error": title, "detail": detail, "status": status})
        return web.Response(status=status, body=body, content_type="application/json",
                            headers=hdrs)
    page = (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>{status} {html.escape(title)}</title>"
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:4em auto;"
        "padding:0 1em;color:#333}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(detail)}</p>"
        # a retry helps when the site is down or slow, never when the request is wrong
        + ("<p>Please try again in a moment.</p>" if status >= 500 else "")
        + "</body></html>"
    )
    return web.Response(status=status, text=page, content_type="text/html", headers=hdrs)
