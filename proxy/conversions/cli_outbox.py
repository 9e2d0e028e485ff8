"""`careers-edge outbox [--dead] [--retry-dead]`: look into the durable queue.

Prints rows per sink and state, then the rows still owed a delivery (or, with
`--dead`, the dead letters with their error and the head of the network's answer).
`--retry-dead` re-queues dead letters younger than 7 days; a running proxy picks
them up at its next poll.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit

from redis.exceptions import RedisError

from proxy.config.model import Config
from proxy.conversions.outbox import Outbox, OutboxRow
from proxy.conversions.sqlite_outbox import SqliteOutbox
from proxy.conversions.states import RowState
from proxy.state import StateLocation, StateMissing, parse_state

ROW_LIMIT = 50
BODY_HEAD = 200


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def _row_line(r: OutboxRow, dead: bool) -> str:
    e = r.event
    line = (f"#{r.id} {r.sink} {e.name} event_id={e.event_id} visitor={e.links_clicked_id or '-'}"
            f" {r.state} attempts={r.attempts} created={_when(r.created_at)}")
    if not dead and r.state is not RowState.PENDING:
        line += f" next={_when(r.next_attempt_at)}"
    if r.last_error:
        line += f"\n    error: {r.last_error}"
    if dead and r.dead_body:
        head = r.dead_body[:BODY_HEAD].replace("\n", " ")
        line += f"\n    body: {head}{'…' if len(r.dead_body) > BODY_HEAD else ''}"
    return line


async def report(outbox: Outbox, *, dead: bool, retry_dead: bool, out: TextIO) -> int:
    if retry_dead:
        n = await outbox.retry_dead()
        print(f"re-queued {n} dead letter{'s' if n != 1 else ''}", file=out)
    counts = await outbox.counts()
    states = [s.value for s in RowState]
    print(f"{'sink':<20}" + "".join(f"{s:>9}" for s in states), file=out)
    for sink in sorted(counts):
        print(f"{sink:<20}" + "".join(f"{counts[sink].get(s, 0):>9}" for s in states), file=out)
    if not counts:
        print("(empty)", file=out)
    rows = await outbox.list_rows(dead=dead, limit=ROW_LIMIT)
    if rows:
        print("\ndead letters:" if dead else "\nwaiting:", file=out)
        for r in rows:
            print(_row_line(r, dead), file=out)
        if len(rows) == ROW_LIMIT:
            print(f"(first {ROW_LIMIT} shown)", file=out)
    return 0


async def open_outbox(location: StateLocation) -> Outbox:
    """The state's outbox as it is: a SQLite state is never created here."""
    if location.kind == "redis":
        from proxy.conversions.redis_outbox import RedisOutbox
        return RedisOutbox(location.target)
    return SqliteOutbox(location.sqlite_path, create=False)


def _shown(state: str) -> str:
    """The state URL without a password (a Redis URL may carry one)."""
    parts = urlsplit(state)
    if parts.password is None:
        return state
    netloc = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


async def outbox_command(config: Config, *, dead: bool = False, retry_dead: bool = False,
                         out: TextIO | None = None) -> int:
    """`careers-edge outbox`: the exit status (0; 1 when the state cannot be opened or
    reached, with one line saying why)."""
    out = out or sys.stdout
    state = _shown(config.proxy.state)
    try:
        location = parse_state(config.proxy.state, base=Path.cwd())
        outbox = await open_outbox(location)
    except StateMissing:
        print(f"outbox: cannot open the state {state!r}: no database at {location.target} "
              "(is [proxy] state right? the proxy creates it when it first runs)",
              file=sys.stderr)
        return 1
    except Exception as e:
        print(f"outbox: cannot open the state {state!r}: {e}", file=sys.stderr)
        return 1
    try:
        return await report(outbox, dead=dead, retry_dead=retry_dead, out=out)
    except (RedisError, OSError, sqlite3.Error) as e:
        print(f"outbox: cannot read the state {state!r}: {_one_line(e)}", file=sys.stderr)
        return 1
    finally:
        try:
            await outbox.close()
        except (RedisError, OSError):
            pass


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
