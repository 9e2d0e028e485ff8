"""Two real upstreams behind one proxy, wired by the shipped `rules/greenhouse-embed.toml`:
the company's page comes from the main upstream with its iframe pointed at the proxy,
the embedded form is fetched and posted under /apply/ and reaches the ATS with its own
path and Host, its redirect and cookies come back under /apply/, and the application
is delivered to the (local) networks once."""

from __future__ import annotations

import asyncio
import gzip
import html
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from proxy.app import RELOADER, build_app
from proxy.config.load import load_config
from proxy.demo.recorder import Recorder
from proxy.edge import EDGE, AccessLog, Edge
from proxy.endpoints.health import readyz
from tests.integration.embed_sites import BOARD, JOB, TITLE, Seen, ats_embed, company_site
from tests.integration.harness import free_port, raw_exchange, stack, start

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "rules" / "greenhouse-embed.toml"
TLR = str(uuid.uuid4())


@dataclass
class Embed:
    proxy: str
    site: str
    ats: str
    site_seen: list[Seen]
    ats_seen: list[Seen]
    recorder: Recorder
    app: web.Application
    rules: Path
    env: dict[str, str]
    slow: asyncio.Event
    ats_runner: web.BaseRunner

    @property
    def edge(self) -> Edge:
        return self.app[EDGE]

    def session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(self.proxy, cookie_jar=aiohttp.CookieJar(unsafe=True))


def pack_text(recorder: str, state: Path) -> str:
    """The shipped pack, its networks pointed at the local recorder."""
    text = PACK.read_text()
    text = text.replace("https://www.jobs2careers.com", recorder)
    text = text.replace("https://graph.facebook.com", recorder)
    return re.sub(r'(?m)^state = ".*"$', f'state = "sqlite:///{state}"', text)


@asynccontextmanager
async def embed_stack(tmp: Path) -> AsyncIterator[Embed]:
    site_seen: list[Seen] = []
    ats_seen: list[Seen] = []
    slow = asyncio.Event()
    ats_port, site_port = free_port(), free_port()
    ats = f"http://127.0.0.1:{ats_port}"
    site = f"http://127.0.0.1:{site_port}"
    ats_runner, _ = await start(ats_embed(ats, ats_seen, slow), ats_port)
    site_runner, _ = await start(company_site(ats, site_seen), site_port)
    recorder = Recorder()
    rec_runner, rec_port = await start(recorder.build_app())
    rec = f"http://127.0.0.1:{rec_port}"
    rules = tmp / "rules.toml"
    rules.write_text(pack_text(rec, tmp / "state.db"))
    env = {"COMPANY_SITE_UPSTREAM": site, "GREENHOUSE_EMBED_UPSTREAM": f"{ats}/embed/",
           "GREENHOUSE_BOARD": BOARD, "CAREERS_EDGE_SECRET": "s" * 32,
           "META_PIXEL_ID": "123456789012345", "META_ACCESS_TOKEN": "tok-1",
           "APPCAST_EVENTS_URL": f"{rec}/appcast/events", "WEBHOOK_URL": f"{rec}/hooks/ats",
           "WEBHOOK_SECRET": "whsec-1", "CAREERS_EDGE_API_TOKEN": "api-1"}
    app = build_app(load_config(rules, env=env), access_log=AccessLog(enabled=False))
    px_runner, px_port = await start(app, proxy=True)
    try:
        yield Embed(f"http://127.0.0.1:{px_port}", site, ats, site_seen, ats_seen, recorder,
                    app, rules, env, slow, ats_runner)
    finally:
        slow.set()
        await px_runner.cleanup()
        await rec_runner.cleanup()
        await site_runner.cleanup()
        await ats_runner.cleanup()


@pytest.fixture
async def e(tmp_path) -> AsyncIterator[Embed]:
    async with embed_stack(tmp_path) as stack:
        yield stack


async def settled(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for connection callbacks to have run (closing a socket is not immediate)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def iframe_src(page: str) -> str:
    return html.unescape(re.search(r'<iframe id="grnhse_iframe"[^>]* src="([^"]+)"', page)[1])


def form_action(page: str) -> str:
    return html.unescape(re.search(r'<form id="application_form"[^>]* action="([^"]+)"',
                                   page)[1])


def application() -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("job_application[first_name]", "Ada")
    form.add_field("job_application[email]", "ada@example.com")
    form.add_field("job_application[resume]", b"%PDF-1.7 " + bytes(64 * 1024),
                   filename="cv.pdf", content_type="application/pdf")
    return form


async def test_an_embedded_application_goes_through_the_proxy_and_counts_once(e) -> None:
    async with e.session() as c:
        # 1. the company's page, from the main upstream: its iframe now points at us
        async with c.get(f"/jobs/backend?tlr_sid={TLR}&fbclid=IwAR-x") as r:
            assert r.status == 200
            page = await r.text()
        assert e.site_seen[-1].raw_path == "/jobs/backend"       # click ids stripped
        src = iframe_src(page)
        assert src == f"{e.proxy}/apply/job_app?for={BOARD}&token={JOB}"
        assert e.ats not in page                       # the board link moved too
        assert f'href="{e.proxy}/apply/job_board?for={BOARD}"' in page
        assert "fbq('init'" in page

        # 2. the frame's form, from the ATS under /apply/, with the ATS's own Host
        async with c.get(src) as r:
            assert r.status == 200
            form_page = await r.text()
            cookies = r.headers.getall("Set-Cookie")
        got = e.ats_seen[-1]
        assert (got.method, got.raw_path) == ("GET", f"/embed/job_app?for={BOARD}&token={JOB}")
        assert got.host == e.ats.removeprefix("http://")
        assert any(ck.startswith("_ats_session=s1;") and "Path=/apply/" in ck
                   and "Domain=127.0.0.1" in ck for ck in cookies), cookies
        # its path-absolute action moved under /apply/, its absolute links too
        action = form_action(form_page)
        assert action == f"/apply/job_app?for={BOARD}&token={JOB}"
        assert f'href="{e.proxy}/apply/job_board?for={BOARD}"' in form_page

        # 3. the submit, posted under /apply/: reaches the ATS byte-exact, the redirect
        #    and the cookie come back under /apply/
        async with c.post(action, data=application(), allow_redirects=False) as r:
            assert r.status == 303, await r.text()
            location = r.headers["Location"]
            cookies = r.headers.getall("Set-Cookie")
        posted = e.ats_seen[-1]
        assert (posted.method, posted.raw_path) == ("POST",
                                                    f"/embed/job_app?for={BOARD}&token={JOB}")
        assert posted.host == e.ats.removeprefix("http://")
        assert posted.fields["job_application[first_name]"] == "Ada"
        assert posted.fields["job_application[resume]"] == "<file cv.pdf>"
        assert location == f"{e.proxy}/apply/job_app/confirmation?for={BOARD}&token={JOB}"
        assert any(ck.startswith("_ats_applied=1;") and "Path=/apply/job_app" in ck
                   for ck in cookies), cookies
        assert "_ats_session=s1" in posted.cookie    # its session cookie came back

        # 4. the confirmation page
        async with c.get(location) as r:
            assert r.status == 200
            thanks = await r.text()
        assert "Thank you for applying." in thanks
        assert e.ats_seen[-1].raw_path == f"/embed/job_app/confirmation?for={BOARD}&token={JOB}"
        visitor = next(m.value for m in c.cookie_jar if m.key == "linksClickedId")

    # the submit and the confirmation both fire; the dedupe counts the application once
    talroo = await e.recorder.wait_for(lambda r: r.network == "talroo", timeout=15)
    assert talroo.query["tlr_sid"] == TLR
    await e.recorder.wait_for(lambda r: r.network == "webhook", timeout=15)
    await e.recorder.wait_for_all(lambda r: r.network == "meta", count=1, timeout=15)
    await asyncio.sleep(1.5)                # time for a second delivery, were there one
    hooks = e.recorder.of("webhook")
    assert [h.json()["event"] for h in hooks] == ["ApplicationCompleted"]
    assert hooks[0].signature_valid("whsec-1")
    assert hooks[0].json()["linksClickedId"] == visitor
    assert hooks[0].json()["click_ids"]["tlr_sid"] == TLR
    assert len(e.recorder.of("talroo")) == 1
    meta = [ev for r in e.recorder.of("meta") for ev in r.json()["data"]]
    assert sorted(ev["event_name"] for ev in meta) == ["ConversationStart",
                                                        "SubmitApplication"]
    viewed = next(ev for ev in meta if ev["event_name"] == "ConversationStart")
    assert viewed["custom_data"]["jobName"] == TITLE
    assert viewed["event_source_url"] == src
    # the browser's copy of the event went out in the frame, with the same id
    assert viewed["event_id"] in form_page


async def test_a_gzip_page_has_its_iframe_rewritten_and_stays_gzip(e) -> None:
    async with aiohttp.ClientSession(e.proxy, auto_decompress=False) as c:
        async with c.get("/jobs/backend-gz", headers={"Accept-Encoding": "gzip"}) as r:
            assert r.status == 200
            assert r.headers["Content-Encoding"] == "gzip"
            page = gzip.decompress(await r.read()).decode()
    assert iframe_src(page) == f"{e.proxy}/apply/job_app?for={BOARD}&token={JOB}"
    assert e.ats not in page


async def test_a_websocket_under_the_prefix_reaches_the_routes_upstream(e) -> None:
    async with aiohttp.ClientSession(e.proxy) as c:
        async with c.ws_connect("/apply/ws?room=1") as ws:
            await ws.send_str("hello")
            assert (await ws.receive_str()) == "ats heard hello"
    assert (e.ats_seen[-1].raw_path, e.ats_seen[-1].host) == (
        "/embed/ws?room=1", e.ats.removeprefix("http://"))


async def test_paths_that_would_leave_the_route_never_reach_an_upstream(e) -> None:
    host = e.proxy.removeprefix("http://")
    for path in ("/apply/../admin", "/apply/%2e%2e/admin", "/apply/..%2fadmin",
                 "/apply/x/%252e%252e/y", "/apply/..;/admin", "/apply/..%5cadmin",
                 "/apply/..\\admin", "/apply/./x"):
        answer = await raw_exchange(e.proxy, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                                             "Connection: close\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 400 "), (path, answer[:200])
    async with aiohttp.ClientSession(e.proxy) as c:
        async with c.get("/apply?for=acme", allow_redirects=False) as r:
            assert r.status == 301
            assert r.headers["Location"] == "/apply/?for=acme"
        async with c.get("/applyx/job_app") as r:           # not the route: the main site
            assert await r.text() == "company site: /applyx/job_app"
    assert e.ats_seen == []


async def test_readyz_asks_every_upstream(e) -> None:
    e.edge.readiness.ttl = 0.0                # every call checks afresh
    resp = await readyz(e.edge)
    assert resp.status == 200, resp.text
    await e.ats_runner.cleanup()              # the ATS goes away; the company site stays
    resp = await readyz(e.edge)
    assert resp.status == 503
    assert f"upstream {e.ats}" in resp.text and e.site not in resp.text


async def test_a_reload_that_changes_routes_opens_and_retires_pools(e, monkeypatch) -> None:
    for name, value in e.env.items():          # a reload reads them from the environment
        monkeypatch.setenv(name, value)
    pools = dict(e.edge.upstreams.items())
    assert set(pools) == {e.site, e.ats}
    old = pools[e.ats]
    async with aiohttp.ClientSession(e.proxy) as c:
        # A response in flight from the ATS when its route goes away...
        async with c.get("/apply/slow") as r:
            assert await r.content.readexactly(len(b"first half;")) == b"first half;"
            async with c.get("/apply/job_app?for=acme&token=1") as r2:   # a second one
                assert r2.status == 200
                await r2.read()
            assert old.stats == {"open": 2, "idle": 1, "waiting": 0}
            text = e.rules.read_text().replace('prefix = "/apply/"', 'prefix = "/join/"')
            e.rules.write_text(text.replace("${GREENHOUSE_EMBED_UPSTREAM}",
                                            e.site + "/careers/"))
            assert e.app[RELOADER].reload("test")
            # the idle connection closes at once, the busy one is left to finish
            await settled(lambda: old.stats == {"open": 1, "idle": 0, "waiting": 0})
            e.slow.set()
            # ...is finished, not cut.
            assert await r.content.read() == b"second half"
        await settled(lambda: old.stats == {"open": 0, "idle": 0, "waiting": 0})
        assert dict(e.edge.upstreams.items()) == {e.site: e.edge.transport}
        # /join/ is the new route (to the main site's origin: its pool is shared);
        # /apply/ is the company site's own path again.
        async with c.get("/join/x?y=1") as r:
            assert await r.text() == "company site: /careers/x?y=1"
        async with c.get("/apply/job_app") as r:
            assert await r.text() == "company site: /apply/job_app"
        # And back: a new pool for the ATS.
        e.rules.write_text(text)
        assert e.app[RELOADER].reload("test")
        async with c.get("/join/job_app?for=acme&token=1") as r:
            assert r.status == 200 and e.ats_seen[-1].raw_path == "/embed/job_app?for=acme&token=1"
    new = dict(e.edge.upstreams.items())[e.ats]
    assert new is not old and new.stats["open"] == 1


async def test_pixels_rules_and_allow_paths_see_public_paths(tmp_path) -> None:
    ats_seen: list[Seen] = []
    ats_port = free_port()
    ats = f"http://127.0.0.1:{ats_port}"
    ats_runner, _ = await start(ats_embed(ats, ats_seen), ats_port)
    rules = f"""
[[routes]]
prefix = "/apply/"
upstream = "{ats}/embed/"

[pixels.frame]
type = "html"
paths = ["/apply/**"]
html = "<meta name='frame-pixel'>"

[[rules]]
name = "viewed"
event = "ConversationStart"
path = "/apply/job_app"
status = [200]
job_name = "css:h1"
send_to = ["hook"]

[sinks.hook]
type = "webhook"
url = "{{recorder}}/hooks/x"
secret = "s"
"""
    site_seen: list[Seen] = []
    try:
        async with stack(lambda origin: company_site(ats, site_seen), rules, tmp=tmp_path,
                         proxy_extra='allow_paths = ["/jobs/*", "/apply/job_app"]') as st:
            async with st.session(auto_decompress=True) as c:
                async with c.get("/jobs/backend") as r:
                    assert "frame-pixel" not in await r.text()    # not under /apply/
                async with c.get("/apply/job_app?for=acme&token=9") as r:
                    assert "frame-pixel" in await r.text()
                async with c.get("/apply/job_app/confirmation") as r:
                    assert r.status == 404                        # not in allow_paths
                async with c.get("/embed/job_app") as r:
                    assert r.status == 404                        # the upstream's own path
            hook = await st.recorder.wait_for(lambda r: r.network == "webhook", timeout=15)
            assert hook.json()["event"] == "ConversationStart"
            assert hook.json()["jobName"] == TITLE
            assert hook.json()["url"].endswith("/apply/job_app?for=acme&token=9")
    finally:
        await ats_runner.cleanup()
    assert [s.raw_path for s in ats_seen] == ["/embed/job_app?for=acme&token=9"]
    assert [s.raw_path for s in site_seen] == ["/jobs/backend"]
