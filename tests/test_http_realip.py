"""The realip walk: X-Forwarded-For from the right, skipping trusted proxies (nginx's
`real_ip_recursive on`), with the chain sent upstream."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.http.headers import TrustedProxies
from proxy.http.realip import parse_address, real_ip

TRUSTED = TrustedProxies(["10.0.0.0/8", "127.0.0.1/32", "2001:db8:ffff::/48"])
LB = "10.0.0.5"


def walk(peer: str, *xff: str, trusted: TrustedProxies = TRUSTED) -> tuple[str, str]:
    r = real_ip(peer, [v.encode("latin-1") for v in xff], trusted)
    return r.ip, r.forwarded_for.decode()


@pytest.mark.parametrize("entry, parsed", [
    ("203.0.113.9", "203.0.113.9"),
    ("203.0.113.9:4711", "203.0.113.9"),            # Azure Application Gateway adds ports
    ("2001:DB8::1", "2001:db8::1"),
    ("[2001:db8::1]", "2001:db8::1"),
    ("[2001:db8::1]:443", "2001:db8::1"),
    ("<script>alert(1)</script>", None),
    ("unknown", None),                              # RFC 7239's obfuscated node
    ("006.6.6.6", None),                            # leading zeros: octal to some parsers
    ("6.6.6", None),
    ("203.0.113.9:", None),
    ("203.0.113.9:http", None),
    ("[2001:db8::1", None),
    ("[2001:db8::1]x", None),
    ("[203.0.113.9]:80x", None),
    ("fe80::1%eth0", None),
    ("", None),
])
def test_parse_address(entry: str, parsed: str | None) -> None:
    assert parse_address(entry) == parsed


def test_an_untrusted_peer_is_the_visitor_whatever_it_forwards() -> None:
    assert walk("198.51.100.7", "203.0.113.9") == ("198.51.100.7", "198.51.100.7")


def test_the_rightmost_untrusted_address_is_the_visitor() -> None:
    assert walk(LB, "6.6.6.6, 203.0.113.9") == ("203.0.113.9", f"203.0.113.9, {LB}")
    assert walk(LB, "<script>alert(1)</script>, 203.0.113.9") == (
        "203.0.113.9", f"203.0.113.9, {LB}")


def test_trusted_hops_are_skipped_across_headers_and_ports() -> None:
    assert walk(LB, "6.6.6.6, 203.0.113.9", "10.2.3.4:8080 ,, 127.0.0.1") == (
        "203.0.113.9", f"203.0.113.9, 10.2.3.4, 127.0.0.1, {LB}")


def test_a_non_address_ends_the_walk_at_the_last_trusted_hop() -> None:
    assert walk(LB, "203.0.113.9, garbage") == (LB, LB)
    assert walk(LB, "203.0.113.9, garbage, 10.1.1.1") == ("10.1.1.1", f"10.1.1.1, {LB}")


def test_an_all_trusted_chain_ends_at_its_leftmost_address() -> None:
    assert walk(LB, "10.1.1.1, 10.2.2.2") == ("10.1.1.1", f"10.1.1.1, 10.2.2.2, {LB}")


def test_no_header_from_a_trusted_peer_is_the_peer() -> None:
    assert walk(LB) == (LB, LB)
    assert walk(LB, " , ") == (LB, LB)


def test_ipv6_and_ipv4_mapped_peers() -> None:
    assert walk("2001:db8:ffff::1", "[2001:db8::7]:443") == (
        "2001:db8::7", "2001:db8::7, 2001:db8:ffff::1")
    # A dual-stack listener reports an IPv4 balancer as ::ffff:10.0.0.5.
    assert walk("::ffff:10.0.0.5", "203.0.113.9")[0] == "203.0.113.9"


# --- properties over hostile chains -------------------------------------------------

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
address = st.one_of(ipv4, ipv6)
trusted_address = st.one_of(
    st.integers(0, 2**24 - 1).map(lambda n: str(ipaddress.IPv4Address((10 << 24) + n))),
    st.just("127.0.0.1"))
untrusted_address = address.filter(lambda a: a not in TRUSTED)
junk = st.text(st.characters(codec="latin-1", exclude_characters=","), max_size=30)
entry = st.one_of(address, address.map(lambda a: f"[{a}]:80" if ":" in a else f"{a}:80"),
                  junk)


@given(st.lists(entry, max_size=8), untrusted_address, st.lists(trusted_address, max_size=4),
       trusted_address)
def test_nothing_written_left_of_the_visitor_changes_the_answer(
        spoofed: list[str], visitor: str, hops: list[str], peer: str) -> None:
    """The visitor's address, as each trusted hop appended it, wins over anything the
    visitor (or an untrusted hop) put before it."""
    honest = [visitor, *hops]
    r = real_ip(peer, [", ".join(spoofed + honest).encode("latin-1")], TRUSTED)
    assert r.ip == str(ipaddress.ip_address(visitor))
    assert r.chain == tuple(str(ipaddress.ip_address(a)) for a in honest) + (peer,)


@given(st.lists(entry, max_size=10), st.one_of(address, trusted_address))
def test_the_answer_is_always_an_address_the_chain_or_peer_holds(
        chain: list[str], peer: str) -> None:
    r = real_ip(peer, [", ".join(chain).encode("latin-1")], TRUSTED)
    ipaddress.ip_address(r.ip)                          # never a string from the visitor
    assert r.chain[0] == r.ip and r.chain[-1] == peer
    assert all(hop in TRUSTED for hop in r.chain[1:])   # every hop after it vouched
    parsed = {parse_address(e.strip()) for e in chain}
    assert r.ip == peer or r.ip in parsed
    if peer not in TRUSTED:
        assert r.chain == (peer,)
