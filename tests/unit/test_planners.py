"""The request path's planners as functions of values: no socket, no `Edge`.

A request is a `RequestView`; an upstream answer is its head (status, headers,
length). From those, `attribute`, `check_rules`, `plan_page` and `plan_head` say
what the visitor gets: headers, Set-Cookies, the length rule, the transform, the
events to fire and how the browser hears of them.
"""

from __future__ import annotations

import base64
import textwrap
from dataclasses import dataclass, field

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.attribution.visit import Visit
from proxy.config.load import load_config_text
from proxy.detect.json_body import JsonCollector
from proxy.firing import Planned, RuleCheck, check_rules, event_source_url
from proxy.handoff import CARRY_COOKIE, Incoming, carry_cookie
from proxy.http.headers import ClientView, response_headers
from proxy.page import PagePlan, plan_page
from proxy.pixels import BrowserEvent
from proxy.request_view import RequestView, attribute
from proxy.response_head import ResponseHead, plan_head
from proxy.runtime import Runtime, compile_runtime
from proxy.transform.header_plan import HeaderPlans
from proxy.transform.template import TemplateCache

ORIGIN = "http://127.0.0.1:9"
PUBLIC = "https://careers.example"
HTML = [(b"Content-Type", b"text/html; charset=utf-8"), (b"Content-Length", b"4800"),
        (b"ETag", b'"abc"'), (b"Server", b"nginx")]
JSON = [(b"Content-Type", b"application/json"), (b"Content-Length", b"80")]

BASE = f"""
[proxy]
upstream = "{ORIGIN}"
rewrite_links = false

[[rules]]
name = "apply form viewed"
event = "ConversationStart"
method = "GET"
path = "/jobs/{{job_id}}/apply"
status = [200]
send_to = ["meta"]

[[rules]]
name = "applied by fetch"
event = "ApplicationCompleted"
method = "POST"
path = "/api/apply"
status = [200]
json = {{ ok = "true" }}
job_name = "json:job.title"
send_to = ["meta"]

[sinks.meta]
type = "meta"
pixel_id = "111"
access_token = "t"
"""
PIXEL = """
[pixels.meta]
type = "meta"
pixel_id = "111"
paths = ["/**"]
"""
CONSENT = """
[consent]
required = true
cookie = "cookie_consent"
granted = ["all"]
"""


def runtime(*extra: str) -> Runtime:
    text = textwrap.dedent(BASE + "".join(extra))
    return compile_runtime(load_config_text(text, "rules.toml", {}), b"k" * 32)


PLAIN, PIXELS, CONSENTED = runtime(), runtime(PIXEL), runtime(PIXEL, CONSENT)


def view(method: str = "GET", target: str = "/jobs/1", *, cookie: str | None = None,
         referer: str | None = None, if_none_match: str = "", script: bool = False
         ) -> RequestView:
    path, _, query = target.partition("?")
    client = ClientView("203.0.113.9", "https", "careers.example", b"203.0.113.9")
    return RequestView(method, target, path, query, cookie, "text/html", referer,
                       "Mozilla/5.0", False, if_none_match, script, client, "r" * 16, PUBLIC)


@dataclass(frozen=True)
class Up:
    """An upstream answer's head, as `plan_head` reads it."""

    status: int = 200
    headers: list[tuple[bytes, bytes]] = field(default_factory=lambda: list(HTML))
    reason: bytes = b"OK"
    head_request: bool = False

    @property
    def content_length(self) -> int | None:
        for k, v in self.headers:
            if k.lower() == b"content-length":
                return int(v)
        return None

    def has_body(self) -> bool:
        s = self.status
        return not (self.head_request or s < 200 or s in (204, 304))


@dataclass
class Planning:
    visit: Visit
    check: RuleCheck | None
    early: list[Planned]
    page: PagePlan
    incoming: Incoming
    out_headers: list[tuple[str, str]]


def plan(rt: Runtime, v: RequestView, up: Up, *, form: dict[str, str] | None = None
         ) -> Planning:
    """The planners in the pipeline's order, up to the page (the head needs the events
    the outbox let through: `head` below)."""
    visit = attribute(rt.attribution, v)
    out = response_headers(up.headers, rt.rewriter, v.public_origin, v.client.host)
    candidates = rt.rules.candidates(v.method, v.path, v.query)
    check = check_rules(candidates, v, up.status, up.headers, out, rt.rewriter,
                        has_body=up.has_body(), form=form or {}, json=None) \
        if candidates else None
    early = check.events(visit, v, rt.sinks) if check is not None and check.early else []
    incoming = Incoming.read(v.cookie)
    if not visit.consent:
        incoming = incoming.dropped()
    page = plan_page(rt, v, up.status, out, visit, list(incoming.pending),
                     wants_body=check is not None and check.wants_html, feed_wants=False,
                     header_plans=HeaderPlans(), templates=TemplateCache())
    return Planning(visit, check, early, page, incoming, out)


def head(rt: Runtime, v: RequestView, up: Up, p: Planning,
         fired: list[BrowserEvent] | None = None, document: int | None = None) -> ResponseHead:
    return plan_head(v, p.visit, up, p.page, p.incoming, fired or [], pixels=bool(rt.pixels),
                     has_body=up.has_body(), document=document, hold=False)


def browser(planned: list[Planned]) -> list[BrowserEvent]:
    """What the outbox lets through when it takes every event (no dedupe)."""
    return [BrowserEvent(p.event.name, p.event.event_id,
                         {"linksClickedId": p.event.links_clicked_id or ""}) for p in planned]


def names(cookies: object) -> list[str]:
    return [c.split("=", 1)[0] for c in cookies]  # type: ignore[attr-defined]


# --- pages ----------------------------------------------------------------------------

def test_a_page_with_nothing_to_add_passes_through_with_its_length() -> None:
    v, up = view(), Up()
    p = plan(PLAIN, v, up)
    assert p.page.transform is None and p.page.headers == p.out_headers
    assert p.check is None and p.early == []
    h = head(PLAIN, v, up, p)
    assert (h.status, h.reason, h.content_length, h.framing) == (200, "OK", 4800, "length")
    assert h.headers == p.out_headers and h.events_header is None
    assert ("ETag", '"abc"') in h.headers


def test_a_page_with_pixels_is_transformed_and_streams_chunked() -> None:
    v, up = view(), Up()
    p = plan(PIXELS, v, up)
    assert p.page.transform is not None and p.page.transform.has_snippets
    assert p.page.consumed_carry
    assert ("ETag", 'W/"abc"') in p.page.headers      # the bytes change: the tag weakens
    assert not any(k.lower() == "content-length" for k, _ in p.page.headers)
    h = head(PIXELS, v, up, p)
    assert (h.content_length, h.framing) == (None, "chunked")
    # The same page read whole and transformed first goes out with its own length.
    whole = head(PIXELS, v, up, p, document=5123)
    assert (whole.content_length, whole.framing) == (5123, "length")


def test_a_304_repeats_the_weakened_etag_and_has_no_body() -> None:
    v = view(if_none_match='W/"abc"')
    up = Up(304, [(b"ETag", b'"abc"')], b"Not Modified")
    p = plan(PIXELS, v, up)
    assert p.page.transform is None
    assert ("ETag", 'W/"abc"') in p.page.headers
    h = head(PIXELS, v, up, p)
    assert (h.status, h.content_length, h.framing) == (304, None, "none")
    # Asked without a weak validator, the tag is the upstream's own.
    p = plan(PIXELS, view(if_none_match='"abc"'), up)
    assert ("ETag", '"abc"') in p.page.headers


def test_a_head_request_keeps_the_upstream_length_and_gets_no_pixels() -> None:
    v, up = view("HEAD"), Up(head_request=True)
    p = plan(PIXELS, v, up)
    assert p.page.transform is None and not p.page.consumed_carry
    h = head(PIXELS, v, up, p)
    assert (h.content_length, h.framing) == (4800, "length")


def test_a_rule_on_the_head_fires_before_the_answer() -> None:
    v = view(target="/jobs/7/apply?fbclid=IwAR-x")
    p = plan(PIXELS, v, Up())
    assert p.check is not None and p.check.early
    [planned] = p.early
    ev = planned.event
    assert (ev.name, ev.job_id, ev.rule) == ("ConversationStart", "7", "apply form viewed")
    assert ev.url == f"{PUBLIC}/jobs/7/apply?fbclid=IwAR-x"
    assert (ev.client_ip, ev.user_agent) == ("203.0.113.9", "Mozilla/5.0")
    assert ev.click_ids == {"fbclid": "IwAR-x"}
    assert [s.name for s in planned.sinks] == ["meta"]


def test_a_json_answer_a_rule_reads_names_its_event_in_the_header() -> None:
    v = view("POST", "/api/apply", referer=f"{PUBLIC}/jobs/3", script=True,
             cookie="linksClickedId=" + "a" * 32)
    up = Up(headers=list(JSON))
    p = plan(PIXELS, v, up)
    assert p.check is not None and not p.check.early and p.check.wants_json
    assert p.early == [] and p.page.transform is None
    watch = JsonCollector.for_response(up.headers, up.content_length)
    watch.feed(b'{"ok": true, "job": {"title": "Welder"}}')
    doc = watch.document()
    planned = p.check.events(p.visit, v, PIXELS.sinks, doc.raw, doc)
    [ev] = [x.event for x in planned]
    assert (ev.name, ev.job_name) == ("ApplicationCompleted", "Welder")
    assert ev.url == f"{PUBLIC}/jobs/3"       # the page the fetch was sent from
    fired = browser(planned)
    h = head(PIXELS, v, up, p, fired)
    assert h.events_header is not None
    [item] = orjson.loads(h.events_header)
    assert (item["event"], item["event_id"]) == ("ApplicationCompleted", ev.event_id)
    assert names(h.set_cookies)[-1] == CARRY_COOKIE      # and carried, for a page
    assert (h.content_length, h.framing) == (80, "length")
    # A JSON answer that does not say so fires nothing.
    watch = JsonCollector.for_response(up.headers, up.content_length)
    watch.feed(b'{"ok": false}')
    doc = watch.document()
    assert p.check.events(p.visit, v, PIXELS.sinks, doc.raw, doc) == []


def test_a_carried_event_is_tracked_by_the_next_page_and_the_carry_spent() -> None:
    carried = BrowserEvent("ApplicationCompleted", "c" * 32, {"linksClickedId": "a" * 32})
    value = carry_cookie([carried], True).split(";", 1)[0]
    v = view(cookie=f"linksClickedId={'a' * 32}; {value}")
    up = Up()
    p = plan(PIXELS, v, up)
    assert p.incoming.pending == (carried,) and p.incoming.had_carry
    assert p.page.transform is not None and p.page.consumed_carry
    assert b"c" * 32 in p.page.transform.finish([])   # the page tracks it
    h = head(PIXELS, v, up, p)
    [cleared] = [c for c in h.set_cookies if c.startswith(CARRY_COOKIE + "=")]
    assert "Max-Age=0" in cleared and h.events_header is None


def test_consent_refused_no_pixel_and_no_carried_event_tracked() -> None:
    carried = BrowserEvent("ApplicationCompleted", "c" * 32, {})
    value = carry_cookie([carried], True).split(";", 1)[0]
    v = view(target="/jobs/7/apply", cookie=value, script=True)
    up = Up()
    p = plan(CONSENTED, v, up)
    assert not p.visit.consent
    assert p.page.transform is None and p.page.headers == p.out_headers
    assert p.incoming.pending == () and p.incoming.had_carry
    assert [x.event.name for x in p.early] == ["ConversationStart"]  # the outbox decides
    h = head(CONSENTED, v, up, p)
    assert h.events_header is None             # not even to a script that asks
    assert CARRY_COOKIE not in names(h.set_cookies)
    # Agreed to, the same page gets its pixel.
    v = view(target="/jobs/7/apply", cookie="cookie_consent=all")
    p = plan(CONSENTED, v, up)
    assert p.visit.consent and p.page.transform is not None


def test_set_cookies_come_from_the_visit_then_the_handoff() -> None:
    v = view(target="/jobs/1?fbclid=IwAR-abc")
    up = Up(302, [(b"Location", f"{ORIGIN}/jobs/1/thanks".encode())], b"Found")
    p = plan(PIXELS, v, up)
    visit_cookies = list(p.visit.set_cookies)
    assert "linksClickedId" in names(visit_cookies) and "_fbc" in names(visit_cookies)
    h = head(PIXELS, v, up, p)
    assert list(h.set_cookies) == visit_cookies
    fired = [BrowserEvent("ApplicationCompleted", "e" * 32, {})]
    h = head(PIXELS, v, up, p, fired)
    assert list(h.set_cookies[:len(visit_cookies)]) == visit_cookies
    assert names(h.set_cookies[len(visit_cookies):]) == [CARRY_COOKIE]
    assert h.events_header is None             # a redirect's headers reach no script
    assert ("Location", f"{PUBLIC}/jobs/1/thanks") in h.headers
    carry = h.set_cookies[-1].split(";", 1)[0].split("=", 1)[1]
    assert orjson.loads(base64.urlsafe_b64decode(carry + "=" * (-len(carry) % 4)))[0][1] \
        == "e" * 32


def test_an_event_comes_from_the_page_it_was_sent_from_when_that_is_ours() -> None:
    page = f"{PUBLIC}/api/apply"
    assert event_source_url(view("GET", "/jobs/1"), page) == page
    assert event_source_url(view("POST", referer=f"{PUBLIC}/jobs/3"), page) == \
        f"{PUBLIC}/jobs/3"
    assert event_source_url(view("POST", referer="https://elsewhere.example/x"), page) == page
    assert event_source_url(view("GET", referer=f"{PUBLIC}/jobs/3", script=True), page) == \
        f"{PUBLIC}/jobs/3"
    assert event_source_url(view("POST", referer=f"{PUBLIC}/" + "x" * 3000), page) == page


# --- open inputs ----------------------------------------------------------------------

TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
VALUE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=30)
HEADERS = st.lists(st.tuples(TOKEN.map(str.encode), VALUE.map(str.encode)), max_size=8)


@settings(max_examples=200, deadline=None)
@given(status=st.integers(100, 599), headers=HEADERS,
       length=st.none() | st.integers(0, 10**9), method=st.sampled_from(["GET", "HEAD", "POST"]),
       pixels=st.booleans(), document=st.none() | st.integers(0, 10**6))
def test_the_length_rule_holds_for_any_status_and_headers(
        status: int, headers: list[tuple[bytes, bytes]], length: int | None, method: str,
        pixels: bool, document: int | None) -> None:
    rt = PIXELS if pixels else PLAIN
    headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    if length is not None:
        headers.append((b"Content-Length", str(length).encode()))
    v, up = view(method, "/jobs/1"), Up(status, headers, head_request=method == "HEAD")
    p = plan(rt, v, up)
    h = head(rt, v, up, p, document=document)
    assert (h.content_length is not None) == (h.framing == "length")
    if document is not None:
        assert h.content_length == document
    elif p.page.transform is not None or status < 200 or status in (204, 304):
        assert h.content_length is None
    else:
        assert h.content_length == length
    if h.framing == "chunked":
        assert up.has_body()
    assert h.status == status


@settings(max_examples=200, deadline=None)
@given(status=st.integers(100, 599), headers=HEADERS)
def test_without_pixels_or_rules_the_upstream_headers_pass_as_filtered(
        status: int, headers: list[tuple[bytes, bytes]]) -> None:
    v, up = view(target="/about"), Up(status, headers)
    p = plan(PLAIN, v, up)
    assert p.page.transform is None and p.page.headers == p.out_headers
    h = head(PLAIN, v, up, p)
    assert h.headers == p.out_headers and h.events_header is None
    assert list(h.set_cookies) == list(p.visit.set_cookies)
