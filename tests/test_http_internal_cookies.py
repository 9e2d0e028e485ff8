"""The proxy's own cookies stay between the visitor and the proxy: the Cookie header
sent upstream keeps every other pair as it came."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy.attribution.cookies import (
    ATTR_COOKIE,
    CARRY_COOKIE,
    FBC_COOKIE,
    FBP_COOKIE,
    FIRED_COOKIE,
    INTERNAL_COOKIES,
    PREVIEW_COOKIE,
    VISITOR_COOKIE,
)
from proxy.http.headers import ClientView, request_headers

CLIENT = ClientView("203.0.113.9", "https", "careers.example", b"203.0.113.9")


def upstream_cookies(*values: bytes) -> list[bytes]:
    sent = request_headers([(b"Host", b"careers.example"), *((b"Cookie", v) for v in values)],
                           CLIENT)
    return [v for n, v in sent if n.lower() == b"cookie"]


def test_the_internal_cookies_are_the_proxys_own() -> None:
    assert INTERNAL_COOKIES == {ATTR_COOKIE, CARRY_COOKIE, FIRED_COOKIE, PREVIEW_COOKIE}
    assert not INTERNAL_COOKIES & {VISITOR_COOKIE, FBC_COOKIE, FBP_COOKIE}


def test_ours_are_removed_the_rest_kept_as_sent() -> None:
    header = (b"sid=1; ce_attr=eyJ2.abc; linksClickedId=0123456789abcdef0123; "
              b"ce_events=%5B%5D;_fbc=fb.1.2.x; ce_fired=e1; _fbp=fb.1.2.3; ce_preview=9.m")
    assert upstream_cookies(header) == [
        b"sid=1; linksClickedId=0123456789abcdef0123;_fbc=fb.1.2.x; _fbp=fb.1.2.3"]


def test_a_header_of_only_ours_is_not_sent() -> None:
    assert upstream_cookies(b"ce_attr=x.y; ce_preview=1.m", b"lang=en") == [b"lang=en"]


def test_a_header_without_ours_is_sent_as_it_came() -> None:
    header = b"sid=1; lang=en; ce_attrx=kept; xce_fired=kept"
    assert upstream_cookies(header) == [header]


names = st.sampled_from(sorted(INTERNAL_COOKIES) + ["sid", VISITOR_COOKIE, FBC_COOKIE,
                                                    "ce_other", "lang"])
pairs = st.lists(st.tuples(names, st.text("abc=.%-_", max_size=8), st.sampled_from(["", " "])),
                 min_size=1, max_size=8)


@given(pairs)
def test_every_other_pair_reaches_the_upstream_in_order(given_pairs) -> None:
    header = ";".join(f"{space}{n}={v}" for n, v, space in given_pairs).encode()
    kept = [(n, v) for n, v, _ in given_pairs if n not in INTERNAL_COOKIES]
    sent = upstream_cookies(header)
    if not kept:
        assert sent == []
        return
    (value,) = sent
    assert [tuple(p.strip().split("=", 1)) for p in value.decode().split(";")] == kept
