"""The visitor's request body, streamed to the upstream as it arrives.

When a rule wants form fields or the JSON body, a sniffer looks at each chunk on
its way through; it never holds or alters a chunk, so a 100 MB resume upload
stays a stream. A JSON body is copied only up to its first 256 KiB.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import hdrs, web

from proxy.detect.forms import FormSniffer
from proxy.detect.json_body import JsonCollector
from proxy.detect.jsonexpr import REQUEST_LIMIT, JsonDoc

CHUNK = 64 * 1024


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


async def _stream(request: web.BaseRequest,
                  sniffer: RequestSniffer | None) -> AsyncIterator[bytes]:
    content = request.content
    while True:
        chunk = await content.readany()
        if not chunk:
            return
        if sniffer is not None:
            sniffer.feed(chunk)
        yield chunk


def request_body(request: web.BaseRequest, form_fields: frozenset[str], json: bool = False,
                 ) -> tuple[AsyncIterator[bytes] | None, RequestSniffer | None]:
    if not request.body_exists:
        return None, None
    sniffer = None
    if form_fields or json:
        ctype = request.headers.get(hdrs.CONTENT_TYPE, "")
        sniffer = RequestSniffer(
            FormSniffer(ctype, form_fields) if form_fields else None,
            JsonCollector(ctype, request.headers.get(hdrs.CONTENT_ENCODING),
                          request.content_length, REQUEST_LIMIT) if json else None)
    return _stream(request, sniffer), sniffer
