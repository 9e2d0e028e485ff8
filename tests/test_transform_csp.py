"""CSP: the injected pixel is allowed, the site's policy never loosened."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.transform import csp
from proxy.transform.csp import (
    CspNeeds,
    allows_scripts_by_hash,
    apply_csp,
    inline_scripts,
    rewrite_meta_tag,
    rewrite_policy,
    script_hash,
)
from proxy.transform.html import HtmlTransform

SNIPPET = (b"<script>fbq('init','1');fbq('track','PageView');</script>"
           b'<script async src="https://click.appcast.io/p.js"></script>'
           b'<noscript><img src="https://www.facebook.com/tr?id=1"></noscript>')
NEEDS = CspNeeds(inline_scripts=inline_scripts(SNIPPET), hosts={
    "script-src": ("https://connect.facebook.net",), "img-src": ("https://www.facebook.com",),
    "connect-src": ("https://www.facebook.com",)})
H = script_hash(NEEDS.inline_scripts[0])


def directives(policy: str) -> dict[str, list[str]]:
    return {p.split()[0]: p.split()[1:] for p in policy.split(";") if p.strip()}


def test_inline_scripts_are_the_src_less_ones() -> None:
    assert NEEDS.inline_scripts == (b"fbq('init','1');fbq('track','PageView');",)
    assert H.startswith("'sha256-") and H.endswith("='")


def test_nonce_is_reused_and_nothing_else_needed_for_scripts() -> None:
    d = apply_csp([("Content-Security-Policy",
                    "script-src 'nonce-r4nd0m' 'strict-dynamic' https:; object-src 'none'")], NEEDS)
    assert d.nonce == "r4nd0m"
    policy = directives(d.headers[0][1])
    assert H not in policy["script-src"]
    assert policy["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in d.headers[0][1]


def test_hash_and_hosts_added() -> None:
    d = apply_csp([("content-security-policy",
                    "script-src 'self'; img-src 'self' data:; connect-src 'self'")], NEEDS)
    assert d.nonce is None
    policy = directives(d.headers[0][1])
    assert policy["script-src"] == ["'self'", H, "https://connect.facebook.net"]
    assert policy["img-src"] == ["'self'", "data:", "https://www.facebook.com"]
    assert policy["connect-src"] == ["'self'", "https://www.facebook.com"]


def test_default_src_fallback_is_copied_not_widened() -> None:
    d = apply_csp([("Content-Security-Policy", "default-src 'self' cdn.example; frame-src 'none'")],
                  NEEDS)
    policy = directives(d.headers[0][1])
    assert policy["default-src"] == ["'self'", "cdn.example"]
    assert policy["script-src"] == ["'self'", "cdn.example", H, "https://connect.facebook.net"]
    assert policy["img-src"] == ["'self'", "cdn.example", "https://www.facebook.com"]
    assert policy["frame-src"] == ["'none'"]


def test_unsafe_inline_policy_gets_no_hash_but_hosts() -> None:
    d = apply_csp([("Content-Security-Policy", "script-src 'self' 'unsafe-inline'")], NEEDS)
    policy = directives(d.headers[0][1])
    assert policy["script-src"] == ["'self'", "'unsafe-inline'", "https://connect.facebook.net"]


def test_unsafe_inline_with_nonce_is_not_relying_on_it() -> None:
    value = "script-src 'unsafe-inline' 'sha256-abc='"
    assert H in directives(rewrite_policy(value, NEEDS, None))["script-src"]


def test_policy_without_script_restriction_left_alone() -> None:
    value = "frame-ancestors 'self'; upgrade-insecure-requests"
    d = apply_csp([("Content-Security-Policy", value)], NEEDS)
    assert d.headers == [("Content-Security-Policy", value)]
    covered = "script-src * 'unsafe-inline'; img-src *; connect-src https:"
    assert rewrite_policy(covered, NEEDS, None) == covered


def test_strict_dynamic_without_nonce_gets_the_hash() -> None:
    value = "script-src 'strict-dynamic' 'sha256-site='"
    assert H in directives(rewrite_policy(value, NEEDS, None))["script-src"]


def test_report_only_and_several_policies() -> None:
    headers = [
        ("Content-Security-Policy", "default-src 'self'"),
        ("Content-Security-Policy", "script-src 'nonce-n1', img-src 'none'"),
        ("X-Other", "script-src 'self'"),
        ("Content-Security-Policy-Report-Only", "script-src 'self'; report-uri /r"),
    ]
    d = apply_csp(headers, NEEDS)
    assert d.nonce == "n1"
    first = directives(d.headers[0][1])
    assert H in first["script-src"]                          # no nonce there: the hash
    second, third = d.headers[1][1].split(", ")
    assert directives(second)["script-src"] == ["'nonce-n1'", "https://connect.facebook.net"]
    assert directives(third)["img-src"] == ["https://www.facebook.com"]
    assert d.headers[2] == ("X-Other", "script-src 'self'")
    ro = directives(d.headers[3][1])
    assert H in ro["script-src"] and ro["report-uri"] == ["/r"]


def test_script_src_elem_is_extended_too() -> None:
    value = "script-src 'self'; script-src-elem 'self'"
    policy = directives(rewrite_policy(value, NEEDS, None))
    assert H in policy["script-src"] and H in policy["script-src-elem"]


def test_meta_tag() -> None:
    tag = b"<META HTTP-EQUIV='Content-Security-Policy' CONTENT=\"script-src 'self'\">"
    new = rewrite_meta_tag(tag, NEEDS, None)
    assert new is not None and H.encode() in new and b"connect.facebook.net" in new
    assert rewrite_meta_tag(b'<meta name="viewport" content="x">', NEEDS, None) is None


def test_meta_csp_in_streamed_head() -> None:
    doc = (b"<html><head><meta http-equiv=\"content-security-policy\" "
           b"content=\"script-src 'self'\"><title>t</title></head><body></body></html>")
    t = HtmlTransform("identity", SNIPPET, meta_csp=NEEDS)
    out = t.feed(doc[:30]) + t.feed(doc[30:]) + t.finish()
    assert H.encode() in out
    assert out.index(H.encode()) < out.index(SNIPPET) < out.index(b"</head>")


# -- the cache: a rewrite served from it equals one computed afresh -----------

TOKENS = ["'self'", "'none'", "'unsafe-inline'", "'strict-dynamic'", "https:", "*", "data:",
          "'nonce-n1'", "'NONCE-n1'", "'nonce-n2'", "x'nonce-n1'", "cdn.example",
          "https://connect.facebook.net", "'sha256-site='", H]
NAMES = ["default-src", "script-src", "script-src-elem", "img-src", "connect-src",
         "frame-src", "report-uri", "SCRIPT-SRC"]
policies = st.lists(st.tuples(st.sampled_from(NAMES), st.lists(st.sampled_from(TOKENS),
                                                                max_size=4)),
                    max_size=5).map(lambda ds: "; ".join(" ".join([n, *t]) for n, t in ds))


def fresh(policy: str, needs: CspNeeds, nonce: str | None) -> str:
    return csp._rewrite(policy, needs.hosts, tuple(map(script_hash, needs.inline_scripts)),
                        nonce)


@settings(max_examples=200, deadline=None)
@given(policies, st.sampled_from([None, "n1", "n2", "N1"]),
       st.lists(st.sampled_from([b"a()", b"b()", b"fbq('init','1');fbq('track','PageView');"]),
                max_size=3).map(tuple))
def test_cached_rewrite_equals_a_fresh_one(policy: str, nonce: str | None,
                                           scripts: tuple[bytes, ...]) -> None:
    needs = CspNeeds(inline_scripts=scripts, hosts=NEEDS.hosts)
    first = rewrite_policy(policy, needs, nonce)
    assert first == fresh(policy, needs, nonce)
    assert rewrite_policy(policy, needs, nonce) == first          # from the cache
    assert "\x00" not in first


def test_a_new_nonce_each_response_is_served_from_the_cache() -> None:
    csp._template.cache_clear()
    for n in ("r4nd0m1", "r4nd0m2", "r4nd0m3"):
        value = f"default-src 'self'; script-src 'self' 'nonce-{n}'; img-src 'self'"
        d = apply_csp([("Content-Security-Policy", value)], NEEDS)
        assert d.nonce == n
        assert d.headers[0][1] == fresh(value, NEEDS, n)
        assert f"'nonce-{n}'" in d.headers[0][1]
    assert csp._template.cache_info().misses == 1


@pytest.mark.parametrize(("headers", "expected"), [
    ([("Content-Security-Policy", "script-src 'self' 'sha256-abc='")], True),
    ([("content-security-policy", "default-src 'self' 'SHA384-abc='")], True),
    ([("Content-Security-Policy", "script-src-elem 'sha512-x='; script-src 'self'")], True),
    ([("Content-Security-Policy", "default-src 'self', script-src 'sha256-abc='")], True),
    ([("Content-Security-Policy", "script-src 'self'; style-src 'sha256-abc='")], False),
    ([("Content-Security-Policy", "default-src 'sha256-abc='; script-src 'self'")], False),
    ([("Content-Security-Policy-Report-Only", "script-src 'sha256-abc='")], False),
    ([("Content-Security-Policy", "script-src 'nonce-x' 'strict-dynamic'")], False),
    ([], False),
])
def test_allows_scripts_by_hash(headers, expected) -> None:
    assert allows_scripts_by_hash(headers) is expected
