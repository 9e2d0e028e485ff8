"""Opening the state a rules file names: SQLite on one host, or Redis shared by many.

The outbox, the dedupe and the journeys live in the chosen store; the feed's job
pages always stay in a local SQLite file (each host harvests what it serves).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from proxy.attribution.journeys import JourneyStore
from proxy.attribution.redis_journeys import RedisJourneyStore
from proxy.config.model import DEFAULT_STATE, Config
from proxy.conversions.redis_outbox import RedisOutbox
from proxy.conversions.sqlite_outbox import SqliteOutbox
from proxy.metrics import Metrics
from proxy.ports import Journeys, Outbox
from proxy.state import parse_state, sqlite_secret
from proxy.state_redis import redis_secret


@dataclass(frozen=True, slots=True)
class Stores:
    secret: bytes
    outbox: Outbox
    journeys: Journeys
    local_path: str        # a SQLite file on this host (the feed's job store)


def open_stores(config: Config, metrics: Metrics, base: Path | None = None) -> Stores:
    state = parse_state(config.proxy.state, base=base or Path.cwd())
    retention = config.attribution.cookie_days
    if state.kind == "redis":
        secret = (config.proxy.secret.encode() if config.proxy.secret
                  else redis_secret(state.target))
        local = parse_state(DEFAULT_STATE, base=base or Path.cwd()).sqlite_path
        return Stores(secret, RedisOutbox(state.target, metrics=metrics),
                      RedisJourneyStore(state.target, retention_days=retention), local)
    path = state.sqlite_path
    secret = config.proxy.secret.encode() if config.proxy.secret else sqlite_secret(path)
    outbox = SqliteOutbox(path, metrics=metrics)
    # One writer process for the file: journeys commit in the submits' transactions.
    return Stores(secret, outbox,
                  JourneyStore(path, retention_days=retention, writer=outbox.writer), path)
