"""A route's upstream URLs become the public prefix: in pages (any form, any chunking),
in Location / Content-Location / Refresh, and in Set-Cookie Domain and Path — while
the main upstream's rewriting goes on as before, and page templates are kept apart
per rewriting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config.model import Route
from proxy.http.headers import response_headers
from proxy.http.route_table import RouteTable
from proxy.transform.links import LinkRewriter
from proxy.transform.template import TemplateCache

UP, PUB = b"https://acme.example", b"https://careers.acme.example"
ROUTES = ((b"https://gh.example/embed/forms/", b"/forms/"),
          (b"https://gh.example/embed/", b"/apply/"))
TABLE = RouteTable([Route("/apply/", "https://gh.example/embed/"),
                    Route("/forms/", "https://gh.example/embed/forms/"),
                    Route("/api/", "http://127.0.0.1:9000/v1/")],
                   "acme.example", ("https://acme.example", "http://acme.example"))


def rewrite(doc: bytes, cuts: list[int] = (), routes=ROUTES) -> bytes:
    r = LinkRewriter(UP, PUB, routes)
    points = sorted({c % (len(doc) + 1) for c in cuts})
    out, prev = [], 0
    for p in [*points, len(doc)]:
        out.append(r.feed(doc[prev:p]))
        prev = p
    return b"".join(out) + r.finish()


# (as the upstream wrote it, as the visitor must get it)
SHAPES = [
    (b"https://gh.example/embed/job_app?for=acme&token=123",
     PUB + b"/apply/job_app?for=acme&token=123"),
    (b"http://gh.example/embed/job_app", PUB + b"/apply/job_app"),
    (b"//gh.example/embed/x.js", PUB + b"/apply/x.js"),
    (b"HTTPS://GH.Example/embed/x", PUB + b"/apply/x"),
    (b"https://gh.example:443/embed/x", PUB + b"/apply/x"),
    (b"https:\\/\\/gh.example\\/embed\\/job_app", PUB + b"/apply/job_app"),
    (b"https://gh.example/embed/", PUB + b"/apply/"),
    (b"https://gh.example/embed/forms/1", PUB + b"/forms/1"),     # the longer route wins
    (b"https://acme.example/jobs/1", PUB + b"/jobs/1"),           # the main upstream
    (b"//acme.example/a.css", PUB + b"/a.css"),
    # left alone: other paths on that host, look-alike hosts, other ports, no scheme
    (b"https://gh.example/embedded/x", b"https://gh.example/embedded/x"),
    (b"https://gh.example/Embed/x", b"https://gh.example/Embed/x"),
    (b"https://gh.example/embed", b"https://gh.example/embed"),
    (b"https://gh.example/other/embed/x", b"https://gh.example/other/embed/x"),
    (b"https://gh.example.evil.example/embed/x", b"https://gh.example.evil.example/embed/x"),
    (b"https://xgh.example/embed/x", b"https://xgh.example/embed/x"),
    (b"https://gh.example:8443/embed/x", b"https://gh.example:8443/embed/x"),
    (b"https://gh.example@evil.example/embed/", b"https://gh.example@evil.example/embed/"),
    (b"xhttps://gh.example/embed/x", b"xhttps://gh.example/embed/x"),
    (b"https://evil.example//gh.example/embed/x", b"https://evil.example//gh.example/embed/x"),
    (b"gh.example/embed/x", b"gh.example/embed/x"),
    (b"https%3A%2F%2Fgh.example%2Fembed%2F", b"https%3A%2F%2Fgh.example%2Fembed%2F"),
]


@pytest.mark.parametrize("before,after", SHAPES)
def test_each_shape(before: bytes, after: bytes) -> None:
    assert rewrite(b'<a href="' + before + b'">') == b'<a href="' + after + b'">'


def test_the_iframe_of_an_embedded_board() -> None:
    page = (b'<div id="grnhse_app"><iframe id="grnhse_iframe" width="100%" '
            b'src="https://gh.example/embed/job_app?for=acme&amp;token=123"></iframe></div>')
    assert rewrite(page) == page.replace(b"https://gh.example/embed/", PUB + b"/apply/")


def test_without_routes_nothing_changes_for_route_hosts() -> None:
    doc = b'<a href="https://gh.example/embed/x"><a href="https://acme.example/y">'
    assert rewrite(doc, routes=()) == (b'<a href="https://gh.example/embed/x">'
                                       b'<a href="' + PUB + b'/y">')


DELIMS = st.sampled_from([b" ", b'"', b"'", b"\n", b"<", b">", b"(", b")", b", "])
FILLER = st.binary(max_size=12).map(lambda b: b.replace(b".", b"_"))


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(st.tuples(DELIMS, st.sampled_from(SHAPES), FILLER), max_size=12),
       cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=8))
def test_any_document_any_chunking(parts, cuts) -> None:
    """Shapes between delimiters and junk rewrite independently of each other and of
    where the chunks were cut."""
    doc = b"".join(d + before + d + f for d, (before, _), f in parts)
    want = b"".join(d + after + d + f for d, (_, after), f in parts)
    assert rewrite(doc, cuts) == want


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=200_000), max_size=6))
def test_a_long_run_without_delimiters_is_cut_safely(cuts) -> None:
    url = b"https://gh.example/embed/job_app?x=" + b"a" * 70_000 + b"&"
    doc = url + b"https://gh.example/embed/b"
    assert rewrite(doc, cuts) == rewrite(doc)


# --- headers ---------------------------------------------------------------------

def headers_from(route_path: str | None, raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    rewriter = TABLE.main_rewriter if route_path is None else TABLE.match(route_path).rewriter
    return response_headers(raw, rewriter, "https://careers.acme.example", "careers.acme.example")


def test_a_routes_redirect_and_cookies_from_its_own_response() -> None:
    out = headers_from("/apply/job_app", [
        (b"Location", b"https://gh.example/embed/job_app/confirmation?for=acme&token=1"),
        (b"Content-Location", b"/embed/job_app?for=acme"),
        (b"Refresh", b"3; url=https://gh.example/embed/job_app/confirmation"),
        (b"Set-Cookie", b"_session=abc; Domain=gh.example; Path=/; Secure; HttpOnly"),
        (b"Set-Cookie", b"step=2; domain=.gh.example; path=/embed/job_app"),
        (b"Set-Cookie", b"x=1; Path=/embed"),
        (b"Set-Cookie", b"far=1; Path=/elsewhere; Domain=other.example"),
        (b"Set-Cookie", b"emb=1; Path=/emb"),
    ])
    got = [(k, v) for k, v in out if k != "Via"]
    assert got == [
        ("Location", "https://careers.acme.example/apply/job_app/confirmation?for=acme&token=1"),
        ("Content-Location", "/apply/job_app?for=acme"),
        ("Refresh", "3; url=https://careers.acme.example/apply/job_app/confirmation"),
        ("Set-Cookie", "_session=abc; Domain=careers.acme.example; Path=/apply/; Secure; HttpOnly"),
        ("Set-Cookie", "step=2; domain=careers.acme.example; path=/apply/job_app"),
        ("Set-Cookie", "x=1; Path=/apply/"),
        ("Set-Cookie", "far=1; Path=/elsewhere; Domain=other.example"),
        ("Set-Cookie", "emb=1; Path=/emb"),
    ]


def test_a_path_absolute_location_moves_only_for_the_route_that_answered() -> None:
    raw = [(b"Location", b"/embed/thanks")]
    assert headers_from("/apply/x", raw)[0] == ("Location", "/apply/thanks")
    refresh = [(b"Refresh", b"5; URL='/embed/next'"), (b"Refresh", b"0;url=/other/embed/x")]
    assert [v for k, v in headers_from("/apply/x", refresh) if k == "Refresh"] == [
        "5; URL='/apply/next'", "0;url=/other/embed/x"]
    # From the main upstream, /embed/thanks is the main site's own path.
    assert headers_from(None, raw)[0] == ("Location", "/embed/thanks")
    api = headers_from("/api/x", [(b"Location", b"/v1/next"), (b"Location", b"/v2/next")])
    assert [v for k, v in api if k == "Location"] == ["/api/next", "/v2/next"]


def test_the_main_upstreams_rewriting_is_unchanged_and_knows_the_routes() -> None:
    out = headers_from(None, [
        (b"Location", b"https://acme.example/jobs/1?x=1"),
        (b"Location", b"https://gh.example/embed/job_app?for=acme"),
        (b"Location", b"https://gh.example/embed/forms/7"),
        (b"Location", b"http://127.0.0.1:9000/v1/items"),
        (b"Location", b"https://gh.example/elsewhere"),
        (b"Set-Cookie", b"a=1; Domain=acme.example; Path=/embed/"),
    ])
    assert [v for _, v in out[:-1]] == [
        "https://careers.acme.example/jobs/1?x=1",
        "https://careers.acme.example/apply/job_app?for=acme",
        "https://careers.acme.example/forms/7",
        "https://careers.acme.example/api/items",
        "https://gh.example/elsewhere",
        "a=1; Domain=careers.acme.example; Path=/embed/",
    ]


def test_a_route_to_a_non_default_port_matches_only_that_port() -> None:
    out = headers_from("/api/x", [(b"Location", b"http://127.0.0.1:9000/v1/a"),
                                  (b"Location", b"http://127.0.0.1:9001/v1/a"),
                                  (b"Location", b"http://127.0.0.1/v1/a")])
    assert [v for _, v in out[:-1]] == ["https://careers.acme.example/api/a",
                                        "http://127.0.0.1:9001/v1/a", "http://127.0.0.1/v1/a"]


# --- page templates ------------------------------------------------------------------

PAGE = (b"<html><head><title>Job</title></head><body>"
        b'<iframe src="https://gh.example/embed/job_app?for=acme&token=1"></iframe>'
        b'<a href="https://acme.example/jobs">jobs</a></body></html>')


def test_templates_are_kept_apart_per_rewriting() -> None:
    cache = TemplateCache()
    plain = (UP, PUB)
    routed = (UP, PUB, ROUTES)
    other = (UP, PUB, ((b"https://gh.example/embed/", b"/join/"),))
    for _ in range(3):              # kept from the second sight on
        docs = {}
        for name, rw in (("plain", plain), ("routed", routed), ("other", other)):
            template = cache.get(PAGE, "identity", head=True, body=False, rewrite=rw,
                                 meta_csp=False)
            assert template is not None
            docs[name] = template.render(b"<script>s</script>", b"")
        assert b'src="https://gh.example/embed/job_app' in docs["plain"]
        assert b'src="' + PUB + b'/apply/job_app?for=acme&token=1"' in docs["routed"]
        assert b'src="' + PUB + b'/join/job_app?for=acme&token=1"' in docs["other"]
        for doc in docs.values():
            assert b'href="' + PUB + b'/jobs"' in doc
    assert cache.hits == 3           # the third round, each from its own template


# --- a route's own pages: path-absolute references move under its prefix ------------

MOUNTED = ROUTES + ((b"/embed/", b"/apply/"),)


@pytest.mark.parametrize("before,after", [
    (b'<form action="/embed/job_app?for=acme&amp;token=1">',
     b'<form action="/apply/job_app?for=acme&amp;token=1">'),
    (b"<a href='/embed/job_app/confirmation'>", b"<a href='/apply/job_app/confirmation'>"),
    (b"<form action=/embed/x method=post>", b"<form action=/apply/x method=post>"),
    (b"background: url(/embed/a.png)", b"background: url(/apply/a.png)"),
    (b'<a href="https://gh.example/embed/x">', b'<a href="' + PUB + b'/apply/x">'),
    # left alone: other paths, text, protocol-relative, case, a longer name
    (b'<a href="/assets/a.js">', b'<a href="/assets/a.js">'),
    (b"<p>see /embed/ for details</p>", b"<p>see /embed/ for details</p>"),
    (b'<img src="//embed/x.png">', b'<img src="//embed/x.png">'),
    (b'<a href="/Embed/x">', b'<a href="/Embed/x">'),
    (b'<a href="/embedded/x">', b'<a href="/embedded/x">'),
    (b'<a href="/x/embed/y">', b'<a href="/x/embed/y">'),
])
def test_a_routes_own_page(before: bytes, after: bytes) -> None:
    assert rewrite(before, routes=MOUNTED) == after


def test_a_route_to_the_upstreams_root_keeps_protocol_relative_links() -> None:
    mounted = ((b"http://127.0.0.1:9000/", b"/api/"), (b"/", b"/api/"))
    doc = b'<a href="/items/1"><img src="//cdn.example/a.png"><a href="http://127.0.0.1:9000/x">'
    assert rewrite(doc, routes=mounted) == (
        b'<a href="/api/items/1"><img src="//cdn.example/a.png">'
        b'<a href="' + PUB + b'/api/x">')


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.tuples(st.sampled_from([b'"', b"'", b"("]),
                                st.sampled_from([b"/embed/a", b"/embed/", b"/other/b"]),
                                FILLER), max_size=10),
       cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8))
def test_mounted_pages_any_chunking(parts, cuts) -> None:
    doc = b"".join(q + p + b" " + f for q, p, f in parts)
    want = b"".join(q + p.replace(b"/embed/", b"/apply/") + b" " + f for q, p, f in parts)
    assert rewrite(doc, cuts, routes=MOUNTED) == want


def test_the_runtime_gives_each_routes_pages_its_mount() -> None:
    apply = TABLE.match("/apply/x")
    assert apply.page_links == TABLE.page_links + ((b"/embed/", b"/apply/"),)
    assert (b"https://gh.example/embed/", b"/apply/") in TABLE.page_links
    assert all(not url.startswith(b"/") for url, _ in TABLE.page_links)
