"""Sniffing a few small form fields out of a request body as it streams upstream.

`form:NAME` extractors need values the visitor posted (a job title, a job id).
The request body is forwarded upstream chunk by chunk; `FormSniffer.feed` looks at
each chunk on the way past and never changes, copies for keeps, or delays it. Only
the wanted fields are kept, each capped at `max_field_bytes`, all together at
`max_total`; a multipart file part (a resume) is scanned for its closing boundary
and otherwise ignored, so a 100 MB upload costs a few bytes of state.

Supported: `application/x-www-form-urlencoded` and `multipart/form-data`, values
decoded as UTF-8 (errors replaced), the first value of a name wins. Anything else,
or input that turns out malformed, makes the sniffer go quiet: it keeps what it
has and ignores the rest. Nothing here raises into the request path.

For urlencoded bodies the end of the body ends the last field, so `fields`
includes a field still being read; a multipart field counts only once its part is
closed by a boundary.
"""

from __future__ import annotations

import codecs
import logging
import re
from enum import Enum, auto
from urllib.parse import unquote_to_bytes

log = logging.getLogger(__name__)

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
MAX_FIELD_BYTES = 4096
MAX_TOTAL_BYTES = 64 * 1024
MAX_PART_HEADER_BYTES = 8 * 1024      # all header lines of one part
MAX_BOUNDARY_LEN = 200                # RFC 2046 says 70; be lenient, not unbounded
MAX_DELIMITER_PADDING = 256           # transport padding after a boundary

# `; name=value` or `; name="quoted \" value"` in Content-Type / Content-Disposition.
_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_QUOTED_PAIR = re.compile(r"\\(.)")
_URL_SEPARATOR = re.compile(rb"[=&]")


class Malformed(ValueError):
    """The body is not what its Content-Type says; sniffing stops."""


def parse_params(value: str) -> tuple[str, dict[str, str]]:
    """`type/sub; a=1; b="x"` -> ("type/sub", {"a": "1", "b": "x"}); names lowercased."""
    head, _, _ = value.partition(";")
    params: dict[str, str] = {}
    for m in _PARAM.finditer(value[len(head):]):
        raw = m.group(2).strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = _QUOTED_PAIR.sub(r"\1", raw[1:-1])
        params.setdefault(m.group(1).lower(), raw)
    return head.strip().lower(), params


def _decode(raw: bytes, cap: int) -> str:
    """UTF-8 (errors replaced) of at most `cap` bytes, never ending in half a character."""
    if len(raw) <= cap:
        return raw.decode("utf-8", "replace")
    # Not final: an incomplete sequence at the cut is dropped, not replaced.
    return codecs.getincrementaldecoder("utf-8")("replace").decode(raw[:cap], final=False)


class _Fields:
    """The captured values and the limits on them, shared by both parsers."""

    def __init__(self, wanted: frozenset[str], max_field: int, max_total: int) -> None:
        self.wanted = wanted
        self.max_field = max_field
        self.room = max_total
        self.values: dict[str, str] = {}

    def wants(self, name: str) -> bool:
        return name in self.wanted and name not in self.values and self.room > 0

    def add(self, name: str, raw: bytes) -> None:
        if not self.wants(name):
            return
        cap = min(self.max_field, self.room)
        self.values[name] = _decode(raw, cap)
        self.room -= min(len(raw), cap)

    @property
    def complete(self) -> bool:
        return self.room <= 0 or len(self.values) == len(self.wanted)


class _Urlencoded:
    """name=value&name=value, parsed incrementally with bounded buffers."""

    def __init__(self, fields: _Fields) -> None:
        self.f = fields
        # Percent-encoding at most triples a byte: longer raw names cannot be wanted.
        self.max_name = 3 * max(len(w.encode()) for w in fields.wanted)
        # Raw bytes enough for max_field decoded bytes, plus one to see a value was cut.
        self.max_value = 3 * (fields.max_field + 1)
        self.name = bytearray()
        self.name_too_long = False
        self.in_value = False
        self.capture: str | None = None
        self.value = bytearray()

    def feed(self, data: bytes) -> None:
        pos, n = 0, len(data)
        while pos < n:
            if self.in_value:
                end = data.find(b"&", pos)
                stop = n if end < 0 else end
                if self.capture is not None and len(self.value) < self.max_value:
                    self.value += data[pos:min(stop, pos + self.max_value - len(self.value))]
                if end < 0:
                    return
                self._end_pair()
                pos = end + 1
            else:
                m = _URL_SEPARATOR.search(data, pos)
                stop = n if m is None else m.start()
                if not self.name_too_long:
                    if len(self.name) + stop - pos > self.max_name:
                        self.name_too_long = True
                    else:
                        self.name += data[pos:stop]
                if m is None:
                    return
                if data[stop] == 0x3D:  # "=": the value follows
                    self.in_value = True
                    if not self.name_too_long:
                        name = self._unquote(self.name)
                        self.capture = name if self.f.wants(name) else None
                else:                    # "&": a name without a value
                    self._reset()
                pos = stop + 1

    def pending(self) -> tuple[str, bytes] | None:
        if self.in_value and self.capture is not None:
            return self.capture, self._unquote_bytes(self.value)
        return None

    def _end_pair(self) -> None:
        if self.capture is not None:
            self.f.add(self.capture, self._unquote_bytes(self.value))
        self._reset()

    def _reset(self) -> None:
        self.name.clear()
        self.value.clear()
        self.name_too_long = self.in_value = False
        self.capture = None

    @staticmethod
    def _unquote_bytes(raw: bytes | bytearray) -> bytes:
        return unquote_to_bytes(bytes(raw).replace(b"+", b" "))

    def _unquote(self, raw: bytes | bytearray) -> str:
        return self._unquote_bytes(raw).decode("utf-8", "replace")


class _State(Enum):
    PREAMBLE = auto()       # before the first boundary
    AFTER_DELIMITER = auto()  # "--" (the end) or padding + CRLF (a part follows)
    HEADERS = auto()
    BODY = auto()
    END = auto()


class _Multipart:
    """A boundary scanner that holds at most a delimiter's length of the stream."""

    def __init__(self, fields: _Fields, boundary: bytes) -> None:
        self.f = fields
        self.delim = b"\r\n--" + boundary
        self.keep = len(self.delim) - 1
        self.buf = b"\r\n"   # so the first boundary reads like every later one
        self.state = _State.PREAMBLE
        self.capture: str | None = None
        self.value = bytearray()

    def feed(self, chunk: bytes) -> None:
        data = self.buf + chunk if self.buf else chunk
        self.buf = b""
        pos = 0
        while self.state is not _State.END:
            if self.state in (_State.PREAMBLE, _State.BODY):
                idx = data.find(self.delim, pos)
                end = idx if idx >= 0 else max(pos, len(data) - self.keep)
                if self.state is _State.BODY:
                    self._take(data, pos, end)
                if idx < 0:
                    self.buf = data[end:]
                    return
                if self.state is _State.BODY:
                    self._end_part()
                pos = idx + len(self.delim)
                self.state = _State.AFTER_DELIMITER
            elif self.state is _State.AFTER_DELIMITER:
                if len(data) - pos < 2:
                    self.buf = data[pos:]
                    return
                if data.startswith(b"--", pos):
                    self.state = _State.END
                    return
                window = pos + MAX_DELIMITER_PADDING + 2
                eol = data.find(b"\r\n", pos, window)
                if eol < 0:
                    if len(data) >= window:
                        raise Malformed("no line end after a boundary")
                    self.buf = data[pos:]
                    return
                if data[pos:eol].strip(b" \t"):
                    raise Malformed("text after a boundary")
                pos = eol + 2
                self.state = _State.HEADERS
            else:  # HEADERS
                if len(data) - pos < 2:
                    self.buf = data[pos:]
                    return
                if data.startswith(b"\r\n", pos):       # a part without headers
                    head, pos = b"", pos + 2
                else:
                    window = pos + MAX_PART_HEADER_BYTES + 4
                    idx = data.find(b"\r\n\r\n", pos, window)
                    if idx < 0:
                        if len(data) >= window:
                            raise Malformed("part headers too large")
                        self.buf = data[pos:]
                        return
                    head, pos = data[pos:idx], idx + 4
                self.capture = self._wanted_name(head)
                self.state = _State.BODY

    def _wanted_name(self, head: bytes) -> str | None:
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-disposition":
                _, params = parse_params(value.decode("utf-8", "replace"))
                field = params.get("name")
                is_file = "filename" in params or "filename*" in params
                if field is not None and not is_file and self.f.wants(field):
                    return field
                return None
        return None

    def _take(self, data: bytes, start: int, end: int) -> None:
        if self.capture is None:
            return
        room = self.f.max_field + 1 - len(self.value)   # one more: was the value cut?
        if room > 0 and end > start:
            self.value += data[start:min(end, start + room)]

    def _end_part(self) -> None:
        if self.capture is not None:
            self.f.add(self.capture, bytes(self.value))
        self.capture = None
        self.value.clear()
        if self.f.complete:
            self.state = _State.END


class FormSniffer:
    """Watches a request body go by and keeps the wanted small text fields."""

    def __init__(
        self,
        content_type: str | None,
        wanted: frozenset[str],
        max_field_bytes: int = MAX_FIELD_BYTES,
        max_total: int = MAX_TOTAL_BYTES,
    ) -> None:
        self._f = _Fields(frozenset(w for w in wanted if w), max_field_bytes, max_total)
        self._parser: _Urlencoded | _Multipart | None = None
        if not self._f.wanted or not content_type:
            return
        media, params = parse_params(content_type)
        if media == URLENCODED:
            self._parser = _Urlencoded(self._f)
        elif media == MULTIPART:
            boundary = params.get("boundary", "")
            if 0 < len(boundary) <= MAX_BOUNDARY_LEN and not any(c in boundary for c in "\r\n"):
                self._parser = _Multipart(self._f, boundary.encode("utf-8", "replace"))

    @property
    def active(self) -> bool:
        """False once nothing more can be learnt: the caller may stop feeding."""
        parser = self._parser
        if parser is None or self._f.complete:
            return False
        return not (isinstance(parser, _Multipart) and parser.state is _State.END)

    def feed(self, chunk: bytes) -> None:
        parser = self._parser
        if parser is None or not chunk or not self.active:
            return
        try:
            parser.feed(bytes(chunk))
        except Malformed as e:  # not the form its Content-Type promised: stop quietly
            log.debug("form sniffing stopped: %s", e)
            self._parser = None
        except Exception:  # never into the request path; the body still goes upstream
            log.warning("form sniffing failed", exc_info=True)
            self._parser = None

    @property
    def fields(self) -> dict[str, str]:
        values = dict(self._f.values)
        if isinstance(self._parser, _Urlencoded):
            pending = self._parser.pending()
            if pending is not None and self._f.wants(pending[0]):
                name, raw = pending
                values[name] = _decode(raw, min(self._f.max_field, self._f.room))
        return values
