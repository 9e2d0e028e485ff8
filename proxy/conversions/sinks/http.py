"""Templated HTTP requests (Appcast and any network that gives you an endpoint).

Placeholders: `{event}` (after `event_names`), `{event_id}`, `{event_time}` (s),
`{event_time_ms}`, `{linksClickedId}`, `{job_id}`, `{jobName}`, `{url}`,
`{click.PARAM}` and `{field.NAME}` (extracted values). An absent value is empty.
In the URL every value is percent-encoded (`quote(safe='')`) and the URL is sent
exactly as rendered. In the `body`, values are escaped for the body's kind:
JSON-string-escaped when the template starts with `{` or `[` (write `"{jobName}"`
with the quotes), percent-encoded for `application/x-www-form-urlencoded`, raw
otherwise. A `{` not forming a known placeholder is left as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp import hdrs
from yarl import URL

from proxy.config.model import Sink
from proxy.conversions.backoff import Decision, GiveUp
from proxy.conversions.events import Event
from proxy.conversions.sinks.base import IDEMPOTENCY_HEADER, deliver, timeout_for

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_\-]+)?)\}")
SIMPLE = ("event", "event_id", "event_time", "event_time_ms", "linksClickedId", "job_id",
          "jobName", "url")
PREFIXES = ("click.", "field.")
FORM = "application/x-www-form-urlencoded"


def placeholder_errors(template: str) -> list[str]:
    """Unknown `{name}`s in a template, for `careers-edge check`."""
    return [f"unknown placeholder {{{m}}}" for m in PLACEHOLDER.findall(template)
            if m not in SIMPLE and not m.startswith(PREFIXES)]


def values(sink: Sink, event: Event) -> dict[str, str]:
    v = {
        "event": sink.event_name(event.name),
        "event_id": event.event_id,
        "event_time": str(int(event.event_time)),
        "event_time_ms": str(int(event.event_time * 1000)),
        "linksClickedId": event.links_clicked_id or "",
        "job_id": event.job_id or "",
        "jobName": event.job_name or "",
        "url": event.url or "",
    }
    v.update({f"click.{k}": val for k, val in event.click_ids.items()})
    for k, val in event.fields.items():
        v[f"field.{k}"] = val
        v.setdefault(k, val)      # `check` offers extracted names bare, too: {ref}
    return v


def render(template: str, vals: dict[str, str], escape: Callable[[str], str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in vals:
            return escape(vals[name])
        if name in SIMPLE or name.startswith(PREFIXES):
            return ""
        return m.group(0)
    return PLACEHOLDER.sub(sub, template)


def url_escape(s: str) -> str:
    return quote(s, safe="")


def json_escape(s: str) -> str:
    return orjson.dumps(s).decode()[1:-1]


def body_escape(template: str, content_type: str) -> Callable[[str], str]:
    if template.lstrip().startswith(("{", "[")):
        return json_escape
    if content_type.split(";")[0].strip().lower() == FORM:
        return url_escape
    return str


class HttpSink:
    batch_size = 1

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.timeout = timeout_for(sink.timeout)
        self.method = sink.method.upper()

    def build(self, event: Event) -> tuple[URL, dict[str, str], bytes | None]:
        vals = values(self.sink, event)
        url = URL(render(self.sink.url or "", vals, url_escape), encoded=True)
        headers = {IDEMPOTENCY_HEADER: event.event_id, **self.sink.headers}
        data = None
        if self.sink.body is not None:
            ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
            data = render(self.sink.body, vals, body_escape(self.sink.body, ctype)).encode()
            if not ctype:
                json_like = self.sink.body.lstrip().startswith(("{", "["))
                headers[hdrs.CONTENT_TYPE] = "application/json" if json_like else "text/plain"
        return url, headers, data

    async def send(self, session: aiohttp.ClientSession,
                   events: Sequence[Event]) -> list[Decision]:
        out: list[Decision] = []
        for event in events:
            try:
                url, headers, data = self.build(event)
            except ValueError as e:           # a URL the template cannot make
                out.append(GiveUp(f"bad request template: {e}"))
                continue
            out.append(await deliver(session, self.method, url, timeout=self.timeout,
                                     headers=headers, data=data))
        return out
