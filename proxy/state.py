"""Where the proxy's state lives, and the one way to open it.

`state = "sqlite:///ABS/PATH"`, `"sqlite:REL/PATH"` or `"redis://host:port/db"`.
Every SQLite store (outbox, dedupe, journeys, feed) opens its own connection to the
same file through `open_sqlite`, so WAL and timeouts are set in one place.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

WAL_SIZE_LIMIT = 4 << 20     # a WAL past this asks for a checkpoint


class StateURLError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class StateLocation:
    kind: Literal["sqlite", "redis"]
    target: str          # a file path for sqlite, the URL for redis

    @property
    def sqlite_path(self) -> str:
        if self.kind != "sqlite":
            raise StateURLError("not a sqlite state")
        return self.target


def parse_state(url: str, base: Path | None = None) -> StateLocation:
    """Parse a `state` value; a relative sqlite path is relative to `base` (the cwd)."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return StateLocation("redis", url)
    if url.startswith("sqlite:///"):
        return StateLocation("sqlite", "/" + url[len("sqlite:///"):].lstrip("/"))
    if url.startswith("sqlite:"):
        rel = url[len("sqlite:"):]
        if not rel or rel.startswith("//"):
            raise StateURLError(f"sqlite state needs a path: {url!r}")
        if rel == ":memory:":
            raise StateURLError("an in-memory sqlite state cannot be shared by workers")
        return StateLocation("sqlite", str((base or Path.cwd()) / rel))
    raise StateURLError(
        f"state must be sqlite:///ABS/PATH, sqlite:REL/PATH or redis://host:port/db, not {url!r}")


def _enable_wal(conn: sqlite3.Connection, attempts: int = 50) -> None:
    """Switch to WAL. Two processes opening a new file at once race for the lock this
    needs, and SQLite answers "locked" without waiting: try again briefly."""
    for attempt in range(attempts):
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1))


def json_param(value: Any) -> str:
    """JSON for a `json_each(?)` parameter: text, since SQLite 3.45+ reads a blob as JSONB.

    A batch passed as one parameter is one statement, so one GIL hand-off for the
    writer thread instead of one per row."""
    return orjson.dumps(value).decode()


class StateMissing(FileNotFoundError):
    """`open_sqlite(create=False)` found no database at the path."""


def open_sqlite(path: str, *, create: bool = True, durable: bool = False) -> sqlite3.Connection:
    """A connection in WAL mode, safe to share between processes of one host.

    `create=False` opens an existing database only (never an empty new file where a
    path was mistyped). `durable=True` syncs the WAL on every commit
    (`synchronous=FULL`): a commit then survives a power loss, not only a crash of
    the process, which is all `NORMAL` promises in WAL mode."""
    if create:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    else:
        if not Path(path).is_file():
            raise StateMissing(f"no state database at {path}")
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=rw", uri=True,
                               timeout=30, isolation_level=None, check_same_thread=False)
    if create:      # an existing state is in WAL already; anything else is left as it is
        _enable_wal(conn)
    conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout=30000")
    # A WAL restarted after a checkpoint is cut back to this, whoever restarted it: its
    # size then says what waits for the next checkpoint (`sqlite_worker`).
    conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    return conn


def sqlite_secret(path: str) -> bytes:
    """The HMAC key kept in the state, generated once; several workers agree on it."""
    conn = open_sqlite(path, durable=True)     # cookies outlive a power loss: so must their key
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS edge_kv (key TEXT PRIMARY KEY, value BLOB)")
        conn.execute(
            "INSERT OR IGNORE INTO edge_kv (key, value) VALUES ('secret', ?)",
            (secrets.token_bytes(32),))
        row = conn.execute("SELECT value FROM edge_kv WHERE key = 'secret'").fetchone()
        return bytes(row[0])
    finally:
        conn.close()
