"""`[proxy] hosts`: Host values made canonical and matched as nginx's server_name,
and the client view that believes X-Forwarded-* only from trusted peers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.hosts import BAD_HOST, MISDIRECTED, HostPolicy, host_entry_problem, split_host
from proxy.http.headers import TrustedProxies, client_view

POLICY = HostPolicy(["careers.acme.example", "*.jobs.acme.example", "localhost:8080",
                     "[::1]"])


@pytest.mark.parametrize("value, parts", [
    ("careers.acme.example", ("careers.acme.example", "")),
    ("Careers.ACME.example.", ("careers.acme.example", "")),
    ("careers.acme.example:8443", ("careers.acme.example", "8443")),
    ("127.0.0.1:80", ("127.0.0.1", "80")),
    ("[::1]:8080", ("[::1]", "8080")),
    ("[0:0::1]", ("[::1]", "")),
    ("evil.example\"><script>", None),
    ("a b", None),
    ("x:y:z", None),
    ("host:99999", None),
    ("host:", None),
    ("[::1", None),
    ("[203.0.113.9]", None),
    ("[fe80::1%eth0]", None),
    ("host/path", None),
    ("-bad.example", None),
    ("", None),
    ("a" * 300, None),
])
def test_split_host(value: str, parts: tuple[str, str] | None) -> None:
    assert split_host(value) == parts


@pytest.mark.parametrize("host, served", [
    ("careers.acme.example", True),
    ("CAREERS.acme.example:443", True),              # any port unless the entry names one
    ("a.jobs.acme.example", True),
    ("a.b.jobs.acme.example:8080", True),
    ("jobs.acme.example", False),                    # *.x matches subdomains, not x
    ("localhost:8080", True),
    ("localhost:8081", False),
    ("localhost", False),
    ("[::1]:9", True),
    ("acme.example", False),
    ("careers.acme.example.evil.example", False),
    ("evilcareers.acme.example", False),
    ("xjobs.acme.example", False),
])
def test_host_policy(host: str, served: bool) -> None:
    parts = split_host(host)
    assert parts is not None and POLICY.serves(*parts) is served


def test_no_list_serves_any_host() -> None:
    assert HostPolicy(None).serves("anything.example", "1")


@pytest.mark.parametrize("entry", ["*", "*.", "careers.*.example", "http://x.example",
                                   "x.example/", "a b"])
def test_bad_entries_are_named(entry: str) -> None:
    assert host_entry_problem(entry) is not None
    with pytest.raises(ValueError):
        HostPolicy([entry])


@given(st.text(max_size=40))
def test_a_served_host_is_always_one_of_the_list(value: str) -> None:
    parts = split_host(value)
    if parts is None or not POLICY.serves(*parts):
        return
    name, port = parts
    assert (name in ("careers.acme.example", "[::1]") or name.endswith(".jobs.acme.example")
            or (name, port) == ("localhost", "8080"))


TRUSTED = TrustedProxies(["10.0.0.0/8"])
HOSTS = HostPolicy(["careers.acme.example"])
RAW = [(b"X-Forwarded-For", b"6.6.6.6, 203.0.113.9"), (b"X-Forwarded-Proto", b"https"),
       (b"X-Forwarded-Host", b"careers.acme.example")]


def test_client_view_from_a_trusted_balancer() -> None:
    c = client_view(RAW, "10.0.0.5", "edge.internal:8080", "http", TRUSTED, HOSTS)
    assert (c.ip, c.proto, c.host, c.forwarded_for, c.refused) == (
        "203.0.113.9", "https", "careers.acme.example", b"203.0.113.9, 10.0.0.5", 0)


def test_client_view_from_anyone_else_ignores_forwarding() -> None:
    c = client_view(RAW, "198.51.100.7", "careers.acme.example:8443", "http", TRUSTED, HOSTS)
    assert (c.ip, c.proto, c.host, c.forwarded_for, c.refused) == (
        "198.51.100.7", "http", "careers.acme.example:8443", b"198.51.100.7", 0)


def test_client_view_refuses_hosts_not_ours() -> None:
    evil = [(b"X-Forwarded-Host", b"evil.example")]
    assert client_view(evil, "10.0.0.5", "careers.acme.example", "http", TRUSTED,
                       HOSTS).refused == MISDIRECTED
    assert client_view(evil, "198.51.100.7", "careers.acme.example", "http", TRUSTED,
                       HOSTS).refused == 0
    assert client_view([], "198.51.100.7", "evil.example", "http", TRUSTED,
                       HOSTS).refused == MISDIRECTED
    bad = client_view([], "198.51.100.7", "<x>", "http", TRUSTED, HostPolicy(None))
    assert bad.refused == BAD_HOST and bad.host == "" and bad.ip == "198.51.100.7"
