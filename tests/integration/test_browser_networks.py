"""The tiktok, linkedin and google pixels in a real browser, through a real proxy.

Every host but loopback resolves to nothing, so each network's library fails to load
and its documented queue keeps the page's calls: `ttq` (TikTok), `lintrk.q` (the
Insight Tag), `dataLayer` (gtag.js). After an application the thank-you page's calls
carry the id of the server-side event; under the site's CSP nothing is refused.
"""

from __future__ import annotations

import pytest

from tests.integration.browser import Browser
from tests.integration.harness import stack
from tests.integration.test_browser import JOB_TITLE, site_app
from tests.tcf_strings import GOOGLE, tc_string
from tests.test_pixel_tags import NETWORK_PIXELS

pytestmark = pytest.mark.browser

RULES = """
[consent]
tcf = true
""" + NETWORK_PIXELS + """
[[rules]]
name = "application submitted"
event = "ApplicationCompleted"
method = "POST"
path = "/jobs/{job_id}/apply"
status = [303]
location = "/jobs/*/thanks*"
job_name = "form:job_title"
send_to = ["ats"]

[sinks.ats]
type = "webhook"
url = "{recorder}/hooks/ats"
secret = "s"
"""
STATE_JS = """return {
  ttq: window.ttq ? Array.from(ttq, a => Array.from(a)) : null,
  lintrk: window.lintrk && window.lintrk.q ? window.lintrk.q : null,
  partners: window._linkedin_data_partner_ids || null,
  dl: window.dataLayer ? Array.from(dataLayer, a => typeof a === 'object' && a.length !== undefined
                                     ? Array.from(a).map(String) : [String(a)]) : null,
  calls: window.dataLayer ? Array.from(dataLayer).filter(a => a[0] === 'event' ||
                                                              a[0] === 'consent')
                                        .map(a => Array.from(a)) : null,
  events: window.careersEdge ? careersEdge.events : null,
  site: document.body.dataset.siteScript || null,
};"""


def assert_tags_loaded(state: dict) -> None:
    assert ["load", "CJMB7ERC77U2JVNG7RF0"] not in state["ttq"]      # load runs, not queued
    assert ["page"] in state["ttq"]
    assert state["partners"] == ["5123456"] and isinstance(state["lintrk"], list)
    assert ["config", "AW-987654321"] in state["dl"]


@pytest.mark.parametrize("path", ["/plain", "/self", "/nonce-strict", "/nonce-self",
                                  "/meta-self", "/meta-nonce"])
async def test_tags_run_under_the_sites_policy(browser: Browser, tmp_path, path: str) -> None:
    async with stack(site_app(), RULES, tmp=tmp_path) as st:
        state = await browser.load(st.proxy_url + path, STATE_JS)
    assert_tags_loaded(state)
    assert state["site"] == "ran"
    assert await browser.csp_messages() == []


async def test_thank_you_page_calls_carry_the_server_events_id(browser: Browser,
                                                                tmp_path) -> None:
    async with stack(site_app(), RULES, tmp=tmp_path) as st:
        before = await browser.load(st.proxy_url + "/jobs/7/apply", STATE_JS)
        await browser.click_to_page("apply", "/jobs/7/thanks", "Thank you")
        state = await browser.js(STATE_JS)
        hook = await st.recorder.wait_for(lambda r: r.network == "webhook")

    assert_tags_loaded(before)
    assert not [c for c in before["ttq"] if c[0] == "track"] and before["lintrk"] == []
    server = hook.json()
    assert server["event"] == "ApplicationCompleted" and server["jobName"] == JOB_TITLE
    event_id = server["event_id"]
    assert_tags_loaded(state)
    assert [c for c in state["ttq"] if c[0] == "track"] == [
        ["track", "SubmitForm", {"content_name": JOB_TITLE}, {"event_id": event_id}]]
    assert state["lintrk"] == [["track", {"conversion_id": 18734562, "event_id": event_id}]]
    assert [c for c in state["calls"] if c[0] == "event"] == [
        ["event", "conversion", {"send_to": "AW-987654321/AbC-dEf_1",
                                 "transaction_id": event_id}]]
    assert [(e["event"], e["event_id"]) for e in state["events"]] == \
        [("ApplicationCompleted", event_id)]
    assert await browser.csp_messages() == []


async def test_consent_mode_default_follows_the_tc_string(browser: Browser, tmp_path) -> None:
    tc = tc_string(purposes=[1, 3, 4], vendors=[GOOGLE])      # no purpose 7
    async with stack(site_app(), RULES, tmp=tmp_path) as st:
        await browser.call(browser.driver.execute_cdp_cmd, "Network.setCookie",
                           {"name": "euconsent-v2", "value": tc, "url": st.proxy_url})
        state = await browser.load(st.proxy_url + "/plain", STATE_JS)
    [consent] = [c for c in state["calls"] if c[0] == "consent"]
    assert consent == ["consent", "default", {"ad_storage": "granted",
                                              "ad_user_data": "denied",
                                              "ad_personalization": "granted"}]
    assert state["dl"].index(["consent", "default", "[object Object]"]) < \
        state["dl"].index(["config", "AW-987654321"])


async def test_no_purpose_one_no_tags(browser: Browser, tmp_path) -> None:
    tc = tc_string(purposes=[2, 7], vendors=[GOOGLE])
    async with stack(site_app(), RULES, tmp=tmp_path) as st:
        await browser.call(browser.driver.execute_cdp_cmd, "Network.setCookie",
                           {"name": "euconsent-v2", "value": tc, "url": st.proxy_url})
        state = await browser.load(st.proxy_url + "/plain", STATE_JS)
    assert state["ttq"] is None and state["dl"] is None and state["events"] is None
    assert state["site"] == "ran"
