"""The preview cookie's codec: signed expiry, verified in constant time, forged or
expired values are no preview, a previous secret still verifies while keys rotate."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy.attribution.preview import PREVIEW_SECONDS, PreviewCodec

NOW = 1_764_750_000.0


def test_a_cookie_it_signed_is_valid_until_it_expires() -> None:
    codec = PreviewCodec(b"k" * 32)
    value = codec.encode(int(NOW) + 60)
    assert codec.valid(value, NOW) and codec.valid(value, NOW + 59)
    assert not codec.valid(value, NOW + 60)
    assert not PreviewCodec(b"x" * 32).valid(value, NOW)              # another key


def test_set_cookie_is_http_only_lax_an_hour_and_secure_on_https() -> None:
    codec = PreviewCodec(b"k" * 32)
    plain, secure = codec.set_cookie(NOW, False), codec.set_cookie(NOW, True)
    value = plain.split(";")[0].removeprefix("ce_preview=")
    assert codec.valid(value, NOW + PREVIEW_SECONDS - 1)
    assert f"Max-Age={PREVIEW_SECONDS}" in plain and "HttpOnly" in plain
    assert "SameSite=Lax" in plain and "Secure" not in plain and "Secure" in secure


def test_a_previous_secret_still_verifies_while_keys_rotate() -> None:
    old = PreviewCodec(b"o" * 32).encode(int(NOW) + 60)
    assert PreviewCodec(b"n" * 32, previous=[b"o" * 32]).valid(old, NOW)
    assert not PreviewCodec(b"n" * 32).valid(old, NOW)


@given(st.text(max_size=80))
def test_anything_else_is_no_preview(value: str) -> None:
    assert not PreviewCodec(b"k" * 32).valid(value, NOW)     # no MAC guessed, no crash


@given(st.integers(int(NOW) + 1, 2**40), st.binary(min_size=1, max_size=4))
def test_a_tampered_expiry_or_mac_is_refused(expiry: int, noise: bytes) -> None:
    codec = PreviewCodec(b"k" * 32)
    value = codec.encode(expiry)
    payload, _, mac = value.partition(".")
    assert not codec.valid(f"{int(payload) + 1}.{mac}", NOW)
    assert not codec.valid(f"{payload}.{mac}{noise.hex()}", NOW)
    assert not codec.valid(f"{payload}.{mac[:-1]}", NOW)
