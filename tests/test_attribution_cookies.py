"""The signed attribution cookie, Cookie header parsing and Set-Cookie building."""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.attribution.clickids import ClickId
from proxy.attribution.cookies import (
    MAX_AGE_CAP,
    MAX_COOKIE_VALUE,
    AttrCodec,
    max_age_for,
    parse_cookie_header,
    set_cookie,
)

KEY = b"k" * 32
VID = "0123456789abcdef0123456789abcdef"
UUID = "123e4567-e89b-12d3-a456-426614174000"


def _clicks() -> dict[str, ClickId]:
    return {"tlr_sid": ClickId(UUID, 1700000000.123), "gclid": ClickId("G-1", 1700000100.0)}


def test_round_trip_keeps_ids_and_times():
    value = AttrCodec(KEY).encode(VID, _clicks())
    assert AttrCodec(KEY).decode(value) == (VID, _clicks())


def test_value_needs_no_quoting():
    value = AttrCodec(KEY).encode(VID, _clicks())
    assert all(c.isalnum() or c in "-_." for c in value)


def test_foreign_key_is_refused():
    value = AttrCodec(b"other-key").encode(VID, _clicks())
    assert AttrCodec(KEY).decode(value) is None


def test_every_single_character_tamper_is_refused():
    value = AttrCodec(KEY).encode(VID, _clicks())
    codec = AttrCodec(KEY)
    for i, ch in enumerate(value):
        for repl in {"A", "b", "-", "."} - {ch}:
            assert codec.decode(value[:i] + repl + value[i + 1:]) is None, (i, repl)


def test_truncated_and_extended_are_refused():
    value = AttrCodec(KEY).encode(VID, _clicks())
    codec = AttrCodec(KEY)
    for cut in range(len(value)):
        assert codec.decode(value[:cut]) is None
    assert codec.decode(value + "A") is None
    assert codec.decode(value + ".x") is None


def test_swapped_payload_with_own_mac_is_refused():
    codec = AttrCodec(KEY)
    a = codec.encode(VID, _clicks())
    b = codec.encode(VID, {"gclid": ClickId("OTHER", 1.0)})
    assert codec.decode(a.split(".")[0] + "." + b.split(".")[1]) is None


def test_oversize_is_refused_before_verifying():
    assert AttrCodec(KEY).decode("A" * (MAX_COOKIE_VALUE + 1) + ".x") is None


def _sign(body: object) -> str:
    payload = base64.urlsafe_b64encode(orjson.dumps(body)).rstrip(b"=")
    mac = hmac.new(KEY, b"ce_attr." + payload, hashlib.sha256).digest()[:16]
    return payload.decode() + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def test_signed_but_malformed_payload_never_crashes():
    codec = AttrCodec(KEY)
    for body in ([], {"v": 2, "l": VID, "c": {}}, {"v": 1, "l": "x;y", "c": {}},
                 {"v": 1, "l": VID, "c": []}, {"v": 1, "l": 5, "c": {}}, "text", None):
        assert codec.decode(_sign(body)) is None, body
    # bad entries are dropped one by one, good ones kept
    body = {"v": 1, "l": VID, "c": {"gclid": ["ok", 5000], "fbclid": ["a\nb", 1],
                                    "tlr_sid": ["nope", 1], "x": "y", "msclkid": ["m", 1.5]}}
    assert codec.decode(_sign(body)) == (VID, {"gclid": ClickId("ok", 5.0)})


def test_encode_drops_oldest_ids_to_fit_a_browser_cookie():
    clicks = {f"p{i}": ClickId("v" * 512, float(i)) for i in range(10)}
    value = AttrCodec(KEY).encode(VID, clicks)
    assert len(value) <= MAX_COOKIE_VALUE
    _, kept = AttrCodec(KEY).decode(value)
    assert kept and "p9" in kept and "p0" not in kept
    assert min(c.seen_at for c in kept.values()) > max(
        c.seen_at for p, c in clicks.items() if p not in kept)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_hypothesis_random_values_never_verify_or_raise(value):
    assert AttrCodec(KEY).decode(value) is None


def test_parse_cookie_header_first_wins_and_tolerates_junk():
    header = 'junk; a=1; b="quoted"; a=2;;=x; c; linksClickedId=abc ; d=x=y'
    got = parse_cookie_header(header, frozenset({"a", "b", "c", "linksClickedId", "d"}))
    assert got == {"a": "1", "b": "quoted", "linksClickedId": "abc", "d": "x=y"}
    assert parse_cookie_header(None, frozenset({"a"})) == {}


def test_set_cookie_attributes():
    assert set_cookie("n", "v", max_age=60, secure=True, http_only=True, domain="acme.example") == (
        "n=v; Max-Age=60; Path=/; Domain=acme.example; SameSite=Lax; Secure; HttpOnly")
    assert set_cookie("n", "v", max_age=60, secure=False, http_only=False) == (
        "n=v; Max-Age=60; Path=/; SameSite=Lax")


def test_max_age_is_capped_at_400_days():
    assert max_age_for(90) == 90 * 86400
    assert max_age_for(1000) == MAX_AGE_CAP == 400 * 86400


def test_non_canonical_mac_encoding_is_refused():
    value = AttrCodec(KEY).encode(VID, _clicks())
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    mac_text = value.rsplit(".", 1)[1]
    mac = base64.urlsafe_b64decode(mac_text + "==")
    twins = [c for c in alphabet if c != mac_text[-1]
             and base64.urlsafe_b64decode(mac_text[:-1] + c + "==") == mac]
    assert twins          # 16 bytes in 22 chars leave 4 spare bits in the last one
    for c in twins:
        assert AttrCodec(KEY).decode(value[:-1] + c) is None
