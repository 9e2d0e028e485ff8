"""Two `careers-edge run` processes sharing one redis-server (`state = "redis://…"`).

One visitor lands and applies through the proxies; the process that claimed the
delivery is SIGKILLed while the network has not answered yet; the other one delivers
the conversion (same idempotency key), refuses a repeat of it (shared dedupe), accepts
the visitor's cookie (shared secret) and attributes a later hire from the events API by
the click id the first process saw (shared journeys).
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import aiohttp
import orjson
import pytest
import redis
from aiohttp import web
from test_conversions_recorder import Recorder, Reply

from proxy.attribution.cookies import VISITOR_COOKIE
from proxy.conversions.redis_outbox import RedisOutbox
from proxy.conversions.states import RowState
from proxy.conversions.tuning import LEASE_ENV
from proxy.state_redis import KEY_PREFIX
from tests.integration.procs import ProxyProcess, spawn

pytest_plugins = ["redis_server"]
pytestmark = [
    pytest.mark.redis, pytest.mark.slow,
]

REDIS_DB = 7                  # the proxies use the production key prefix: a db of their own
TOKEN = "api-token"
HOOK = "/hook"
LEASE_SECONDS = 5             # a dead process's claim holds its row this long

RULES = """
[proxy]
upstream = "{upstream}"
state = "{state}"
timeout = 10

[log]
access = "off"

[api]
token = "{token}"

[[rules]]
name = "application submitted"
event = "ApplicationCompleted"
method = "POST"
path = "/jobs/{{job_id}}/apply"
status = [303]
send_to = ["ats"]

[sinks.ats]
type = "webhook"
url = "{recorder}{hook}"
secret = "hook-secret"
timeout = 2
"""


def careers_site() -> web.Application:
    async def job(request: web.Request) -> web.Response:
        return web.Response(text="<html><head><title>Job</title></head><body>42</body></html>",
                            content_type="text/html")

    async def apply(request: web.Request) -> web.Response:
        await request.read()
        raise web.HTTPSeeOther(f"/jobs/{request.match_info['id']}/thanks")

    app = web.Application()
    app.router.add_get("/jobs/{id}", job)
    app.router.add_get("/jobs/{id}/thanks", job)
    app.router.add_post("/jobs/{id}/apply", apply)
    return app


async def eventually(check, what: str, tries: int = 1500):
    """Poll `check()` until it returns something truthy; the bound only ends a hung test."""
    for _ in range(tries):
        if found := await check():
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"never: {what}")


async def test_a_killed_proxy_leaves_its_delivery_to_the_other(aiohttp_server, redis_url,
                                                               tmp_path: Path):
    state = redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    raw = redis.Redis.from_url(state)
    raw.flushdb()
    upstream = await aiohttp_server(careers_site())
    rec = await Recorder.start(aiohttp_server)
    rec.script(HOOK, Reply(delay=60))            # the network does not answer the first try
    rules = tmp_path / "rules.toml"
    rules.write_text(textwrap.dedent(RULES).format(
        upstream=f"http://127.0.0.1:{upstream.port}", state=state, token=TOKEN,
        recorder=rec.url(""), hook=HOOK))
    procs = [spawn(rules, tmp=tmp_path, name=f"proxy{i}", env={LEASE_ENV: str(LEASE_SECONDS)})
             for i in range(2)]
    outbox = RedisOutbox(state, prefix=KEY_PREFIX, wake=False)
    try:
        await asyncio.gather(*(p.wait_healthy() for p in procs))
        first = procs[0]
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as s:
            async with s.get(f"{first.url}/jobs/42?gclid=G-1") as r:
                assert r.status == 200
            visitor = next(c.value for c in jar if c.key == VISITOR_COOKIE)
            await eventually(lambda: asyncio.to_thread(
                raw.exists, f"{KEY_PREFIX}journey:{visitor}"), "journey stored")
            async with s.post(f"{first.url}/jobs/42/apply", data={"name": "Ada"},
                              allow_redirects=False) as r:
                assert r.status == 303

            await rec.wait_for(1, HOOK)           # one process is sending it, and waiting
            (row,) = await outbox.list_rows()
            assert row.state is RowState.LEASED and row.event.links_clicked_id == visitor
            owner_pid = int(row.lease_owner.split(":")[1])
            (dying,) = [p for p in procs if p.pid == owner_pid]
            (survivor,) = [p for p in procs if p is not dying]
            dying.kill()                          # the survivor takes it once the lease ends

            await rec.wait_for(2, HOOK)
            sent = await eventually(lambda: _state_is(outbox, row.id, RowState.SENT),
                                    "row sent by the survivor")
            assert sent.attempts == 2
            hooks = rec.on(HOOK)
            assert len(hooks) == 2
            assert hooks[0].headers["Idempotency-Key"] == hooks[1].headers["Idempotency-Key"]
            assert orjson.loads(hooks[1].body)["linksClickedId"] == visitor

            # The same application again, through the survivor: deduped, nothing queued.
            async with s.post(f"{survivor.url}/jobs/42/apply", data={"name": "Ada"},
                              allow_redirects=False) as r:
                assert r.status == 303
            assert 'outcome="deduped",sink="ats"} 1.0' in await _metrics_sorted(survivor)
            assert await outbox.pending_count() == 0

            # A hire reported to the survivor, by the click id the dead process captured.
            async with s.post(f"{survivor.url}/_edge/api/events",
                              headers={"Authorization": f"Bearer {TOKEN}"},
                              json={"event": "Hire", "click_ids": {"gclid": "G-1"}}) as r:
                assert r.status == 202, await r.text()
            await rec.wait_for(3, HOOK)
            hire = orjson.loads(rec.on(HOOK)[2].body)
            assert hire["event"] == "Hire" and hire["linksClickedId"] == visitor
        await asyncio.sleep(0.3)                  # a duplicate delivery would show by now
        assert len(rec.on(HOOK)) == 3
    finally:
        for p in procs:
            p.kill()
        await outbox.close()
        raw.flushdb()
        raw.close()


async def _state_is(outbox: RedisOutbox, row_id: int, state: RowState):
    row = await outbox.get(row_id)
    return row if row is not None and row.state is state else None


async def _metrics_sorted(p: ProxyProcess) -> str:
    """Metric lines with their labels in name order, whatever order they were printed in."""
    lines = []
    for line in (await p.metrics()).splitlines():
        if "{" in line and not line.startswith("#"):
            name, rest = line.split("{", 1)
            labels, value = rest.rsplit("}", 1)
            line = name + "{" + ",".join(sorted(labels.split(","))) + "}" + value
        lines.append(line)
    return "\n".join(lines)
