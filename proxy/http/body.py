"""The visitor's request body, streamed to the upstream as it arrives.

When a rule wants form fields, a sniffer looks at each chunk on its way through;
it never holds or alters a chunk, so a 100 MB resume upload stays a stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import hdrs, web

from proxy.detect.forms import FormSniffer

CHUNK = 64 * 1024


async def _stream(request: web.BaseRequest, sniffer: FormSniffer | None) -> AsyncIterator[bytes]:
    content = request.content
    while True:
        chunk = await content.readany()
        if not chunk:
            return
        if sniffer is not None:
            sniffer.feed(chunk)
        yield chunk


def request_body(request: web.BaseRequest, form_fields: frozenset[str]
                 ) -> tuple[AsyncIterator[bytes] | None, FormSniffer | None]:
    if not request.body_exists:
        return None, None
    sniffer = None
    if form_fields:
        sniffer = FormSniffer(request.headers.get(hdrs.CONTENT_TYPE, ""), form_fields)
    return _stream(request, sniffer), sniffer
