"""The operators' UI in headless Chromium against a real proxy process, the demo site
as the careers site and the recorder as the networks.

One story, in the order an operator lives it: the page asks for the admin token;
visitors land and apply while it is open and their conversions and deliveries show
up live; a visitor's journey lists every delivery; the webhook that answered 400
left a dead letter whose Retry button re-queues it, and it is delivered once the
webhook answers 200; a preview visitor's events are marked and kept out of the
funnel; a job title made of HTML stays text; the funnel and the rules draw. The console must hold no error once the token is given.

With CAREERS_EDGE_SCREENSHOTS=DIR the views are saved as DIR/ui-live.png,
DIR/ui-journey.png and DIR/ui-funnel.png (the README's pictures); otherwise to a
temporary folder, so a test run never changes the checkout.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path

import aiohttp
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from proxy.demo.recorder import Recorder
from proxy.demo.site import build_site, serve
from tests.integration.browser import Browser, local_browser
from tests.integration.harness import start
from tests.integration.procs import REPO, ProxyProcess, apply_rule, running, write_rules

pytestmark = pytest.mark.browser

ADMIN_TOKEN = "ops-ui-admin-token"
API_TOKEN = "ops-ui-api-token"
PREVIEW_TOKEN = "ops-ui-preview-token"
HOSTILE = "<img src=x onerror=alert(1)>"
TLR_SID = "7f3c2a10-5b2e-4c1d-9a8e-2f6b1c0d9e44"     # Talroo's ids are UUIDs
ENV = {"CAREERS_EDGE_BACKOFF_CAP": "1"}
RULES = f"""
[attribution]
params = ["tlr_sid", "fbclid", "gclid"]

[admin]
token = "{ADMIN_TOKEN}"
preview_token = "{PREVIEW_TOKEN}"

[api]
token = "{API_TOKEN}"

[[rules]]
name = "apply form viewed"
event = "ConversationStart"
method = "GET"
path = "/jobs/{{job_id}}/apply"
status = [200]
job_name = "css:h1"
send_to = ["meta"]
{apply_rule("talroo", "meta", "ats")}
[sinks.talroo]
type = "talroo"
url = "{{recorder}}/conversion2.php"

[sinks.meta]
type = "meta"
pixel_id = "123456789012345"
access_token = "meta-test-token"
api = "{{recorder}}/v21.0"

[sinks.ats]
type = "webhook"
url = "{{recorder}}/hooks/ats"
secret = "ops-ui-webhook-secret"
"""
WINDOW = (1360, 860)


@pytest.fixture(scope="module")
def driver() -> Iterator:
    with local_browser() as d:
        d.set_window_size(*WINDOW)
        yield d


@asynccontextmanager
async def proxy_world(tmp_path: Path, rules_text: str
                      ) -> AsyncIterator[tuple[ProxyProcess, Recorder]]:
    """The demo site, the recorder and a proxy process running `rules_text`."""
    site_runner, upstream = await serve(build_site)
    recorder = Recorder()
    rec_runner, rec_port = await start(recorder.build_app())
    rules = write_rules(tmp_path, upstream, rules_text, recorder=f"http://127.0.0.1:{rec_port}")
    try:
        async with running(rules, tmp=tmp_path, env=ENV) as proxy:
            yield proxy, recorder
    finally:
        await rec_runner.cleanup()
        await site_runner.cleanup()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[ProxyProcess, Recorder]]:
    async with proxy_world(tmp_path, RULES) as w:
        yield w


def shots_dir(tmp_path: Path) -> Path:
    wanted = os.environ.get("CAREERS_EDGE_SCREENSHOTS")
    folder = (REPO / wanted) if wanted and not os.path.isabs(wanted) else Path(wanted or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def visit(proxy: ProxyProcess, click: str, job_title: str | None = None,
                job: str = "4", preview: bool = False) -> str:
    """A visitor lands on a job with `click` (param=value), opens its form and, given a
    job title, applies; returns their linksClickedId. A `preview` visitor opens the
    preview link first: their events are test events."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(proxy.url, cookie_jar=jar) as c:
        if preview:
            async with c.get(f"{proxy.prefix}/preview?token={PREVIEW_TOKEN}") as r:
                assert r.status == 200, await r.text()
        async with c.get(f"/jobs/{job}?{click}") as r:
            assert r.status == 200
        async with c.get(f"/jobs/{job}/apply") as r:
            assert r.status == 200
        if job_title is not None:
            form = {"job_title": job_title, "name": "Ada", "email": "ada@example.com"}
            async with c.post(f"/jobs/{job}/apply", data=form, allow_redirects=False) as r:
                assert r.status == 303, await r.text()
    return next(m.value for m in jar if m.key == "linksClickedId")


async def hire(proxy: ProxyProcess, visitor: str, job: str = "Forklift Driver",
               session: aiohttp.ClientSession | None = None) -> None:
    async with aiohttp.ClientSession() if session is None else nullcontext(session) as c, \
            c.post(f"{proxy.url}{proxy.prefix}/api/events", json={
                "event": "Hire", "linksClickedId": visitor, "jobName": job},
                headers={"Authorization": f"Bearer {API_TOKEN}"}) as r:
        assert r.status == 202, await r.text()


def webhook(status: int):
    return lambda r: r.network == "webhook" and r.status == status


def accepted(visitor: str):
    """The webhook accepting `visitor`'s application."""
    return lambda r: (webhook(200)(r) and r.json()["event"] == "ApplicationCompleted"
                      and r.json()["linksClickedId"] == visitor)


async def text_of(browser: Browser, css: str) -> str:
    return await browser.js("const e = document.querySelector(arguments[0]);"
                            "return e ? e.textContent : '';", css)


async def wait_text(browser: Browser, css: str, *needles: str) -> str:
    """The text of `css` once it holds every needle."""
    found: list[str] = []

    def holds(d) -> bool:
        text = d.execute_script("const e = document.querySelector(arguments[0]);"
                                "return e ? e.textContent : '';", css)
        found[:] = [text]
        return all(n in text for n in needles)

    try:
        await browser.wait_until(holds)
    except Exception as err:
        raise AssertionError(f"{css} never held {needles}: {found[0][:2000]!r}") from err
    return found[0]


async def until_shown(browser: Browser, css: str, needle: str) -> None:
    """Reload the page until `css` holds `needle` (the state may lag the network)."""
    for _ in range(60):
        await browser.call(browser.driver.refresh)
        await browser.wait_until(lambda d: d.execute_script(
            "return document.querySelector(arguments[0]) !== null", css))
        if needle in await text_of(browser, css):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{css} never showed {needle!r}: {await text_of(browser, css)!r}")


async def severe(browser: Browser) -> list[str]:
    return [e["message"] for e in await browser.console() if e["level"] == "SEVERE"]


async def give_token(browser: Browser, ui: str) -> None:
    """The page asks for the token (every API answered 401), refuses a wrong one and
    keeps the right one for the tab."""
    await browser.get(ui)
    for token in ("not-the-token", ADMIN_TOKEN):
        await browser.wait_until(lambda d: d.execute_script(
            "return document.getElementById('token-dialog').open"))
        field = await browser.call(browser.driver.find_element, By.ID, "token-input")
        await browser.call(field.send_keys, token)
        await click(browser, "#token-form button")
        if token != ADMIN_TOKEN:
            await wait_text(browser, "#token-error", "That token was refused.")
    await browser.wait_until(lambda d: d.execute_script(
        "return document.getElementById('conn').dataset.state === 'live'"))
    assert not await browser.js("return document.getElementById('token-dialog').open")
    assert await browser.js("return sessionStorage.getItem('careers-edge.admin-token')") \
        == ADMIN_TOKEN
    # Before the token, the browser reports each refused API call; nothing else.
    for message in await severe(browser):
        assert "/_edge/api/" in message and "401" in message, message


async def shot(browser: Browser, folder: Path, name: str) -> None:
    await browser.js("window.scrollTo(0, 0); document.activeElement.blur();"
                     "document.getAnimations().forEach(a => a.finish())")
    path = folder / name
    assert await browser.call(browser.driver.save_screenshot, str(path))
    assert 0 < path.stat().st_size < 400_000


async def click(browser: Browser, css: str) -> None:
    element = await browser.call(browser.driver.find_element, By.CSS_SELECTOR, css)
    await browser.call(element.click)


async def test_operators_follow_conversions_from_landing_to_delivery(
        world: tuple[ProxyProcess, Recorder], browser: Browser, tmp_path: Path) -> None:
    proxy, recorder = world
    folder = shots_dir(tmp_path)
    ui = f"{proxy.admin_url}{proxy.prefix}/ui/"
    await give_token(browser, ui)
    await wait_text(browser, "#live-empty", "Nothing yet")

    # While the page is open: one visitor's webhook is refused with 400 (dead).
    recorder.fail_next("/hooks/ats", status=400, body='{"error": "unknown job"}')
    first = await visit(proxy, f"tlr_sid={TLR_SID}", "Forklift Driver")
    await recorder.wait_for(webhook(400), timeout=30)
    row = f"#live-rows tr[data-kind=conversion] a[href='#journey/{first}']"
    await browser.wait_until(lambda d: d.execute_script(
        "return document.querySelectorAll(arguments[0]).length", row) == 2)
    live = await wait_text(browser, "#live-rows", "ApplicationCompleted", "ConversationStart",
                           "ats · dead 400", "talroo · sent 200", "meta · sent 200")
    assert "Forklift Driver" in live
    second = await visit(proxy, "gclid=gclid-live-2", HOSTILE)
    third = await visit(proxy, "fbclid=fbclid-live-3")
    await asyncio.gather(visit(proxy, "gclid=gclid-live-4", "Warehouse Associate", job="2"),
                         visit(proxy, "fbclid=fbclid-live-5", "Registered Nurse", job="3"),
                         visit(proxy, "", "Customer Support Specialist", job="6"))
    tester = await visit(proxy, "gclid=gclid-preview", "Product Designer", job="5", preview=True)
    await hire(proxy, first)
    await wait_text(browser, "#live-rows", "Hire", HOSTILE, second, third, "Registered Nurse",
                    "Warehouse Associate", "Customer Support Specialist", "Product Designer")
    marked = await browser.js(
        "return Array.from(document.querySelectorAll('#live-rows tr[data-kind=conversion]'),"
        " r => [r.cells[3].textContent, r.querySelector('.chip.preview') !== null])")
    assert {visitor for visitor, preview in marked if preview} == {tester}
    await shot(browser, folder, "ui-live.png")

    # The journey, found by its click id: every event and every delivery.
    await browser.get(f"{ui}#journey")
    field = await browser.call(browser.driver.find_element, By.ID, "journey-q")
    await browser.call(field.send_keys, TLR_SID)
    await click(browser, "#journey-form button")
    journey = await wait_text(browser, "#journey-out", first, TLR_SID, "Hire",
                              "unknown job")
    sinks = await browser.js(
        "return Array.from(document.querySelectorAll('#journey-out .event'), e => ["
        " e.querySelector('h3').textContent,"
        " Array.from(e.querySelectorAll('tbody tr[data-sink]'), r => r.dataset.sink).sort()])")
    assert sorted(sinks) == [["ApplicationCompleted", ["ats", "meta", "talroo"]],
                             ["ConversationStart", ["meta"]], ["Hire", ["ats", "meta", "talroo"]]]
    dead = await text_of(browser, "#journey-out .event[data-kind=ApplicationCompleted] "
                               "tr[data-sink=ats]")
    assert "dead" in dead and "400" in dead and "Retry" in dead
    assert "Forklift Driver" in journey
    await shot(browser, folder, "ui-journey.png")

    # The dead letter, re-queued from the Sinks view, is delivered once ats answers 200.
    await browser.get(f"{ui}#sinks")
    await wait_text(browser, "#dead-rows", "ats", "ApplicationCompleted", first)
    await wait_text(browser, "#sinks-out", "talroo", "meta", "ats")
    assert await browser.js("return document.querySelectorAll('#sinks-out svg rect').length") > 0
    await click(browser, "#dead-rows tr[data-sink=ats] button.retry")
    await wait_text(browser, "#dead-rows tr[data-sink=ats]", "Re-queued")
    await recorder.wait_for(accepted(first), timeout=30)
    await browser.get(f"{ui}#journey/{first}")
    await until_shown(browser, "#journey-out .event[data-kind=ApplicationCompleted] "
                      "tr[data-sink=ats]", "ats · sent 200")

    # A preview visitor's journey says so; none of its events reached a network.
    await browser.get(f"{ui}#journey/{tester}")
    await wait_text(browser, "#journey-out", "Mode", "preview", "Product Designer")
    statuses = await browser.js(
        "return Array.from(document.querySelectorAll('#journey-out tr[data-sink] .chip'),"
        " c => c.className)")
    assert statuses and all("skipped" in c for c in statuses), statuses

    # Visitors' text is text: an HTML job title, and an HTML search.
    await browser.get(f"{ui}#journey/{second}")
    await wait_text(browser, "#journey-out", HOSTILE, "gclid-live-2")
    await browser.get(f"{ui}#journey/{HOSTILE}")
    await wait_text(browser, "#journey-out", f"No journey found for {HOSTILE}")
    await browser.get(f"{ui}#live")
    await wait_text(browser, "#live-rows", HOSTILE)
    images = await browser.js("return Array.from(document.images, i => i.getAttribute('src'))")
    assert images == ["icon.svg"]

    # The funnel: clicks per source, the steps after them, per day and in a table.
    await browser.get(f"{ui}#funnel")
    await wait_text(browser, "#funnel-table", "tlr_sid", "gclid", "fbclid")
    await browser.call(lambda: Select(browser.driver.find_element(By.ID, "funnel-days"))
                       .select_by_visible_text("7"))
    table = await wait_text(browser, "#funnel-out", "Last 7 days", "tlr_sid", "gclid", "fbclid")
    assert await browser.js("return document.querySelectorAll('#funnel-out svg rect').length") >= 4
    rows = await browser.js(
        "return Object.fromEntries(Array.from(document.querySelectorAll("
        "'#funnel-table tbody tr'), r => [r.dataset.key,"
        " Array.from(r.querySelectorAll('.n'), c => parseInt(c.textContent.replace(/,/g, '')))]))")
    # (the preview visitor's gclid is not counted)
    assert rows["tlr_sid"] == [1, 1, 1, 1] and rows["gclid"] == [2, 2, 2, 0]
    assert rows["fbclid"] == [2, 2, 1, 0], table
    await shot(browser, folder, "ui-funnel.png")
    assert third
    await browser.call(lambda: Select(browser.driver.find_element(By.ID, "funnel-by"))
                       .select_by_value("job"))
    by_job = await wait_text(browser, "#funnel-table", "Job", "Forklift Driver", HOSTILE,
                             "Warehouse Associate")
    assert "Product Designer" not in by_job          # the preview visitor's job

    # Rules: hits and when each last fired.
    await browser.get(f"{ui}#rules")
    await wait_text(browser, "#rules-rows", "application submitted", "apply form viewed")
    hits = await browser.js(
        "return Object.fromEntries(Array.from(document.querySelectorAll('#rules-rows tr'),"
        " r => [r.dataset.rule, [r.cells[1].textContent, r.cells[2].textContent,"
        " r.cells[4].textContent]]))")
    assert hits["application submitted"][:2] == ["ApplicationCompleted", "6"]
    assert hits["apply form viewed"][:2] == ["ConversationStart", "7"]
    assert "ago" in hits["apply form viewed"][2]

    assert await severe(browser) == []


# No sink: the events are only recorded, so a thousand of them cost the machine little.
BULK_RULES = f"""
[admin]
token = "{ADMIN_TOKEN}"

[api]
token = "{API_TOKEN}"
send_to = []
"""
BULK = 1100
LIVE_CAP = 1000
JOURNEY_FLUSH = 1.0       # s between two writes of the journeys waiting in memory


async def test_the_live_view_keeps_a_thousand_rows_newest_on_top(
        browser: Browser, tmp_path: Path) -> None:
    async with proxy_world(tmp_path, BULK_RULES) as (proxy, _):
        ui = f"{proxy.admin_url}{proxy.prefix}/ui/"
        await give_token(browser, ui)
        visitor = await visit(proxy, "gclid=gclid-bulk")
        # Let the journey reach the state first: while the write-behind writes a batch,
        # the journeys in it are neither in its buffer nor stored yet, and the events
        # API answers 404 for them.
        await asyncio.sleep(JOURNEY_FLUSH * 2.5)
        async with aiohttp.ClientSession() as c:
            for first in range(0, BULK, 25):
                await asyncio.gather(*(hire(proxy, visitor, f"Job {n}", c)
                                       for n in range(first, min(first + 25, BULK))))
            await hire(proxy, visitor, "The last hire", c)
        await browser.wait_until(lambda d: d.execute_script(
            "const top = document.querySelector('#live-rows tr');"
            "return top !== null && top.textContent.includes('The last hire')"))
        await wait_text(browser, "#live-count", f"{LIVE_CAP} rows")
        rows = await browser.js("return document.querySelectorAll('#live-rows tr').length")
        assert rows == LIVE_CAP
        # The filter reaches every row kept, and only those.
        field = await browser.call(browser.driver.find_element, By.ID, "live-filter")
        await browser.call(field.send_keys, "The last hire")
        await browser.wait_until(lambda d: d.execute_script(
            "return document.querySelectorAll('#live-rows tr:not([hidden])').length") == 1)
        assert await severe(browser) == []
