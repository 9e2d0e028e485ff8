"""Pages in UTF-16 through a real proxy: decoded, injected, re-encoded; a page no
snippet can go into is counted as skipped, and `edge_injections_total` counts only
pages that really received the pixel."""

from __future__ import annotations

import gzip

from aiohttp import web

from tests.integration.harness import stack
from tests.integration.procs import metric_value

PIXEL = "123456789012345"
RULES = f"""
[pixels.meta]
type = "meta"
pixel_id = "{PIXEL}"
paths = ["/**"]
"""
PAGE = ("<!doctype html><html><head><title>Pflegefachkraft – München 🩺</title>"
        "<script>var s = '</head>';</script></head><body><h1>Jobs</h1></body></html>")


def site() -> web.Application:
    async def page(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "utf16":             # BOM, charset in the header too
            body, ctype = ("\ufeff" + PAGE).encode("utf-16-le"), "text/html; charset=utf-16"
        elif name == "utf16be-gzip":    # BOM only
            body, ctype = gzip.compress(("\ufeff" + PAGE).encode("utf-16-be")), "text/html"
        elif name == "utf32":
            body, ctype = ("\ufeff" + PAGE).encode("utf-32-le"), "text/html"
        else:
            body, ctype = PAGE.encode(), "text/html; charset=utf-8"
        headers = {"Content-Type": ctype}
        if name.endswith("gzip"):
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    app = web.Application()
    app.router.add_get("/jobs/{name}", page)
    return app


async def fetch(s, path: str) -> bytes:
    async with s.session() as c, c.get(path) as r:
        assert r.status == 200
        body = await r.read()
        return gzip.decompress(body) if r.headers.get("Content-Encoding") == "gzip" else body


async def test_utf16_pages_get_the_pixel_before_the_real_head_end(tmp_path) -> None:
    async with stack(site(), RULES, tmp=tmp_path) as s:
        for path, codec in (("/jobs/utf16", "utf-16-le"), ("/jobs/utf16be-gzip", "utf-16-be")):
            text = (await fetch(s, path)).decode(codec)
            assert text.startswith("\ufeff<!doctype html>")
            assert f"fbq('init',\"{PIXEL}\")" in text
            script_end = text.index("var s = '</head>';</script>")
            assert script_end < text.index("fbq('init'") < text.rindex("</head>")
            assert "Pflegefachkraft – München 🩺" in text
        assert metric_value(await s.metrics(), "edge_injections_total") == 2


async def test_a_page_no_snippet_can_go_into_is_counted_as_skipped(tmp_path) -> None:
    async with stack(site(), RULES, tmp=tmp_path) as s:
        body = await fetch(s, "/jobs/utf32")
        assert body == ("\ufeff" + PAGE).encode("utf-32-le")      # untouched
        await fetch(s, "/jobs/plain")
        text = await s.metrics()
        assert metric_value(text, "edge_injections_total") == 1    # the UTF-8 page only
        assert metric_value(text, "edge_injections_skipped_total", reason="charset") == 1
