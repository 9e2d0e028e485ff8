"""The operators' UI shell on real sockets: every file the page needs is served with
its type, an ETag that revalidates to 304 and a 'self'-only CSP; nothing outside the
UI's folder can be reached; the shell needs no admin token but the APIs still do;
the public listener does not know the UI at all."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp import web
from yarl import URL

from proxy.endpoints.ui import CSP
from tests.integration.harness import stack

UI_DIR = Path(__file__).resolve().parents[2] / "proxy" / "ui"
TOKEN = "s3cret-admin-token"


def site() -> web.Application:
    async def home(request: web.Request) -> web.Response:
        return web.Response(text="home")

    app = web.Application()
    app.router.add_get("/", home)
    return app


def referenced_files() -> set[str]:
    """Every file index.html links and every module a module imports."""
    html = (UI_DIR / "index.html").read_text()
    names = set(re.findall(r'(?:src|href)="([\w.-]+\.(?:js|css|svg))"', html))
    for js in UI_DIR.glob("*.js"):
        names |= set(re.findall(r'from "\./([\w.-]+\.js)"', js.read_text()))
    return names


async def test_the_shell_and_everything_it_loads_are_served_with_type_etag_and_csp(
        tmp_path: Path) -> None:
    files = referenced_files()
    assert {"ui.css", "main.js", "api.js", "live.js", "icon.svg"} <= files
    types = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}
    async with stack(site(), tmp=tmp_path) as st, st.admin() as c:
        async with c.get("/_edge/ui/") as r:
            assert r.status == 200 and r.content_type == "text/html"
            assert r.headers["Content-Security-Policy"] == CSP
            assert "default-src 'self'" in CSP and "unsafe" not in CSP
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.headers["Cache-Control"] == "no-cache"
            assert (await r.read()) == (UI_DIR / "index.html").read_bytes()
        for name in sorted(files):
            async with c.get(f"/_edge/ui/{name}") as r:
                assert r.status == 200, name
                assert r.content_type == types[name.rpartition(".")[2]], name
                assert (await r.read()) == (UI_DIR / name).read_bytes()
                etag = r.headers["ETag"]
            async with c.get(f"/_edge/ui/{name}", headers={"If-None-Match": etag}) as r:
                assert r.status == 304 and await r.read() == b""
                assert r.headers["ETag"] == etag
            async with c.get(f"/_edge/ui/{name}", headers={"If-None-Match": '"other"'}) as r:
                assert r.status == 200
        async with c.head("/_edge/ui/main.js") as r:
            assert r.status == 200
        async with c.get("/_edge/ui", allow_redirects=False) as r:
            assert r.status == 308 and r.headers["Location"] == "/_edge/ui/"


@pytest.mark.parametrize("path", [
    "/_edge/ui/__init__.py", "/_edge/ui/../endpoints/admin.py", "/_edge/ui/%2e%2e/app.py",
    "/_edge/ui/..%2fapp.py", "/_edge/ui/./main.js", "/_edge/ui//main.js", "/_edge/ui/nope.js",
    "/_edge/ui/index.html/", "/_edge/ui/main.js%00",
])
async def test_nothing_outside_the_ui_files_is_served(tmp_path: Path, path: str) -> None:
    async with stack(site(), tmp=tmp_path) as st, st.admin() as c:
        # Sent as written: the client must not normalise the dots away.
        async with c.get(URL(st.admin_url + path, encoded=True)) as r:
            body = await r.read()
            assert r.status == 404, path
            assert b"import" not in body and b"def " not in body


async def test_only_get_and_head_reach_the_shell(tmp_path: Path) -> None:
    async with stack(site(), tmp=tmp_path) as st, st.admin() as c:
        async with c.post("/_edge/ui/", data=b"x") as r:
            assert r.status == 405 and r.headers["Allow"] == "GET, HEAD"


async def test_with_a_token_the_shell_is_open_and_everything_else_needs_it(
        tmp_path: Path) -> None:
    rules = f'[admin]\ntoken = "{TOKEN}"\n'
    async with stack(site(), rules, tmp=tmp_path) as st, st.admin() as c:
        async with c.get("/_edge/ui/") as r:
            assert r.status == 200
        async with c.get("/_edge/ui/api.js") as r:
            assert r.status == 200 and "Authorization" in await r.text()
        for path in ("/_edge/api/events", "/_edge/api/stream", "/_edge/metrics",
                     "/_edge/uix", "/_edge/ui-api"):
            async with c.get(path) as r:
                assert r.status == 401, path
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
        async with c.get("/_edge/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            assert r.status == 200


async def test_the_public_listener_does_not_serve_the_ui(tmp_path: Path) -> None:
    async with stack(site(), tmp=tmp_path) as st, st.session() as c:
        for path in ("/_edge/ui/", "/_edge/ui", "/_edge/ui/main.js"):
            async with c.get(path) as r:
                assert r.status == 404, path
                assert b"main.js" not in await r.read()


async def test_the_ui_follows_the_prefix(tmp_path: Path) -> None:
    async with stack(site(), tmp=tmp_path, proxy_extra='prefix = "/ops"') as st, \
            st.admin() as c:
        async with c.get("/ops/ui/") as r:
            assert r.status == 200 and "main.js" in await r.text()
        async with c.get("/ops/ui", allow_redirects=False) as r:
            assert r.status == 308 and r.headers["Location"] == "/ops/ui/"
        async with c.get("/_edge/ui/") as r:
            assert r.status == 404
