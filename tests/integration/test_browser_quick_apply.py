"""The demo's single-page quick apply in headless Chromium, through the real proxy.

The demo as `careers-edge demo` runs it: the job page's own script sends the quick
apply with fetch, and the script the proxy injected tracks the pixel when that
request completes. What the page's Meta pixel is called with (`fbq.queue`:
fbevents.js cannot load, every host but loopback resolves to nothing) is read back
and compared with what the recorder got from the Conversions API: one event id, one
name. A rejected attempt fires neither, a page loaded afterwards does not track the
event again, and with JavaScript off the carry cookie tracks it on the next page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from selenium.webdriver.common.by import By

from proxy.demo.jobs import job_by_id
from proxy.demo.recorder import RecordedRequest
from proxy.demo.run import ENV_RECORDER, ENV_UPSTREAM, Demo, running_demo
from proxy.edge import EDGE
from proxy.handoff import CARRY_COOKIE, FIRED_COOKIE
from tests.integration.browser import Browser, tracked
from tests.integration.harness import free_port
from tests.integration.procs import metric_value

pytestmark = pytest.mark.browser

PIXEL_ID = "123456789012345"
STATE_JS = """return {
  queue: window.fbq ? Array.from(fbq.queue, a => Array.from(a)) : null,
  events: window.careersEdge ? careersEdge.events : null,
  result: (document.getElementById('quick-apply-status') || {dataset: {}}).dataset.result,
};"""


@pytest.fixture
async def demo(tmp_path, monkeypatch) -> AsyncIterator[Demo]:
    monkeypatch.chdir(tmp_path)                      # the demo's state file lands here
    for var in (ENV_UPSTREAM, ENV_RECORDER):         # set by the demo; restored after
        monkeypatch.setenv(var, "")
    async with running_demo(free_port(), "127.0.0.1", free_port()) as d:
        yield d


def page_views(queue: list[list]) -> int:
    return len(tracked(queue, "PageView"))


def quick_apply_fired(demo: Demo) -> float:
    text = demo.app[EDGE].metrics.render()[0].decode()
    return metric_value(text, "edge_rules_fired_total", rule="quick apply accepted")


def is_meta(r: RecordedRequest) -> bool:
    return r.network == "meta"


async def fill(browser: Browser, name: str, value: str) -> None:
    field = await browser.call(browser.driver.find_element, By.CSS_SELECTOR,
                               f"#quick-apply [name={name}]")
    await browser.call(field.clear)
    if value:
        await browser.call(field.send_keys, value)


async def submit(browser: Browser, expect: str) -> dict:
    button = await browser.call(browser.driver.find_element, By.CSS_SELECTOR,
                                "#quick-apply button")
    await browser.js("document.getElementById('quick-apply-status').dataset.result = ''")
    await browser.call(button.click)
    await browser.wait_until(lambda d: d.execute_script(STATE_JS)["result"] == expect)
    return await browser.js(STATE_JS)


def the_pixel_call(queue: list[list], server: dict, visitor: str) -> None:
    """The page tracked the server event once: same name, same id, the visitor's data."""
    [call] = tracked(queue, server["event_name"])
    assert call[0] == "track" and call[3] == {"eventID": server["event_id"]}
    assert call[2]["linksClickedId"] == visitor
    assert call[2].get("jobName") == server["custom_data"].get("jobName")


async def test_quick_apply_tracks_the_pixel_with_the_server_events_id(browser: Browser,
                                                                      demo: Demo) -> None:
    await browser.get(f"{demo.proxy_url}/jobs/3?fbclid=IwAR-quick")
    visitor = await browser.cookie("linksClickedId")
    assert visitor

    # Rejected (no e-mail): the site says 200 {"ok": false}; nothing is tracked anywhere.
    await fill(browser, "name", "Ann")
    state = await submit(browser, "rejected")
    assert tracked(state["queue"], "SubmitApplication") == []
    assert quick_apply_fired(demo) == 0         # events are durable before the answer
    assert await browser.cookie(CARRY_COOKIE) is None

    await fill(browser, "email", "ann@example.com")
    state = await submit(browser, "accepted")
    [server] = (await demo.recorder.wait_for(is_meta)).json()["data"]
    assert server["event_name"] == "SubmitApplication"
    assert server["custom_data"]["jobName"] == job_by_id("3").title
    assert server["event_source_url"] == f"{demo.proxy_url}/jobs/3?fbclid=IwAR-quick"   # the page
    the_pixel_call(state["queue"], server, visitor)
    assert [e["event_id"] for e in state["events"]] == [server["event_id"]]
    assert await browser.cookie(FIRED_COOKIE) == server["event_id"]
    assert quick_apply_fired(demo) == 1

    # The next page gets the carry cookie, and does not track the event again.
    state = await browser.load(f"{demo.proxy_url}/jobs", STATE_JS)
    assert page_views(state["queue"]) == 1 and tracked(state["queue"], "SubmitApplication") == []
    assert state["events"] == []
    assert await browser.cookie(CARRY_COOKIE) is None and await browser.cookie(FIRED_COOKIE) is None
    assert await browser.csp_messages() == []
    assert len(demo.recorder.of("meta")) == 1


async def test_without_javascript_the_carry_tracks_it_on_the_next_page(browser: Browser,
                                                                       demo: Demo) -> None:
    cdp = browser.driver.execute_cdp_cmd
    await browser.call(cdp, "Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        await browser.get(f"{demo.proxy_url}/jobs/2")
        await fill(browser, "name", "Bo")
        await fill(browser, "email", "bo@example.com")
        button = await browser.call(browser.driver.find_element, By.CSS_SELECTOR,
                                    "#quick-apply button")
        await browser.call(button.click)       # the form posts itself to the JSON API
        await browser.wait_until(lambda d: '"ok": true' in d.page_source)
        visitor = await browser.cookie("linksClickedId")
        assert await browser.cookie(CARRY_COOKIE)
    finally:
        await browser.call(cdp, "Emulation.setScriptExecutionDisabled", {"value": False})

    [server] = (await demo.recorder.wait_for(is_meta)).json()["data"]
    state = await browser.load(f"{demo.proxy_url}/jobs", STATE_JS)
    the_pixel_call(state["queue"], server, visitor or "")
    assert await browser.cookie(CARRY_COOKIE) is None
    assert await browser.csp_messages() == []


XHR_AND_FETCH = """
const done = arguments[arguments.length - 1];
(async () => {
  const xhr = await new Promise(resolve => {
    const x = new XMLHttpRequest();
    x.open('POST', '/api/jobs/4/applications');
    x.setRequestHeader('Content-Type', 'application/json');
    x.onload = () => resolve({status: x.status, body: JSON.parse(x.responseText),
                              header: x.getResponseHeader('X-Careers-Edge-Events'),
                              queue: Array.from(fbq.queue, a => Array.from(a))});
    x.send(JSON.stringify({name: 'Di', email: 'di@example.com'}));
  });
  // fetch stays fetch: a Promise of a Response, its body streams, an abort rejects as such.
  const p = fetch('/events?count=3&interval=0');
  const r = await p;
  const reader = r.body.getReader();
  let text = '';
  for (;;) {
    const {done: end, value} = await reader.read();
    if (end) break;
    text += new TextDecoder().decode(value);
  }
  const c = new AbortController();
  const aborted = fetch('/events?count=3&interval=5', {signal: c.signal});
  c.abort();
  const error = await aborted.then(() => null, e => e.name);
  return {xhr, promise: p instanceof Promise, response: r instanceof Response,
          ticks: text.split('event: tick').length - 1, error};
})().then(done, e => done({failed: String(e)}));
"""


async def test_an_xmlhttprequest_is_observed_and_fetch_stays_transparent(
        browser: Browser, demo: Demo) -> None:
    await browser.get(f"{demo.proxy_url}/jobs/4")
    visitor = await browser.cookie("linksClickedId")
    out = await browser.call(browser.driver.execute_async_script, XHR_AND_FETCH)
    assert "failed" not in out, out
    xhr = out["xhr"]
    assert xhr["status"] == 200 and xhr["body"]["ok"] is True and xhr["header"]
    [server] = (await demo.recorder.wait_for(is_meta)).json()["data"]
    # Tracked by the time the request's load handlers run: the headers came first.
    the_pixel_call(xhr["queue"], server, visitor or "")
    assert (out["promise"], out["response"], out["ticks"], out["error"]) == \
        (True, True, 3, "AbortError")
    assert await browser.csp_messages() == []
