"""The Redis state (`state = "redis://host:port/db"`): connections, key names, the secret.

Several proxy hosts share one Redis for the outbox, dedupe and journeys
(`conversions.redis_outbox`, `attribution.redis_journeys`). Every key starts with
`KEY_PREFIX`, so one Redis database can hold other data too; tests pass their own
prefix. The stores run Lua scripts that name keys built from the prefix, so they need
one Redis (or a replicated primary), not a Redis Cluster.

Durability is Redis's: for the "nothing lost when the proxy is killed" promise to hold
through a Redis restart too, run it with `appendonly yes` (and `appendfsync always`
to match SQLite's guarantee; `everysec` risks the last second).
"""

from __future__ import annotations

import secrets

import redis
import redis.asyncio as aioredis

KEY_PREFIX = "careers-edge:"
SECRET_KEY = "secret"
CONNECT_TIMEOUT = 5.0        # seconds; a Redis that does not answer fails readiness
SOCKET_TIMEOUT = 10.0        # seconds a command may take: a hung Redis fails a submit (logged,
                             # the page still served) instead of holding the request forever
HEALTH_CHECK_INTERVAL = 30   # seconds an idle pooled connection is trusted without a PING


def connect(url: str) -> aioredis.Redis:
    """An asyncio client with its own connection pool; bytes in, bytes out."""
    return aioredis.Redis.from_url(
        url, decode_responses=False, socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT, health_check_interval=HEALTH_CHECK_INTERVAL)


def redis_secret(url: str, prefix: str = KEY_PREFIX) -> bytes:
    """The HMAC key kept in Redis, generated once (SET NX): every host agrees on it."""
    client = redis.Redis.from_url(url, decode_responses=False,
                                  socket_connect_timeout=CONNECT_TIMEOUT,
                                  socket_timeout=SOCKET_TIMEOUT)
    try:
        key = prefix + SECRET_KEY
        client.set(key, secrets.token_bytes(32), nx=True)
        value = client.get(key)
        if not isinstance(value, bytes) or not value:
            raise RuntimeError(f"Redis at {url} did not keep the secret")
        return value
    finally:
        client.close()
