"""A page's pixel markup, compiled once per pixel set, and the page transform that
fills it into a kept template: byte for byte what the markup written out from its
parts, streamed through `HtmlTransform`, gives — for any ids, events, nonce,
pixels, document and chunking. And the caches behind them stay bounded.
"""

from __future__ import annotations

import dataclasses
import gzip
import textwrap
from html import escape

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config.load import load_config_text
from proxy.config.model import Config, Pixel
from proxy.http.headers import ClientView, response_headers
from proxy.page import _ORIGINS, _ORIGINS_KEPT, _encoded, plan_page
from proxy.page_script import BOOTSTRAP
from proxy.pixel_tags import google_consent, js
from proxy.pixels import (
    _CONSENTS,
    _CONSENTS_KEPT,
    _NONCES_KEPT,
    _OPEN_TAGS,
    _TUPLE_CACHE,
    DOM_READY_END,
    DOM_READY_START,
    GRANTED_MODE,
    SCRIPT_START,
    BrowserEvent,
    PixelSet,
    browser_events,
    script_open,
    tail_events,
    tail_id,
)
from proxy.request_view import RequestView, attribute
from proxy.runtime import compile_runtime
from proxy.transform.csp import CspNeeds, apply_csp, hosts_key
from proxy.transform.header_plan import HeaderPlans
from proxy.transform.headers import transformed_headers
from proxy.transform.html import HtmlTransform
from proxy.transform.template import PageTemplate, TemplateCache

ORIGIN = "http://127.0.0.1:9"
PUBLIC = "https://careers.example"
PIXELS = """
[pixels.meta]
type = "meta"
pixel_id = "111"

[pixels.tt]
type = "tiktok"
pixel_code = "CJMB7ERC77U2JVNG7RF0"

[pixels.li]
type = "linkedin"
partner_id = "5123456"
conversion_ids = { ApplicationCompleted = "18734562" }

[pixels.gads]
type = "google"
tag_id = "AW-987654321"
send_to = { ApplicationCompleted = "AW-987654321/AbC-dEf_1" }

[pixels.head]
type = "html"
html = "<link rel=preconnect href='https://px.example'>"
csp = { connect-src = ["https://px.example"] }

[pixels.foot]
type = "html"
position = "body"
html = "<img src='https://px.example/p.gif' alt=''>"
"""


def config(pixels: str, rewrite: bool = True) -> Config:
    text = (f'[proxy]\nupstream = "{ORIGIN}"\nrewrite_links = {str(rewrite).lower()}\n'
            + textwrap.dedent(pixels))
    return load_config_text(text, "rules.toml", {})


SET = PixelSet(config(PIXELS).pixels, config(PIXELS).sinks)


def written_out(ps: PixelSet, pixels: tuple[Pixel, ...], nonce: str | None,
                links_clicked_id: str, page_event_id: str, events: list[BrowserEvent],
                consent_mode: dict[str, str] | None) -> tuple[bytes, bytes]:
    """The head script and the head snippet, each part JSON-escaped with `js` and
    joined as text: what the compiled parts must give."""
    compiled = ps.compiled(pixels)      # the networks' code, built once per set
    script = [SCRIPT_START, js(links_clicked_id), ";", BOOTSTRAP]
    if compiled.has_google:
        script.append(google_consent(consent_mode or GRANTED_MODE))
    script.append(compiled.init)
    if compiled.has_meta:
        script += ["fbq('track','PageView',{},{eventID:", js(page_event_id), "});"]
    if events:
        script.append(f"careersEdge.track({js(browser_events(events))});")
    script += [DOM_READY_START, js(tail_id(page_event_id)), DOM_READY_END]
    text = "".join(script)
    attr = f' nonce="{escape(nonce)}"' if nonce else ""
    return text.encode(), f"<script{attr}>{text}</script>{compiled.head_html}".encode()


ids = st.one_of(st.text(alphabet="0123456789abcdef", min_size=32, max_size=32), st.text())
events = st.lists(st.builds(BrowserEvent, st.text(max_size=12), st.text(max_size=34),
                            st.dictionaries(st.text(max_size=8), st.text(max_size=12),
                                            max_size=3)), max_size=3)
nonces = st.one_of(st.none(), st.just(""), st.text(max_size=24))
subsets = st.lists(st.integers(0, len(SET.pixels) - 1), min_size=1, unique=True).map(
    lambda ix: tuple(SET.pixels[i] for i in sorted(ix)))
modes = st.one_of(st.none(), st.fixed_dictionaries(
    {k: st.sampled_from(["GRANTED", "DENIED"]) for k in GRANTED_MODE}))


@settings(max_examples=300, deadline=None)
@given(pixels=subsets, nonce=nonces, visitor=ids, page_event_id=ids, tracked=events,
       mode=modes)
def test_the_compiled_head_is_the_markup_written_out(
        pixels: tuple[Pixel, ...], nonce: str | None, visitor: str, page_event_id: str,
        tracked: list[BrowserEvent], mode: dict[str, str] | None) -> None:
    script, head = written_out(SET, pixels, nonce, visitor, page_event_id, tracked, mode)
    parts = SET.compiled(pixels).head(nonce, visitor, page_event_id, tracked, mode)
    assert b"".join(parts) == head
    assert b"".join(parts[1:-1]) == script
    markup = SET.render(pixels, page_event_id=page_event_id, links_clicked_id=visitor,
                        events=tracked, consent_mode=mode)
    assert markup.head_script.encode() == script
    assert markup.head(nonce) == head


FRAGMENTS = [b"<html>", b"<head>", b"</head>", b"<body>", b"</body>", b"</html>",
             b"<!-- </head> </body> -->", b"<script>var s='</body>';</script>",
             b"<title>a</title>", b"<meta charset=utf-8>", b"<p>text", b"\xc3\xa9",
             b"<a href='" + ORIGIN.encode() + b"/x'>", b"<style>p{}</style>", b"<",
             b'<meta http-equiv="Content-Security-Policy" content="script-src \'self\'">',
             b"<noscript></body></noscript>", b"<body class=x>", b" ", b"\n"]
POLICIES = [None, "script-src 'nonce-abc123' 'strict-dynamic'; img-src 'self'",
            "default-src 'self'; script-src 'self' 'sha256-AAAA'",
            "script-src 'self'; connect-src 'self'"]
RT_PIXELS = {"meta": PIXELS.split("[pixels.tt]")[0],
             "meta and snippets": PIXELS.split("[pixels.tt]")[0]
             + "[pixels.head]" + PIXELS.split("[pixels.head]")[1],
             "none": ""}
RUNTIMES = {(name, rewrite): compile_runtime(config(text, rewrite), b"k" * 32)
            for name, text in RT_PIXELS.items() for rewrite in (True, False)}


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=250, deadline=None)
@given(doc=st.lists(st.sampled_from(FRAGMENTS), max_size=25).map(b"".join),
       gzipped=st.booleans(), policy=st.sampled_from(POLICIES),
       pixels=st.sampled_from(sorted(RT_PIXELS)), rewrite=st.booleans(), visitor=ids,
       early=events, late=events, cuts=st.lists(st.integers(0, 1 << 16), max_size=6))
def test_the_filled_template_is_what_the_stream_gives(
        doc: bytes, gzipped: bool, policy: str | None, pixels: str, rewrite: bool,
        visitor: str, early: list[BrowserEvent], late: list[BrowserEvent],
        cuts: list[int]) -> None:
    rt = RUNTIMES[pixels, rewrite]
    raw = gzip.compress(doc) if gzipped else doc
    upstream = [(b"Content-Type", b"text/html"), (b"Content-Length", b"%d" % len(raw))]
    if gzipped:
        upstream.append((b"Content-Encoding", b"gzip"))
    if policy is not None:
        upstream.append((b"Content-Security-Policy", policy.encode()))
    client = ClientView("203.0.113.9", "https", "careers.example", b"203.0.113.9")
    view = RequestView("GET", "/jobs/1", "/jobs/1", "", None, "text/html", None, None, False,
                       "", False, client, "r" * 16, PUBLIC)
    visit = dataclasses.replace(attribute(rt.attribution, view), links_clicked_id=visitor)
    out = response_headers(upstream, rt.rewriter, PUBLIC, "careers.example")
    plans, templates = HeaderPlans(), TemplateCache()
    for _ in range(3):                  # a template is kept the second time it is seen
        page = plan_page(rt, view, 200, out, visit, early, wants_body=False,
                         feed_wants=False, header_plans=plans, templates=templates)
        transform = page.transform
        if not rt.pixels and not rewrite:
            assert transform is None
            return
        assert transform is not None
        filled = transform.feed_whole(raw) + transform.finish(late)

        head = body = b""
        needs, tail = None, b""
        headers = transformed_headers(out)
        if rt.pixels:
            pixel_tuple = rt.pixels.for_path("/jobs/1")
            assert transform.tail_element is not None
            page_event_id = transform.tail_element.removeprefix(tail_id(""))
            script, _ = written_out(rt.pixels, pixel_tuple, None, visitor, page_event_id,
                                    early, None)
            needs = CspNeeds(inline_scripts=(script,), hosts=rt.pixels.compiled(
                pixel_tuple).csp_hosts)
            decision = apply_csp(headers, needs)
            headers = decision.headers
            _, head = written_out(rt.pixels, pixel_tuple, decision.nonce, visitor,
                                  page_event_id, early, None)
            body = rt.pixels.compiled(pixel_tuple).body_html.encode()
            if late:
                tail = tail_events(transform.tail_element, browser_events(late))
        # A policy allowing the page's scripts by hash keeps its links as they are.
        assert page.links_kept == (rewrite and policy is not None and "'sha256-" in policy)
        links = (ORIGIN.encode(), PUBLIC.encode()) if rewrite and not page.links_kept else None
        stream = HtmlTransform("gzip" if gzipped else None, head, body, rewrite=links,
                               meta_csp=needs,
                               nonce=decision.nonce if needs is not None else None)
        streamed = b"".join(stream.feed(c) for c in chunked(raw, cuts)) + stream.finish(tail)
        if gzipped:
            filled, streamed = gzip.decompress(filled), gzip.decompress(streamed)
        assert filled == streamed
        assert page.headers == headers
        assert transform.injected == stream.injected
        assert transform.has_snippets == bool(head or body)


def test_a_template_knows_when_it_has_no_slot() -> None:
    none = PageTemplate("identity", ((b"<p>", -1),), 3)     # the snippets had no place
    assert not none.injected
    assert none.fill([b"<script>", b"x", b"</script>"], b"<img>", b"<t>") == b"<p><t>"
    both = PageTemplate.build(b"<head></head><body></body>", "identity", head=True,
                              body=True, rewrite=None, meta_csp=False)
    assert both.injected
    assert both.fill([b"<s>", b"</s>"], b"<i>", b"<t>") == \
        b"<head><s></s></head><body><i></body><t>"


# --- the caches ----------------------------------------------------------------------


def test_a_pixel_tuple_is_compiled_once_and_found_by_identity() -> None:
    ps = PixelSet(config(PIXELS).pixels, config(PIXELS).sinks)
    pixels = ps.for_path("/jobs/1")
    first = ps.compiled(pixels)
    assert ps.compiled(pixels) is first
    assert ps.compiled(tuple(pixels)) is first        # an equal tuple: by its pixels' ids
    assert ps.csp_hosts_for(pixels) is first.csp_hosts
    assert first.hosts_key == hosts_key(first.csp_hosts)


def test_fresh_pixel_tuples_do_not_grow_the_identity_cache() -> None:
    ps = PixelSet(config(PIXELS).pixels, config(PIXELS).sinks)
    kept = []
    for i in range(3 * _TUPLE_CACHE):
        pixels = tuple(ps.pixels[: 1 + i % len(ps.pixels)])   # a new tuple each time
        kept.append(pixels)
        assert ps.compiled(pixels).pixels == pixels
        assert len(ps._by_tuple) <= _TUPLE_CACHE


def test_a_reloaded_rules_file_compiles_its_own_pixels() -> None:
    """A reload builds a new PixelSet: nothing compiled for the old pixels is reused."""
    old = PixelSet(config(PIXELS).pixels, config(PIXELS).sinks)
    changed = config(PIXELS.replace('pixel_id = "111"', 'pixel_id = "222"'))
    new = PixelSet(changed.pixels, changed.sinks)
    before = old.compiled(old.for_path("/jobs/1"))
    after = new.compiled(new.for_path("/jobs/1"))
    assert b'"111"' in before.boot_init and b'"222"' in after.boot_init
    assert b'"111"' not in after.boot_init


def test_script_tags_are_kept_per_nonce_and_bounded() -> None:
    assert script_open(None) == script_open("") == b"<script>"
    assert script_open('a"b') == b'<script nonce="a&quot;b">'
    for i in range(3 * _NONCES_KEPT):
        assert script_open(f"n{i}") == f'<script nonce="n{i}">'.encode()
        assert len(_OPEN_TAGS) <= _NONCES_KEPT


def test_consent_defaults_are_kept_per_signals_and_bounded() -> None:
    compiled = SET.compiled(SET.pixels)
    assert compiled.has_google
    for i in range(3 * _CONSENTS_KEPT):
        mode = {"ad_storage": f"V{i}", "ad_user_data": "GRANTED"}
        assert google_consent(mode).encode() in b"".join(compiled.head(None, "v", "e", (), mode))
        assert len(_CONSENTS) <= _CONSENTS_KEPT


def test_public_origins_are_kept_as_one_bytes_object_and_bounded() -> None:
    assert _encoded(PUBLIC) is _encoded(PUBLIC) and _encoded(PUBLIC) == PUBLIC.encode()
    for i in range(3 * _ORIGINS_KEPT):
        assert _encoded(f"https://h{i}.example") == f"https://h{i}.example".encode()
        assert len(_ORIGINS) <= _ORIGINS_KEPT


def test_a_header_plan_found_by_the_kept_hosts_key_is_the_same_plan() -> None:
    compiled = SET.compiled(SET.pixels)
    headers = [("Content-Type", "text/html"),
               ("Content-Security-Policy", "script-src 'self'; img-src 'self'")]
    plans = HeaderPlans()
    by_key = plans.get("GET", 200, headers, compiled.csp_hosts, compiled.hosts_key)
    assert plans.get("GET", 200, headers, compiled.csp_hosts) is by_key
    assert len(plans) == 1
    assert HeaderPlans().get("GET", 200, headers, compiled.csp_hosts) == by_key


def test_a_list_of_pixels_is_compiled_by_its_pixels_not_its_identity() -> None:
    ps = PixelSet(config(PIXELS).pixels, config(PIXELS).sinks)
    pixels = list(ps.pixels[:1])
    first = ps.compiled(pixels)
    pixels.append(ps.pixels[1])             # the same list, other pixels
    assert ps.compiled(pixels) is not first
    assert ps.compiled(pixels).pixels == tuple(pixels)
