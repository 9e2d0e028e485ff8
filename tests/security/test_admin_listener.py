"""Two doors: operators' endpoints answer only on the admin listener.

Against a real proxy process over raw sockets: metrics and readyz are 404 on the
public listener (and counted nowhere, and readyz there never reaches the careers
site); on the admin listener they answer, behind the bearer token when one is set
(401 with WWW-Authenticate otherwise), healthz always without one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from yarl import URL

from tests.integration.procs import metric_value
from tests.security.edge_site import PUBLIC, edge, headers_of, status_of

TOKEN = "admin-token-edge-trust"
ADMIN_TOKEN = '[admin]\ntoken = "${EDGE_ADMIN_TOKEN}"\n'
OPERATOR_PATHS = ("/_edge/metrics", "/_edge/readyz")


async def test_operator_endpoints_are_404_on_the_public_listener(tmp_path: Path) -> None:
    async with edge(tmp_path) as e:
        for path in OPERATOR_PATHS + ("/_edge/readyz?x=1",):
            for method in ("GET", "HEAD", "POST"):
                raw = await e.raw(f"{method} {path} HTTP/1.1\r\nHost: {PUBLIC}\r\n"
                                  "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
                assert status_of(raw) == 404, (method, path, raw[:300])
                assert b"edge_requests_total" not in raw
        assert e.site.seen == []                            # readyz asked nobody

        async def served(code: str) -> float:
            raw = await e.get("/_edge/metrics", "Host: 127.0.0.1", admin=True)
            assert status_of(raw) == 200
            return metric_value(raw.decode(), "edge_requests_total", code=code)

        assert await served("404") == 0                     # counts nothing
        before = await served("200")                        # healthz polled at start
        assert status_of(await e.get("/jobs", f"Host: {PUBLIC}")) == 200
        assert await served("200") == before + 1            # scrapes are no visitors
        raw = await e.get("/_edge/readyz", "Host: 127.0.0.1", admin=True)
        assert status_of(raw) == 200 and b'"ready"' in raw
        assert [r.method for r in e.site.seen] == ["GET", "HEAD"]     # /jobs, then readyz


async def test_admin_token_guards_every_path_but_healthz(tmp_path: Path) -> None:
    async with edge(tmp_path, extra=ADMIN_TOKEN, env={"EDGE_ADMIN_TOKEN": TOKEN}) as e:
        for path in OPERATOR_PATHS + ("/_edge/anything",):
            for auth in ((), ("Authorization: Bearer wrong",), (f"Authorization: Basic {TOKEN}",),
                         (f"Authorization: Bearer {TOKEN}x",)):
                raw = await e.get(path, "Host: 127.0.0.1", *auth, admin=True)
                assert status_of(raw) == 401, (path, auth)
                assert dict(headers_of(raw))["www-authenticate"].startswith("Bearer")
                assert TOKEN.encode() not in raw
        assert e.site.seen == []
        for path in OPERATOR_PATHS:
            raw = await e.get(path, "Host: 127.0.0.1", f"Authorization: Bearer {TOKEN}",
                              admin=True)
            assert status_of(raw) == 200, path
        assert status_of(await e.get("/_edge/healthz", "Host: 127.0.0.1", admin=True)) == 200
        raw = await e.get("/_edge/nope", "Host: 127.0.0.1", f"Authorization: Bearer {TOKEN}",
                          admin=True)
        assert status_of(raw) == 404
        # The public listener does not take the token as a key to the operators' door.
        raw = await e.get("/_edge/metrics", "Host: 127.0.0.1", f"Authorization: Bearer {TOKEN}")
        assert status_of(raw) == 404


async def test_the_admin_listener_can_be_turned_off(tmp_path: Path) -> None:
    async with edge(tmp_path, args=("--admin-listen", "off")) as e:
        assert "admin off" in e.proxy.stderr()
        assert status_of(await e.get("/_edge/metrics", "Host: 127.0.0.1")) == 404


async def test_scrapes_write_no_aiohttp_access_lines(tmp_path: Path) -> None:
    """The admin listener logs like the public one: a scrape every few seconds must not
    add aiohttp's own access line to the process's log."""
    async with edge(tmp_path) as e:
        for path in OPERATOR_PATHS + ("/_edge/healthz",):
            assert status_of(await e.get(path, "Host: 127.0.0.1", admin=True)) == 200
        assert status_of(await e.get("/jobs", f"Host: {PUBLIC}")) == 200
        await e.access_log(lambda r: r.get("uri") == "/jobs")
        assert "aiohttp.access" not in e.proxy.stderr() + e.proxy.stdout()


async def test_the_admin_listener_names_the_proxy_without_versions(tmp_path: Path) -> None:
    """aiohttp would name itself and its version on every admin answer: the admin
    listener says `Server: careers-edge`, as the public one does, the live stream too."""
    async with edge(tmp_path) as e:
        for path in OPERATOR_PATHS + ("/_edge/healthz", "/_edge/nope", "/_edge/ui/"):
            raw = await e.get(path, "Host: 127.0.0.1", admin=True)
            assert dict(headers_of(raw))["server"] == "careers-edge", (path, raw[:300])
            assert b"aiohttp" not in raw.lower().split(b"\r\n\r\n")[0]
        url = URL(e.proxy.admin_url)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(b"GET /_edge/api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"retry:"), 10)
        finally:
            writer.close()
        assert status_of(raw) == 200, raw[:300]
        assert dict(headers_of(raw))["server"] == "careers-edge"
