"""`[proxy] hosts` against a real proxy process, over raw sockets.

A spoofed Host (or X-Forwarded-Host from a trusted peer) is answered 421 and never
reaches the careers site; with `public_url` set, a foreign Host can put its name on
no cookie; links, Location, cookie Domain, Meta's event_source_url and the webhook's
url only ever name one of `hosts`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.security.edge_site import (
    EVIL,
    PUBLIC,
    body_of,
    edge,
    headers_of,
    status_of,
)

HOSTS = f'hosts = ["{PUBLIC}"]'
QUIET = 1.0     # seconds in which a conversion that must not come would have come


async def test_a_host_not_served_is_421_and_never_forwarded(tmp_path: Path) -> None:
    async with edge(tmp_path, HOSTS) as e:
        for host in (EVIL, f"{EVIL}:443", f"{PUBLIC}.{EVIL}", "127.0.0.1", "[::1]:80"):
            for path in ("/jobs", "/thanks", "/_edge/feed.xml", "/_edge/go?to=https://x.test/"):
                raw = await e.get(path, f"Host: {host}")
                assert status_of(raw) == 421, (host, path, raw[:200])
                assert EVIL.encode() not in body_of(raw)
        assert e.site.seen == []
        # The public host, in any letter case, with a port, with the root's dot: served.
        for host in (PUBLIC, PUBLIC.upper(), f"{PUBLIC}:8443", f"{PUBLIC}."):
            assert status_of(await e.get("/jobs", f"Host: {host}")) == 200, host
        assert len(e.site.seen) == 4


async def test_a_host_that_is_no_host_name_is_400(tmp_path: Path) -> None:
    """Even with any host served (no hosts, no public_url), a Host that is not a host
    name never reaches a link or a cookie."""
    async with edge(tmp_path) as e:
        for host in ('evil.example"><script>alert(1)</script>', "a b", "x:y:z", "[::1",
                     "evil.example:99999", "evil.example/path"):
            raw = await e.get("/jobs", f"Host: {host}")
            assert status_of(raw) == 400, (host, raw[:200])
            assert b"script" not in raw
        assert e.site.seen == []


async def test_forwarded_host_is_checked_and_believed_only_from_trusted_peers(
        tmp_path: Path) -> None:
    async with edge(tmp_path, HOSTS + '\ntrusted_proxies = ["127.0.0.1/32"]') as e:
        raw = await e.get("/jobs", f"Host: {PUBLIC}", f"X-Forwarded-Host: {EVIL}")
        assert status_of(raw) == 421
        assert e.site.seen == []
        # Behind the balancer the Host may be internal: the forwarded one is what counts.
        raw = await e.get("/echo", "Host: edge.internal:8080", f"X-Forwarded-Host: {PUBLIC}")
        assert status_of(raw) == 200
        assert e.site.seen[-1].headers["X-Forwarded-Host"] == PUBLIC
    async with edge(tmp_path, HOSTS) as e:                 # the peer is not trusted
        raw = await e.get("/echo", f"Host: {PUBLIC}", f"X-Forwarded-Host: {EVIL}",
                          "X-Forwarded-Proto: https")
        assert status_of(raw) == 200
        sent = e.site.seen[-1].headers
        assert sent["X-Forwarded-Host"] == PUBLIC and sent["X-Forwarded-Proto"] == "http"


async def test_with_public_url_a_foreign_host_names_no_cookie(tmp_path: Path) -> None:
    async with edge(tmp_path, f'public_url = "https://{PUBLIC}"') as e:
        evil = await e.get("/jobs?fbclid=IwAR-edge-trust", f"Host: {EVIL}")
        assert status_of(evil) == 421
        assert EVIL.encode() not in evil and b"Set-Cookie" not in evil
        assert e.site.seen == []
        raw = await e.get("/jobs?fbclid=IwAR-edge-trust", f"Host: {PUBLIC}")
        assert status_of(raw) == 200
        cookies = [v for n, v in headers_of(raw) if n == "set-cookie"]
        domains = {c.split("Domain=")[1].split(";")[0] for c in cookies if "Domain=" in c}
        assert domains == {PUBLIC, "acme.example"}          # the site's; _fbc/_fbp's eTLD+1
        assert any(c.startswith("_fbc=") for c in cookies)
        assert f'href="https://{PUBLIC}/jobs/1"'.encode() in body_of(raw)


async def test_links_location_cookies_and_conversions_name_only_a_served_host(
        tmp_path: Path) -> None:
    async with edge(tmp_path, HOSTS) as e:
        evil = [await e.get(p, f"Host: {EVIL}") for p in ("/thanks", "/moved", "/jobs")]
        assert {status_of(r) for r in evil} == {421}
        raw = await e.get("/jobs?fbclid=IwAR-edge-trust", f"Host: {PUBLIC}")
        assert f'href="http://{PUBLIC}/jobs/1"'.encode() in body_of(raw)
        cookies = [v for n, v in headers_of(raw) if n == "set-cookie"]
        sess = next(c for c in cookies if c.startswith("sess="))
        assert f"Domain={PUBLIC};" in sess
        assert all(EVIL not in c for c in cookies)
        moved = await e.get("/moved", f"Host: {PUBLIC}")
        assert dict(headers_of(moved))["location"] == f"http://{PUBLIC}/jobs"

        assert status_of(await e.get("/thanks", f"Host: {PUBLIC}")) == 200
        meta = await e.recorder.wait_for(lambda r: r.network == "meta", timeout=15)
        hook = await e.recorder.wait_for(lambda r: r.network == "webhook", timeout=15)
        await asyncio.sleep(QUIET)
        assert len(e.recorder.of("meta")) == 1 and len(e.recorder.of("webhook")) == 1
        event = meta.json()["data"][0]
        assert event["event_source_url"] == f"http://{PUBLIC}/thanks"
        assert hook.json()["url"] == f"http://{PUBLIC}/thanks"


async def test_healthz_answers_whatever_the_host(tmp_path: Path) -> None:
    """Load balancers and orchestrators probe by IP address."""
    async with edge(tmp_path, HOSTS) as e:
        assert status_of(await e.get("/_edge/healthz", "Host: 10.1.2.3:8080")) == 200
        assert status_of(await e.get("/_edge/healthz", f"Host: {EVIL}")) == 200
