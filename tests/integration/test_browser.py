"""The injected pixel in a real browser (issue: attribution and injection, "Done when").

Headless Chromium loads pages through the proxy in front of a real aiohttp site and
we read back what ran: `window.fbq` from the inline Meta base code (its queue holds
`init` and `PageView`: fbevents.js cannot load, every host but loopback resolves to
nothing), the site's own script, and the console for CSP violations. Pages cover no
CSP, nonce policies, a 'self'-only policy, a <meta> policy, gzip and brotli bodies,
the redirect page, and the thank-you flow where the page and the Conversions API
carry one event id under one name.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from collections.abc import AsyncIterator

import brotli
import pytest
from aiohttp import web

from tests.integration.browser import Browser, tracked
from tests.integration.harness import Stack, stack, start

pytestmark = pytest.mark.browser

PIXEL_ID = "123456789012345"
NONCE = "abc123"
JOB_TITLE = "Forklift Driver (m/w/d) – Köln"
PIXEL_RULES = f"""
[pixels.meta]
type = "meta"
pixel_id = "{PIXEL_ID}"
paths = ["/**"]
"""
THANKS_RULES = PIXEL_RULES + f"""
[[rules]]
name = "application submitted"
event = "ApplicationCompleted"
method = "POST"
path = "/jobs/{{job_id}}/apply"
status = [303]
location = "/jobs/*/thanks*"
job_name = "form:job_title"
send_to = ["meta"]

[sinks.meta]
type = "meta"
pixel_id = "{PIXEL_ID}"
access_token = "test-token"
api = "{{recorder}}/v21.0"
event_names = {{ ApplicationCompleted = "SubmitApplication" }}
"""
# What the page holds after load: the Meta queue as plain arrays, our data layer, and
# whether the site's own script ran.
STATE_JS = """return {
  fbq: typeof window.fbq,
  queue: window.fbq ? Array.from(fbq.queue, a => Array.from(a)) : null,
  edge: window.careersEdge || null,
  site: document.body.dataset.siteScript || null,
};"""
INLINE_SITE_SCRIPT = '<script{attrs}>document.body.dataset.siteScript = "ran";</script>'
EXTERNAL_SITE_SCRIPT = '<script src="/app.js"></script>'
LONG_TEXT = "".join(f"Zeile {i}: Lagerlogistik in Zürich – naïve café ✓. " for i in range(6000))


def html(body: str = "", head: str = "", title: str = "Acme Careers") -> str:
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{title}</title>{head}"
            f"</head><body><h1>{title}</h1>{body}</body></html>")


def site_app() -> web.Application:
    """A careers site with one page per CSP situation, compressed pages and an apply flow."""
    inline = INLINE_SITE_SCRIPT.format(attrs="")
    nonced = INLINE_SITE_SCRIPT.format(attrs=f' nonce="{NONCE}"')
    meta = '<meta http-equiv="Content-Security-Policy" content="{}">'
    pages: dict[str, tuple[str, dict[str, str]]] = {
        "/plain": (html(inline), {}),
        "/nonce-strict": (html(nonced), {"Content-Security-Policy":
                          f"script-src 'nonce-{NONCE}' 'strict-dynamic'; object-src 'none'; "
                          "base-uri 'none'"}),
        "/nonce-self": (html(nonced), {"Content-Security-Policy":
                        f"script-src 'self' 'nonce-{NONCE}'; img-src 'self'"}),
        "/self": (html(EXTERNAL_SITE_SCRIPT), {"Content-Security-Policy": "default-src 'self'"}),
        "/self-inline": (html(inline), {"Content-Security-Policy": "default-src 'self'"}),
        "/meta-self": (html(EXTERNAL_SITE_SCRIPT, head=meta.format("default-src 'self'")), {}),
        "/meta-nonce": (html(nonced, head=meta.format(f"script-src 'nonce-{NONCE}'")), {}),
        "/jobs/7/apply": (html(
            '<form method="post" action="/jobs/7/apply">'
            f'<input type="hidden" name="job_title" value="{JOB_TITLE}">'
            '<input name="email" value="ada@example.com">'
            '<button id="apply" type="submit">Apply</button></form>' + inline,
            title="Apply"), {}),
        "/jobs/7/thanks": (html(inline, title="Thank you"), {}),
    }
    compressed = html(f'<p id="text">{LONG_TEXT}</p>' + inline).encode()

    async def page(request: web.Request) -> web.Response:
        body, headers = pages[request.path]
        return web.Response(text=body, content_type="text/html", headers=headers)

    async def packed(request: web.Request) -> web.Response:
        coding = request.match_info["coding"]
        data = gzip.compress(compressed) if coding == "gzip" else brotli.compress(compressed)
        return web.Response(body=data, headers={"Content-Type": "text/html; charset=utf-8",
                                                "Content-Encoding": coding})

    async def hashed(request: web.Request) -> web.Response:
        # The site's inline script names its own absolute URL and is allowed by hash.
        script = (f'window.applyUrl = "http://{request.host}/jobs/7/apply"; '
                  'document.body.dataset.siteScript = "ran";')
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        return web.Response(text=html(f"<script>{script}</script>"), content_type="text/html",
                            headers={"Content-Security-Policy":
                                     f"script-src 'self' 'sha256-{digest}'"})

    async def app_js(request: web.Request) -> web.Response:
        return web.Response(text='document.body.dataset.siteScript = "ran";',
                            content_type="application/javascript")

    async def apply(request: web.Request) -> web.Response:
        await request.post()
        raise web.HTTPSeeOther("/jobs/7/thanks?ref=apply")

    app = web.Application()
    for path in pages:
        app.router.add_get(path, page)
    app.router.add_get("/packed/{coding:gzip|br}", packed)
    app.router.add_get("/app.js", app_js)
    app.router.add_get("/hashed", hashed)
    app.router.add_post("/jobs/7/apply", apply)
    return app


@pytest.fixture
async def site(tmp_path) -> AsyncIterator[Stack]:
    async with stack(site_app(), PIXEL_RULES, tmp=tmp_path) as st:
        yield st


async def load(browser: Browser, url: str) -> dict:
    return await browser.load(url, STATE_JS)


def assert_pixel_ran(state: dict) -> str:
    """The base code defined fbq and queued init + PageView; returns the PageView eventID."""
    assert state["fbq"] == "function"
    assert ["init", PIXEL_ID] in state["queue"]
    [page_view] = tracked(state["queue"], "PageView")
    assert page_view[:3] == ["track", "PageView", {}]
    assert re.fullmatch(r"[0-9a-f]{32}", page_view[3]["eventID"])
    return page_view[3]["eventID"]


async def test_page_without_csp(browser: Browser, site: Stack) -> None:
    state = await load(browser, site.proxy_url + "/plain")
    assert_pixel_ran(state)
    assert state["site"] == "ran"
    cookie = await browser.cookie("linksClickedId")
    assert cookie and state["edge"]["linksClickedId"] == cookie
    assert await browser.csp_messages() == []


@pytest.mark.parametrize("path", ["/nonce-strict", "/nonce-self"])
async def test_nonce_policy_runs_pixel_and_site(browser: Browser, site: Stack, path: str) -> None:
    state = await load(browser, site.proxy_url + path)
    assert_pixel_ran(state)
    assert state["site"] == "ran"
    assert await browser.csp_messages() == []


async def test_self_only_policy_gets_the_inline_scripts_hash(browser: Browser,
                                                             site: Stack) -> None:
    state = await load(browser, site.proxy_url + "/self")
    assert_pixel_ran(state)
    assert state["site"] == "ran"
    assert await browser.csp_messages() == []


async def test_an_inline_script_allowed_by_hash_keeps_its_bytes(browser: Browser,
                                                                site: Stack) -> None:
    """Link rewriting would change the script's bytes and so its hash: on a page whose
    policy allows scripts by hash, links are left as they are and the script runs."""
    state = await load(browser, site.proxy_url + "/hashed")
    assert_pixel_ran(state)
    assert state["site"] == "ran"
    assert await browser.js("return window.applyUrl") == site.upstream_url + "/jobs/7/apply"
    assert await browser.csp_messages() == []


async def test_site_policy_is_not_loosened(browser: Browser, site: Stack) -> None:
    """The site's own inline script stays refused where its policy refuses it."""
    state = await load(browser, site.proxy_url + "/self-inline")
    assert_pixel_ran(state)
    assert state["site"] is None
    [refused] = await browser.csp_messages()
    assert "/self-inline" in refused and "inline script" in refused


@pytest.mark.parametrize("path", ["/meta-self", "/meta-nonce"])
async def test_meta_element_policy_is_rewritten(browser: Browser, site: Stack,
                                                path: str) -> None:
    state = await load(browser, site.proxy_url + path)
    assert_pixel_ran(state)
    assert state["site"] == "ran"
    assert await browser.csp_messages() == []


@pytest.mark.parametrize("coding", ["gzip", "br"])
async def test_compressed_page_is_injected_and_intact(browser: Browser, site: Stack,
                                                      coding: str) -> None:
    state = await load(browser, f"{site.proxy_url}/packed/{coding}")
    assert_pixel_ran(state)
    assert state["site"] == "ran"
    assert await browser.js("return document.getElementById('text').textContent") == LONG_TEXT
    # Re-encoded on the way out, not sent on decoded.
    sizes = await browser.js("const n = performance.getEntriesByType('navigation')[0];"
                             "return [n.encodedBodySize, n.decodedBodySize];")
    assert 0 < sizes[0] < sizes[1] // 4


# Logs the page's tracking state once its DOMContentLoaded listeners have all run (the
# head script's own reads late events there), before the redirect page moves on; a
# page that is navigating cannot be asked over WebDriver, its console can be read later.
STATE_HOOK = """document.addEventListener('DOMContentLoaded', function () {
  setTimeout(function () {
    if (!window.careersEdge) return;
    console.log('CE-STATE ' + JSON.stringify({href: location.href, edge: careersEdge,
      queue: window.fbq ? Array.from(fbq.queue, a => Array.from(a)) : null}));
  }, 0);
});"""


def logged_states(entries: list[dict]) -> list[dict]:
    out = []
    for e in entries:
        msg = e["message"]
        if "CE-STATE " in msg and '"' in msg:
            text = json.loads(msg[msg.index('"'):])        # console-api L:C "<string>"
            out.append(json.loads(text.removeprefix("CE-STATE ")))
    return out


async def test_redirect_page_tracks_redirect_then_lands(browser: Browser, tmp_path) -> None:
    async def landed(request: web.Request) -> web.Response:
        return web.Response(text=html("landed", title="Landed"), content_type="text/html")

    landing = web.Application()
    landing.router.add_get("/landed", landed)
    land_runner, land_port = await start(landing)
    target = f"http://127.0.0.1:{land_port}/landed?job=7"
    rules = PIXEL_RULES + f'\n[redirect]\nallow = ["http://127.0.0.1:{land_port}/*"]\n'
    cdp = browser.driver.execute_cdp_cmd
    hook = await browser.call(cdp, "Page.addScriptToEvaluateOnNewDocument",
                              {"source": STATE_HOOK})
    try:
        async with stack(site_app(), rules, tmp=tmp_path) as st:
            go_path = f"/_edge/go?to=http://127.0.0.1:{land_port}/landed%3Fjob%3D7"
            async with st.session() as http, http.get(go_path) as resp:
                assert resp.status == 200, await resp.text()     # fail fast, with the reason
            await browser.get(st.proxy_url + go_path)
            await browser.wait_until(lambda d: d.current_url == target and d.execute_script(
                "return document.readyState === 'complete' && document.title") == "Landed")
            cookie = await browser.cookie("linksClickedId")
            states = [s for s in logged_states(await browser.console())
                      if s["href"].startswith(st.proxy_url + "/_edge/go")]
    finally:
        await browser.call(cdp, "Page.removeScriptToEvaluateOnNewDocument",
                           {"identifier": hook["identifier"]})
        await land_runner.cleanup()

    [state] = states
    assert state["queue"] is not None and ["init", PIXEL_ID] in state["queue"]
    [event] = [e for e in state["edge"]["events"] if e["event"] == "RedirectPage"]
    assert cookie and event["data"]["linksClickedId"] == cookie
    [call] = tracked(state["queue"], "RedirectPage")
    assert call == ["trackCustom", "RedirectPage", event["data"], {"eventID": event["event_id"]}]


async def test_thank_you_page_tracks_the_server_events_id_and_name(browser: Browser,
                                                                   tmp_path) -> None:
    async with stack(site_app(), THANKS_RULES, tmp=tmp_path) as st:
        state = await load(browser, st.proxy_url + "/jobs/7/apply")
        assert_pixel_ran(state)
        assert tracked(state["queue"], "SubmitApplication") == []
        await browser.click_to_page("apply", "/jobs/7/thanks", "Thank you")
        state = await browser.js(STATE_JS)
        cookie = await browser.cookie("linksClickedId")
        carried = await browser.cookie("ce_events")
        sent = await st.recorder.wait_for(lambda r: r.network == "meta")

    [server] = sent.json()["data"]
    assert server["event_name"] == "SubmitApplication"
    assert server["custom_data"]["jobName"] == JOB_TITLE
    assert_pixel_ran(state)
    assert state["site"] == "ran"
    [call] = tracked(state["queue"], "SubmitApplication")
    assert call == ["track", "SubmitApplication",
                    {"linksClickedId": cookie, "jobName": JOB_TITLE},
                    {"eventID": server["event_id"]}]
    assert [(e["event"], e["event_id"]) for e in state["edge"]["events"]] == \
        [("ApplicationCompleted", server["event_id"])]
    assert carried is None          # the carry cookie was spent on this page
    assert await browser.csp_messages() == []
