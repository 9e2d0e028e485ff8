"""The visitor's request body on its way upstream: buffered or streamed, bounded, timed.

With `request_buffering` (the default, as nginx's `proxy_request_buffering on`) the
whole body is read before an upstream connection is taken, so a slow client never
holds one: up to `MEMORY_LIMIT` in memory, beyond that in an unnamed temporary file
(in $TMPDIR) that is gone once `RequestBody.close()` runs, on every path. Without
it the body streams upstream as it arrives. Either way a body larger than `max_body`
is refused (by its Content-Length up front, else when the count passes it), and
`body_timeout` seconds without a byte end the request.

When a rule wants form fields or the JSON body, a sniffer sees each chunk once as it
is read; it never holds or alters one, so a 100 MB resume upload costs a few bytes of
state. A JSON body is copied only up to its first 256 KiB.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO

from aiohttp import hdrs, web

from proxy.detect.forms import FormSniffer
from proxy.detect.json_body import JsonCollector
from proxy.detect.jsonexpr import REQUEST_LIMIT, JsonDoc

MEMORY_LIMIT = 1024 * 1024      # bytes of a buffered body kept in memory
FILE_CHUNK = 256 * 1024         # bytes per read of a buffered body from its file
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class RequestSniffer:
    """What the rules read from a request body: small form fields, a JSON document."""

    __slots__ = ("_form", "_json")

    def __init__(self, form: FormSniffer | None, json: JsonCollector | None) -> None:
        self._form = form
        self._json = json

    def feed(self, chunk: bytes) -> None:
        if self._form is not None:
            self._form.feed(chunk)
        if self._json is not None and self._json.active:
            self._json.feed(chunk)

    @property
    def fields(self) -> dict[str, str]:
        return self._form.fields if self._form is not None else {}

    @property
    def json(self) -> JsonDoc | None:
        """The JSON body as seen so far (call once the upstream has answered)."""
        return self._json.document() if self._json is not None else None


class BodyRefused(Exception):
    """The request body cannot be taken; `status` is the answer."""

    status = 400
    detail = "The request body was incomplete."


class BodyMalformed(BodyRefused):
    """The body's framing is broken (a bad chunk, say): a malformed request."""

    detail = "The request could not be understood."


class BodyTooLarge(BodyRefused):
    status = 413
    detail = "The request body is larger than this site accepts."


class BodyTimeout(BodyRefused):
    status = 408
    detail = "The request body did not arrive in time."


@dataclass(frozen=True, slots=True)
class BodyPolicy:
    buffering: bool = True
    max_body: int = 100 * 1024 * 1024      # 0: no limit
    timeout: float = 60.0                  # seconds without a byte


class RequestBody:
    """What goes upstream: `data` (bytes, a stream, or None) of `length` bytes (None:
    unknown, sent chunked). `close()` releases a temporary file; call it always."""

    __slots__ = ("data", "file", "length")

    def __init__(self, data: bytes | AsyncIterator[bytes] | None, length: int | None,
                 file: IO[bytes] | None = None) -> None:
        self.data = data
        self.length = length
        self.file = file

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


NO_BODY = RequestBody(None, None)


def check_length(request: web.BaseRequest, policy: BodyPolicy) -> None:
    """Refuse up front a body whose Content-Length is over the limit."""
    length = request.content_length
    if policy.max_body and length is not None and length > policy.max_body:
        raise BodyTooLarge()


async def request_body(request: web.BaseRequest, form_fields: frozenset[str],
                       policy: BodyPolicy, *, json: bool = False
                       ) -> tuple[RequestBody, RequestSniffer | None]:
    """The body to forward and the sniffer watching it, for a request that has one
    (`body_exists`: the pipeline asks first, and forwards `NO_BODY` without one, with
    no coroutine). Raises BodyRefused."""
    check_length(request, policy)
    sniffer = None
    if form_fields or json:
        ctype = request.headers.get(hdrs.CONTENT_TYPE, "")
        sniffer = RequestSniffer(
            FormSniffer(ctype, form_fields) if form_fields else None,
            JsonCollector(ctype, request.headers.get(hdrs.CONTENT_ENCODING),
                          request.content_length, REQUEST_LIMIT) if json else None)
    if request.version >= (1, 1) and \
            request.headers.get(hdrs.EXPECT, "").lower() == "100-continue":
        await request.writer.write(CONTINUE)
    chunks = _chunks(request, sniffer, policy)
    if not policy.buffering:
        return RequestBody(chunks, request.content_length), sniffer
    return await _buffer(chunks), sniffer


async def _chunks(request: web.BaseRequest, sniffer: RequestSniffer | None,
                  policy: BodyPolicy) -> AsyncIterator[bytes]:
    content = request.content
    limit = policy.max_body
    seen = 0
    while True:
        try:
            async with asyncio.timeout(policy.timeout):
                chunk = await content.readany()
        except TimeoutError:
            raise BodyTimeout() from None
        except web.RequestPayloadError as exc:
            raise BodyMalformed() from exc
        except ConnectionError as exc:
            raise BodyRefused() from exc    # the visitor went away
        if not chunk:
            return
        seen += len(chunk)
        if limit and seen > limit:
            raise BodyTooLarge()
        if sniffer is not None:
            sniffer.feed(chunk)
        yield chunk


async def _buffer(chunks: AsyncIterator[bytes]) -> RequestBody:
    """Read the whole body: memory up to MEMORY_LIMIT, then an unnamed temporary file."""
    held = bytearray()
    file: IO[bytes] | None = None
    size = 0
    try:
        async for chunk in chunks:
            held += chunk
            size += len(chunk)
            if len(held) >= MEMORY_LIMIT:
                if file is None:
                    file = await asyncio.to_thread(tempfile.TemporaryFile, prefix="careers-edge-")
                await asyncio.to_thread(file.write, held)   # type: ignore[union-attr]
                held.clear()
        if file is None:
            return RequestBody(bytes(held), size)
        if held:
            await asyncio.to_thread(file.write, held)
        await asyncio.to_thread(file.flush)
    except BaseException:
        if file is not None:
            file.close()
        raise
    return RequestBody(_from_file(file, size), size, file)


async def _from_file(file: IO[bytes], size: int) -> AsyncIterator[bytes]:
    fd = file.fileno()
    offset = 0
    while offset < size:
        chunk = await asyncio.to_thread(os.pread, fd, min(FILE_CHUNK, size - offset), offset)
        if not chunk:
            return
        offset += len(chunk)
        yield chunk
