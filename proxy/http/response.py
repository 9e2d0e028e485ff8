"""The response the proxy streams to the visitor, head and body written by us.

aiohttp's `StreamResponse` adds headers of its own to what it sends (a default
`Content-Type: application/octet-stream`, its `Server` with versions) and sends the
head on its own schedule; a proxy must pass the upstream's headers as they were, and
a page whose body is already here should leave in one send. So `ProxyResponse` has
the part of `StreamResponse`'s interface the pipeline uses (status, reason,
`content_length`, `prepare`, `write`, `write_eof`, `keep_alive`), composes the head
itself from exactly the planned header list plus what the framing needs (no
multidict is filled and asked on the way), and writes head and body through the
request's public `writer` (aiohttp's `AbstractStreamWriter`, which keeps the
connection's flow control and byte count):

- the head goes out at `prepare`, or with the body when `hold_headers` (a body that is
  already here: head and body in one send);
- `Content-Length` when planned; else chunked for HTTP/1.1 and close-delimited for
  HTTP/1.0 (that connection is then not kept alive);
- no body for HEAD, 1xx, 204 and 304 (a HEAD keeps its planned `Content-Length`);
- `Date` when the upstream sent none; `Connection: close` (HTTP/1.1) or `keep-alive`
  (HTTP/1.0) as aiohttp would; never a `Content-Type` or `Server` not planned.

Our own answers (error pages, endpoints) stay aiohttp `web.Response`s; `name_server`
gives them our version-less `Server` before they are prepared.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from email.utils import formatdate
from http import HTTPStatus

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion, HttpVersion10, HttpVersion11

from proxy.http.headers import SERVER

# How the body is framed on the wire.
NO_BODY, LENGTH, CHUNKED, UNTIL_CLOSE = range(4)
LAST_CHUNK = b"0\r\n\r\n"
REASONS = {s.value: s.phrase for s in HTTPStatus}
SET_COOKIE_LINE = "Set-Cookie: "
# Control characters a header line may not carry (HTAB is allowed): a value with CR or
# LF would split the head (response splitting).
CONTROL = bytes(range(0x09)) + bytes(range(0x0a, 0x20)) + b"\x7f"


class DateCache:
    """The `Date` header's value, formatted once a second."""

    __slots__ = ("second", "value")

    def __init__(self) -> None:
        self.second = -1
        self.value = ""

    def __call__(self) -> str:
        now = int(time.time())
        if now != self.second:
            self.second, self.value = now, formatdate(now, usegmt=True)
        return self.value


http_date = DateCache()


def encode_lines(lines: list[str]) -> bytes:
    """Head lines (the status line first) as one bytes object, ending in the blank line.
    Header text is Latin-1 (as it was decoded from the upstream's bytes), so those
    bytes go out as they came; text outside Latin-1 (none of ours) goes as UTF-8."""
    text = "\r\n".join(lines)
    try:
        head = text.encode("latin-1")
    except UnicodeEncodeError:
        head = text.encode("utf-8")
    # The only control bytes are the CR LFs put between the lines: a copy without them
    # is a memory pass, where `str.isprintable` asks the Unicode tables per character.
    if len(head.translate(None, CONTROL)) != len(head) - 2 * len(lines) + 2:
        raise ValueError("a control character in the response head")
    return head + b"\r\n\r\n"


_STATUS_LINES: dict[tuple[HttpVersion, int, str], str] = {}


def status_line(version: HttpVersion, status: int, reason: str) -> str:
    key = (version, status, reason)
    line = _STATUS_LINES.get(key)
    if line is None:
        line = f"HTTP/{version.major}.{version.minor} {status} {reason}"
        if len(_STATUS_LINES) < 256 and len(reason) <= 64:    # bounded: reasons are the upstream's
            _STATUS_LINES[key] = line
    return line


def has_date(headers: list[tuple[str, str]]) -> bool:
    for name, _ in headers:
        if len(name) == 4 and name.lower() == "date":
            return True
    return False


def must_be_empty(method: str, status: int) -> bool:
    return status < 200 or status in (204, 304) or method == "HEAD" \
        or (method == "CONNECT" and status < 300)


class ProxyResponse:
    """A response whose head and framing the proxy writes; see the module's notes.

    Not a `StreamResponse`: its head is exactly the planned header list (`headers`,
    no framing header among them), then its `Set-Cookie`s, then the framing, so it
    keeps no case-insensitive multidict to fill and ask. `EdgeServer.serve` prepares and
    finishes it and gives aiohttp's connection handler a finished stand-in."""

    __slots__ = ("content_length", "finished", "framing", "headers", "held_head", "hold",
                 "keep", "reason", "sent", "set_cookies", "status", "writer")

    def __init__(self, *, status: int, reason: str | None,
                 headers: list[tuple[str, str]], set_cookies: Sequence[str] = (),
                 content_length: int | None = None, hold_headers: bool = False) -> None:
        self.status = status
        self.reason = reason if reason is not None else REASONS.get(status, "")
        self.headers = headers
        self.set_cookies = set_cookies          # after the headers, in this order
        self.content_length = content_length
        self.hold = hold_headers
        self.writer: AbstractStreamWriter | None = None
        self.framing = NO_BODY
        self.held_head: bytes | None = None    # the head, waiting for the body
        self.keep: bool | None = None          # False once closed by force_close
        self.finished = False
        self.sent = 0                          # body bytes written, without framing

    @property
    def prepared(self) -> bool:
        return self.writer is not None or self.finished

    @property
    def keep_alive(self) -> bool | None:
        return self.keep

    def force_close(self) -> None:
        self.keep = False

    @property
    def body_length(self) -> int:
        return self.sent

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.writer is not None or self.finished:
            return self.writer
        version = request.version
        status = self.status
        method = request.method
        keep = self.keep is not False and request.keep_alive
        lines = [status_line(version, status, self.reason)]
        lines += map(": ".join, self.headers)
        lines += map(SET_COOKIE_LINE.__add__, self.set_cookies)
        length = self.content_length
        if must_be_empty(method, status):
            self.framing = NO_BODY
            if length is not None and method == "HEAD" and status >= 200 \
                    and status not in (204, 304):
                lines.append(f"Content-Length: {length}")    # a HEAD keeps its length
        elif length is not None:
            self.framing = LENGTH
            lines.append(f"Content-Length: {length}")
        elif version >= HttpVersion11:
            self.framing = CHUNKED
            lines.append("Transfer-Encoding: chunked")
        else:
            self.framing = UNTIL_CLOSE         # HTTP/1.0: the end of the body is the close
            keep = False
        if not has_date(self.headers):
            lines.append("Date: " + http_date())
        if keep:
            if version == HttpVersion10:
                lines.append("Connection: keep-alive")
        elif version == HttpVersion11:
            lines.append("Connection: close")
        self.keep = keep
        head = encode_lines(lines)
        self.writer = writer = request.writer
        if self.hold:
            self.held_head = head
        else:
            await writer.write(head)
        return writer

    def framed(self, data: bytes) -> list[bytes]:
        """`data` as it goes on the wire, after the head if that is still held."""
        out = [] if self.held_head is None else [self.held_head]
        self.held_head = None
        if data and self.framing != NO_BODY:
            self.sent += len(data)
            if self.framing == CHUNKED:
                out += (b"%x\r\n" % len(data), data, b"\r\n")
            else:
                out.append(data)
        return out

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        writer = self.writer
        if writer is None:
            raise RuntimeError("write() before prepare() or after write_eof()")
        if not data:
            return                  # an empty chunk would end a chunked body
        out = self.framed(bytes(data))
        if out:
            await writer.write(out[0] if len(out) == 1 else b"".join(out))

    async def write_eof(self, data: bytes | bytearray | memoryview = b"") -> None:
        if self.finished:
            return
        writer = self.writer
        if writer is None:
            raise RuntimeError("write_eof() before prepare()")
        head = self.held_head
        if head is not None and self.framing == LENGTH and data.__class__ is bytes:
            # The usual page: its held head and its whole body, in one send.
            self.held_head = None
            self.sent += len(data)
            self.finished = True
            self.writer = None
            await writer.write_eof(head + data)
            return
        out = self.framed(bytes(data))
        if self.framing == CHUNKED:
            out.append(LAST_CHUNK)
        self.finished = True
        self.writer = None
        await writer.write_eof(out[0] if len(out) == 1 else b"".join(out))

    def __repr__(self) -> str:
        state = "eof" if self.finished else "prepared" if self.writer else "not prepared"
        return f"<ProxyResponse {self.status} {self.reason} {state}>"


# What a proxied response or one of our own answers is, to the code that counts and
# logs it: aiohttp's for our own pages, ours for the upstream's.
Answer = web.StreamResponse | ProxyResponse


class Finished(web.StreamResponse):
    """The stand-in aiohttp's connection handler gets back for a `ProxyResponse`,
    which `EdgeServer.serve` has written already: nothing left to prepare or send,
    and whether the connection stays open. One per connection, reused."""

    __slots__ = ("keep",)

    def __init__(self) -> None:
        super().__init__()
        self.keep = False

    def done(self, status: int, keep: bool) -> Finished:
        if status != self.status:       # a connection's responses mostly share one
            self.set_status(status)
        self.keep = keep
        return self

    @property
    def keep_alive(self) -> bool | None:
        return self.keep

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


async def written(request: web.BaseRequest, resp: ProxyResponse,
                  stand_in: Finished | None = None) -> Finished:
    """`resp` prepared and finished, and its stand-in for aiohttp (a handler must
    answer with a `StreamResponse`): `stand_in` (a connection's own) or a new one."""
    if resp.finished:               # the pipeline wrote it to its end (the usual case)
        return (stand_in or Finished()).done(resp.status, bool(resp.keep))
    keep = False
    try:
        await resp.prepare(request)
        await resp.write_eof()
        keep = bool(resp.keep_alive)
    except ConnectionError:
        pass                        # the visitor went away
    return (stand_in or Finished()).done(resp.status, keep)


def name_server(response: Answer) -> None:
    """Our own answers name the proxy, without versions (aiohttp would name itself);
    a proxied response keeps the upstream's `Server`, or none."""
    if not isinstance(response, ProxyResponse) and not response.prepared:
        response.headers[hdrs.SERVER] = SERVER


async def on_response_prepare(_request: web.Request, response: web.StreamResponse) -> None:
    """`name_server` as the application's `on_response_prepare` signal (under a plain
    `web.AppRunner`, which sends it for every response aiohttp prepares)."""
    if not isinstance(response, ProxyResponse):
        response.headers[hdrs.SERVER] = SERVER
