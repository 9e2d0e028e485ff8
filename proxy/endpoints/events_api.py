"""`POST {prefix}/api/events`: server-side events (a hire) from the ATS (SPEC §5).

    Authorization: Bearer <api.token>
    {"event": "Hire", "linksClickedId": "…" | "click_ids": {"tlr_sid": "…"},
     "jobName"?, "job_id"?, "event_id"?, "event_time"?, "fields"?: {str: str}}

→ 202 {"event_id"}; 401 without a valid token (`WWW-Authenticate: Bearer`); 400
{"error"} for bad JSON, a wrong type, an unknown key, a missing event, or an
event name the rules file would refuse, an event_id that is not 1 to 64 printable
ASCII characters without spaces, an event_time older than 7 days or more than a
minute ahead; 404 {"error": "unknown
visitor"}; 404 as well when no `api.token` is configured (the API is off and does not
advertise itself). Idempotent by event_id: the outbox remembers it, so a repeat is
202 with the same id and nothing is sent twice.
Consent: marketing sinks get the event when consent is not required, or when the
journey records that the visitor gave it (`journey.consent`).
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import orjson
from aiohttp import hdrs, web

from proxy.attribution.journey_rows import Journey
from proxy.config.model import Config, Sink
from proxy.config.rules_section import event_name
from proxy.conversions.events import Event, new_event_id
from proxy.conversions.outbox import MAX_EVENT_AGE, Outbox
from proxy.ops.live import Live
from proxy.ops.views import fired_view
from proxy.ports import JourneyLookup

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
FUTURE_SKEW = 60.0          # seconds an event_time may lie ahead of our clock
MAX_STR = 1024
# Ours are 32 hex digits (new_event_id); an ATS's own ids (UUIDs, "ats-hire-77") fit too.
EVENT_ID = re.compile(r"[!-~]{1,64}")
ALLOWED_KEYS = frozenset({"event", "linksClickedId", "click_ids", "jobName", "job_id",
                          "event_id", "event_time", "fields"})


class ClickId(Protocol):
    value: str
    seen_at: float          # unix seconds


class BadRequest(ValueError):
    pass


def _json_error(status: int, reason: str, **kw: Any) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"error": reason}),
                        content_type="application/json", **kw)


def authorized(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def _string(d: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    v = d.get(key)
    if v is None:
        if required:
            raise BadRequest(f"missing {key}")
        return None
    if not isinstance(v, str) or not v.strip() or len(v) > MAX_STR:
        raise BadRequest(f"{key} must be a non-empty string of at most {MAX_STR} characters")
    return v


def _str_map(d: Mapping[str, Any], key: str) -> dict[str, str]:
    v = d.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict) or not all(
            isinstance(k, str) and isinstance(x, str) and len(x) <= MAX_STR for k, x in v.items()):
        raise BadRequest(f"{key} must be an object of strings")
    return v


def parse_body(raw: bytes, now: float) -> dict[str, Any]:
    """Validate the request body: pure, raises BadRequest with the reason."""
    try:
        d = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"invalid JSON: {e}") from None
    if not isinstance(d, dict):
        raise BadRequest("body must be a JSON object")
    unknown = sorted(set(d) - ALLOWED_KEYS)
    if unknown:
        raise BadRequest(f"unknown key {unknown[0]!r}; allowed: {', '.join(sorted(ALLOWED_KEYS))}")
    out: dict[str, Any] = {k: _string(d, k) for k in ("linksClickedId", "jobName", "job_id",
                                                      "event_id")}
    out["event"] = _string(d, "event", required=True)
    problem = event_name(out["event"])
    if problem:
        raise BadRequest(f"event: {problem}")
    if out["event_id"] is not None and not EVENT_ID.fullmatch(out["event_id"]):
        raise BadRequest("event_id must be 1 to 64 printable ASCII characters without spaces")
    out["click_ids"] = _str_map(d, "click_ids")
    out["fields"] = _str_map(d, "fields")
    if not out["linksClickedId"] and not out["click_ids"]:
        raise BadRequest("linksClickedId or click_ids is required")
    t = d.get("event_time")
    if t is None:
        out["event_time"] = now
    elif isinstance(t, bool) or not isinstance(t, (int, float)):
        raise BadRequest("event_time must be unix seconds (a number)")
    elif t < now - MAX_EVENT_AGE:
        raise BadRequest("event_time is older than 7 days")
    elif t > now + FUTURE_SKEW:
        raise BadRequest("event_time is in the future")
    else:
        out["event_time"] = float(t)
    return out


async def resolve(journeys: JourneyLookup, body: Mapping[str, Any]) -> Journey | None:
    if body["linksClickedId"]:
        j = await journeys.get(body["linksClickedId"])
        if j is not None:
            return j
    for param, value in body["click_ids"].items():
        j = await journeys.find_by_click(param, value)
        if j is not None:
            return j
    return None


def api_sinks(config: Config) -> list[Sink]:
    """`[api] send_to`, or every sink when it is not set."""
    names = config.api.send_to
    if names is None:
        return list(config.sinks.values())
    return [config.sinks[n] for n in names if n in config.sinks]


def build_event(body: Mapping[str, Any], journey: Journey) -> Event:
    clicks = journey.click_ids
    fb = clicks.get("fbclid")
    return Event(
        name=body["event"],
        event_id=body["event_id"] or new_event_id(),
        event_time=body["event_time"],
        links_clicked_id=journey.links_clicked_id,
        click_ids={p: c.value for p, c in clicks.items()},
        job_id=body["job_id"],
        job_name=body["jobName"],
        fbc=getattr(journey, "fbc", None)
        or (f"fb.1.{int(fb.seen_at * 1000)}.{fb.value}" if fb else None),
        fbp=getattr(journey, "fbp", None),
        fields=body["fields"],
        preview=getattr(journey, "preview", False),     # a tester's hire is a test too
    )


def events_api_handler(config: Callable[[], Config], outbox: Outbox, journeys: JourneyLookup,
                       *, clock: Callable[[], float] = time.time, live: Live | None = None,
                       ) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    """The handler; `config()` returns the rules in force (they may be reloaded);
    `live` gets each new event for the operators' stream."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        cfg = config()
        token = cfg.api.token
        if not token:
            return _json_error(404, "events API disabled: no api.token configured")
        if not authorized(request.headers.get(hdrs.AUTHORIZATION), token):
            return _json_error(401, "a valid bearer token is required",
                               headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="careers-edge"'})
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _json_error(413, f"body larger than {MAX_BODY} bytes")
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            return _json_error(413, f"body larger than {MAX_BODY} bytes")
        try:
            body = parse_body(raw, clock())
        except BadRequest as e:
            return _json_error(400, str(e))
        journey = await resolve(journeys, body)
        if journey is None:
            return _json_error(404, "unknown visitor")
        event = build_event(body, journey)
        consent = getattr(journey, "consent", None) is True or not cfg.consent.required
        try:
            result = await outbox.submit(event, api_sinks(cfg), consent=consent)
        except Exception:
            log.exception("events API: enqueue failed")
            return _json_error(503, "could not store the event; retry")
        if live is not None and live.subscribers and not result.duplicate:
            live.publish("conversion", fired_view(event, result.outcomes))
        return web.Response(status=202, body=orjson.dumps({"event_id": result.event_id}),
                            content_type="application/json")

    return handle
