"""The access log (`[log] access`): one line per request, off the hot path.

On the request path `add` only appends a tuple of the values at hand; the
background task (`run`) formats, redacts and writes them every `interval`
seconds. Formats:

    json      {"time": "2026-12-03T08:24:38.123Z", "request_id": "…", "client": "…",
               "method": "GET", "uri": "/jobs/1?tlr_sid=[redacted]", "protocol": "HTTP/1.1",
               "status": 200, "bytes": 4810, "duration_ms": 3.21, "upstream_ms": 2.87,
               "referer": "…", "user_agent": "…"}
    combined  nginx's `combined`, exactly, so log tools read it as they read nginx's:
              CLIENT - - [03/Dec/2026:08:24:38 +0000] "GET /jobs/1 HTTP/1.1" 200 4810 "REFERER" "UA"

`bytes` is the response body's size as sent. `uri` and `referer` go through the
`Redactor` (an e-mail-shaped user agent too). `client` is the visitor's address as
the request path found it. With `health = false`, requests for `healthz`, `readyz`
and `metrics` under the prefix are not logged.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import sys
import time
from collections.abc import Callable
from itertools import count
from typing import IO, Final

import orjson

from proxy.app_log import iso_time
from proxy.redact import NO_REDACTION, Redactor, has_email

MAX_BUFFERED: Final = 100_000          # records held between flushes; more are dropped
MAX_FIELD: Final = 2048
HEALTH: Final = frozenset({"healthz", "readyz", "metrics"})
REQUEST_ID_HEADER: Final = "X-Request-ID"
_TRUSTED_ID: Final = re.compile(r"[\x21-\x7e]{1,200}")
_UNSAFE: Final = re.compile(r'[^\x20-\x7e]|["\\]')
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                  "Dec")

# (time, seconds, method, target, version, status, bytes, upstream s, request id,
#  client, user agent, referer)
Record = tuple[float, float, str, str, str, int, int, "float | None", str, str, str, str]


class RequestIds:
    """Request ids as nginx's `$request_id` looks: 32 hex digits, unique per process
    (a random prefix per instance, so forked workers never share one)."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._next = count(1).__next__

    def __call__(self) -> str:
        return f"{self._prefix}{self._next():016x}"


def trusted_request_id(value: str | None) -> str | None:
    """A proxy in front's X-Request-ID, when it is one (visible ASCII, bounded)."""
    return value if value and _TRUSTED_ID.fullmatch(value) else None


def _escape(value: str) -> str:
    """nginx's escaping of a variable in a log line: `"`, `\\` and non-printables as \\xHH."""
    if not _UNSAFE.search(value):
        return value
    return _UNSAFE.sub(lambda m: "".join(f"\\x{b:02X}" for b in m.group().encode()), value)


class AccessLog:
    """Buffered lines written by a background task, never on the hot path."""

    def __init__(self, stream: IO[bytes] | None = None, enabled: bool = True,
                 fmt: str = "json", health: bool = False,
                 redactor: Callable[[], Redactor] | None = None) -> None:
        """`redactor` gives the current rules' `Redactor` (they may be reloaded)."""
        self.enabled = enabled
        self.stream = stream or sys.stdout.buffer
        self.fmt = fmt
        self.health = health
        self.redactor: Callable[[], Redactor] = redactor or (lambda: NO_REDACTION)
        self.records: list[Record] = []
        self.dropped = 0
        self._second = -1
        self._stamp = ""

    def quiet(self, target: str, prefix: str) -> bool:
        """A request for the proxy's own endpoint `target` that is not logged."""
        if self.health or not target.startswith(prefix + "/"):
            return False
        return target.partition("?")[0][len(prefix) + 1:] in HEALTH

    def add(self, record: Record) -> None:
        if len(self.records) < MAX_BUFFERED:
            self.records.append(record)
        else:
            self.dropped += 1

    # -- formatting, in the background ----------------------------------------------

    def lines(self, records: list[Record]) -> bytes:
        redactor = self.redactor()
        one = self._combined if self.fmt == "combined" else self._json
        return b"".join(one(r, redactor) for r in records)

    def _json(self, r: Record, redactor: Redactor) -> bytes:
        t, seconds, method, target, version, status, size, upstream, rid, client, ua, ref = r
        return orjson.dumps({
            "time": iso_time(t), "request_id": rid, "client": client, "method": method,
            "uri": redactor.url(target[:MAX_FIELD]), "protocol": version, "status": status,
            "bytes": size, "duration_ms": int(seconds * 100_000 + 0.5) / 100,
            "upstream_ms": None if upstream is None else int(upstream * 100_000 + 0.5) / 100,
            "referer": redactor.url(ref[:MAX_FIELD]) if ref else None,
            "user_agent": self._agent(ua, redactor) if ua else None,
        }, option=orjson.OPT_APPEND_NEWLINE)

    def _combined(self, r: Record, redactor: Redactor) -> bytes:
        t, _, method, target, version, status, size, _, _, client, ua, ref = r
        second = int(t)
        if second != self._second:
            g = time.gmtime(second)
            self._second = second
            self._stamp = (f"{g.tm_mday:02d}/{_MONTHS[g.tm_mon - 1]}/{g.tm_year}:"
                           f"{g.tm_hour:02d}:{g.tm_min:02d}:{g.tm_sec:02d} +0000")
        request = _escape(f"{method} {redactor.url(target[:MAX_FIELD])} {version}")
        referer = _escape(redactor.url(ref[:MAX_FIELD])) if ref else "-"
        agent = _escape(self._agent(ua, redactor)) if ua else "-"
        return (f'{client or "-"} - - [{self._stamp}] "{request}" {status} {size} '
                f'"{referer}" "{agent}"\n').encode()

    @staticmethod
    def _agent(ua: str, redactor: Redactor) -> str:
        ua = ua[:256]
        return redactor.text(ua) if redactor.enabled and has_email(ua) else ua

    def flush(self) -> None:
        if self.records:
            records, self.records = self.records, []
            try:
                self.stream.write(self.lines(records))
                self.stream.flush()
            except (OSError, ValueError):
                pass

    async def run(self, interval: float = 0.5) -> None:
        try:
            while True:
                await asyncio.sleep(interval)
                self.flush()
        finally:
            self.flush()
