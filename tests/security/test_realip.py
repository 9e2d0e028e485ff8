"""The visitor's IP behind a trusted balancer, against a real proxy process.

The test process plays the balancer (127.0.0.1, trusted): it appends the address it
saw, 203.0.113.9, to whatever X-Forwarded-For the visitor sent. Whatever the visitor
wrote, Meta's client_ip_address, the access log and the X-Forwarded-For sent to the
careers site all say 203.0.113.9, as nginx's realip (real_ip_recursive on) and Envoy
would.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.security.edge_site import PUBLIC, edge, status_of

VISITOR = "203.0.113.9"
TRUSTED = 'trusted_proxies = ["127.0.0.1/32", "10.0.0.0/8"]'


SPOOFED = ["<script>alert(1)</script>", "6.6.6.6", "10.1.1.1", "6.6.6.6, 10.9.9.9:4711", ""]


async def test_what_the_visitor_writes_to_the_left_is_never_believed(tmp_path: Path) -> None:
    async with edge(tmp_path, TRUSTED) as e:
        for i, spoofed in enumerate(SPOOFED):
            chain = f"{spoofed}, {VISITOR}" if spoofed else VISITOR
            raw = await e.get(f"/thanks?case={i}", f"Host: {PUBLIC}",
                              f"X-Forwarded-For: {chain}", f"User-Agent: case-{i}")
            assert status_of(raw) == 200
            assert e.site.seen[-1].headers.getall("X-Forwarded-For") == [
                f"{VISITOR}, 127.0.0.1"], spoofed
        events = await meta_events(e, len(SPOOFED))
        assert {ev["user_data"]["client_user_agent"]: ev["user_data"]["client_ip_address"]
                for ev in events} == {f"case-{i}": VISITOR for i in range(len(SPOOFED))}
        records = await e.access_log(lambda r: r["uri"] == f"/thanks?case={len(SPOOFED) - 1}")
        assert [r["client"] for r in records if r["uri"].startswith("/thanks")] == \
            [VISITOR] * len(SPOOFED)


async def meta_events(e, count: int) -> list[dict]:
    """The events Meta received, once there are `count` of them (in one batch or more)."""
    def received() -> list[dict]:
        return [ev for r in e.recorder.of("meta") for ev in r.json()["data"]]
    deadline = asyncio.get_running_loop().time() + 15
    while len(received()) < count:
        assert asyncio.get_running_loop().time() < deadline, received()
        await asyncio.sleep(0.05)
    return received()


async def test_the_walk_skips_every_trusted_hop(tmp_path: Path) -> None:
    """visitor → CDN-ish hop (10.x, trusted) → balancer (the test, trusted)."""
    async with edge(tmp_path, TRUSTED) as e:
        raw = await e.get("/echo", f"Host: {PUBLIC}",
                          f"X-Forwarded-For: 6.6.6.6, {VISITOR}",
                          "X-Forwarded-For: 10.2.3.4:8080")     # a second header: one list
        assert status_of(raw) == 200
        assert e.site.seen[-1].headers["X-Forwarded-For"] == f"{VISITOR}, 10.2.3.4, 127.0.0.1"
        records = await e.access_log(lambda r: r["uri"] == "/echo")
        assert [r["client"] for r in records if r["uri"] == "/echo"] == [VISITOR]


async def test_a_non_address_ends_the_walk_at_the_last_trusted_hop(tmp_path: Path) -> None:
    async with edge(tmp_path, TRUSTED) as e:
        raw = await e.get("/echo", f"Host: {PUBLIC}",
                          f"X-Forwarded-For: {VISITOR}, <script>alert(1)</script>")
        assert status_of(raw) == 200
        assert e.site.seen[-1].headers["X-Forwarded-For"] == "127.0.0.1"
        records = await e.access_log(lambda r: r["uri"] == "/echo")
        assert [r["client"] for r in records if r["uri"] == "/echo"] == ["127.0.0.1"]


async def test_an_untrusted_peer_s_forwarding_headers_are_ignored(tmp_path: Path) -> None:
    async with edge(tmp_path) as e:
        raw = await e.get("/thanks", f"Host: {PUBLIC}", f"X-Forwarded-For: {VISITOR}",
                          "X-Real-IP: 6.6.6.6")
        assert status_of(raw) == 200
        meta = await e.recorder.wait_for(lambda r: r.network == "meta", timeout=15)
        assert meta.json()["data"][0]["user_data"]["client_ip_address"] == "127.0.0.1"
        sent = e.site.seen[-1].headers
        assert sent.getall("X-Forwarded-For") == ["127.0.0.1"] and "X-Real-IP" not in sent
