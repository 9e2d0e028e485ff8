"""Header plans: what a transformed page's headers are, planned once and reused.

A plan filled in with one response's script must equal planning that response from
scratch (`should_transform`, `transformed_headers`, `apply_csp` with the real
script), whatever the headers and the policy.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.pixels import META_CSP
from proxy.transform.csp import CspNeeds, apply_csp, script_hash
from proxy.transform.header_plan import HeaderPlans, plan_headers
from proxy.transform.headers import should_transform, transformed_headers

POLICIES = [
    "default-src 'self'",
    "script-src 'self' 'nonce-abc123'; img-src 'self'",
    "script-src 'self' 'nonce-abc123' 'strict-dynamic'",
    "script-src 'self' 'unsafe-inline'",
    "default-src 'self'; script-src 'self' 'sha256-AAAA'",
    "img-src *; connect-src 'self'",
    "script-src 'self', img-src 'none'",
    "script-src-elem 'self' 'nonce-x'; script-src 'none'",
]
HEADER = st.one_of(
    st.tuples(st.just("Content-Type"), st.sampled_from(
        ["text/html", "text/html; charset=utf-8", "application/json",
         "text/html; charset=utf-16"])),
    st.tuples(st.sampled_from(["Content-Security-Policy",
                               "content-security-policy-report-only"]),
              st.sampled_from(POLICIES)),
    st.tuples(st.just("Content-Encoding"), st.sampled_from(["gzip", "br", "zstd", "gzip, br"])),
    st.tuples(st.sampled_from(["ETag", "Vary", "Cache-Control", "Content-Length",
                               "Date", "Set-Cookie"]),
              st.sampled_from(['"v1"', "Accept-Encoding", "no-transform", "4812", "x=1"])),
)


@settings(max_examples=400, deadline=None)
@given(headers=st.lists(HEADER, max_size=8), status=st.sampled_from([200, 200, 404]),
       method=st.sampled_from(["GET", "HEAD", "POST"]), pixels=st.booleans(),
       script=st.binary(min_size=1, max_size=40))
def test_a_plan_filled_in_equals_planning_from_scratch(headers, status, method, pixels,
                                                       script) -> None:
    hosts = META_CSP if pixels else None
    plan = HeaderPlans().get(method, status, headers, hosts)
    assert plan.transform == should_transform(method, status, headers)
    if not plan.transform:
        return
    expected = transformed_headers(headers)
    nonce = None
    if pixels:
        decision = apply_csp(expected, CspNeeds(inline_scripts=(script,), hosts=META_CSP))
        expected, nonce = decision.headers, decision.nonce
    assert plan.headers_for(script) == expected
    assert plan.nonce == nonce


def test_a_plan_is_reused_until_a_header_changes() -> None:
    plans = HeaderPlans()
    h = [("Content-Type", "text/html"), ("Date", "Sun, 22 Nov 2026 14:00:00 GMT"),
         ("Content-Security-Policy", "script-src 'self'")]
    first = plans.get("GET", 200, h, META_CSP)
    assert plans.get("GET", 200, list(h), META_CSP) is first
    later = [*h[:1], ("Date", "Sun, 22 Nov 2026 14:00:01 GMT"), h[2]]
    assert plans.get("GET", 200, later, META_CSP) is not first
    # Each response's script gets its own hash into the policy.
    a, b = first.headers_for(b"a()"), first.headers_for(b"b()")
    assert script_hash(b"a()") in a[2][1] and script_hash(b"b()") in b[2][1]


def test_a_policy_naming_the_script_hash_already_is_planned_directly() -> None:
    h = [("Content-Type", "text/html"),
         ("Content-Security-Policy", f"script-src 'self' '{script_hash(b'a()')}'")]
    assert plan_headers("GET", 200, h, META_CSP).headers_for(b"a()") is None


def test_plans_are_bounded() -> None:
    plans = HeaderPlans(size=8)
    for second in range(100):
        h = [("Content-Type", "text/html"), ("Date", f"Sun, 22 Nov 2026 14:00:{second} GMT")]
        assert plans.get("GET", 200, h, META_CSP).transform
        assert len(plans) <= 8
