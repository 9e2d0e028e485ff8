"""Google Ads offline click conversions, uploaded with partial failure:
`POST {api}/{version}/customers/{customer_id}:uploadClickConversions`.

Each conversion carries exactly one click id (`gclid`, else `gbraid`, else
`wbraid`), the conversion action's resource name (`conversion_action`, or per event
in `event_names`; a bare id becomes `customers/{customer_id}/conversionActions/{id}`),
`conversionDateTime` as "yyyy-mm-dd hh:mm:ss+hh:mm" in `time_zone`, the event id as
`orderId` (Google's deduplication key, so a retried upload is not counted twice) and,
when the visitor was asked, Consent Mode v2 `consent` from `Event.consent_mode` (under
TCF `adUserData` and `adPersonalization` may differ). Fields are in the REST
interface's JSON spelling (lowerCamelCase).

Requests are sent with `partialFailure: true` (as Google asks), up to 2,000
conversions a request: a 200 may still reject some of them. Those named in
`partialFailureError` (by `conversions[i]`) are given up with Google's reason, or
retried when the error is Google's own (internal, quota); a conversion already
uploaded counts as sent; the rest are sent. Auth is an OAuth refresh token plus the
`developer-token` header (and `login-customer-id` when going through a manager).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import orjson
from aiohttp import hdrs

from proxy.config.model import Sink
from proxy.config.networks import GOOGLE_ADS_TOKEN_URL, IMPLICIT_ANY
from proxy.conversions.backoff import Decision, GiveUp, Retry, Sent, truncate_body
from proxy.conversions.events import Event
from proxy.conversions.sinks.base import (
    REPORT_LIMIT,
    Prepared,
    batch_decisions,
    bearer,
    in_batches,
    timeout_for,
)
from proxy.conversions.sinks.oauth import TokenSource, authorized

DEFAULT_VERSION = "v25"
CLICK_PARAMS = IMPLICIT_ANY["google_ads"]
# Google's consent field <- the Event.consent_mode key it is read from.
CONSENT_FIELDS = (("adUserData", "ad_user_data"), ("adPersonalization", "ad_personalization"))
MAX_BATCH = 2000
DEVELOPER_TOKEN = "developer-token"
LOGIN_CUSTOMER_ID = "login-customer-id"
# Errors that are Google's, not the conversion's: the same upload may pass later.
TRANSIENT_ERRORS = frozenset({"internalError", "quotaError", "databaseError"})
ALREADY_UPLOADED = "CLICK_CONVERSION_ALREADY_EXISTS"


def resource_name(sink: Sink, action: str) -> str:
    return f"customers/{sink.customer_id}/conversionActions/{action}" if action.isdigit() \
        else action


def conversion_action(sink: Sink, event: Event) -> str | None:
    action = sink.event_names.get(event.name) or sink.conversion_action
    return resource_name(sink, action) if action else None


def date_time(when: float, zone: str) -> str:
    """"yyyy-mm-dd hh:mm:ss+|-hh:mm", the format Google Ads asks for. An offset that is
    not whole minutes (historical local mean times) cannot be written so: UTC then."""
    dt = datetime.fromtimestamp(int(when), ZoneInfo(zone))
    seconds = int(dt.utcoffset().total_seconds())   # type: ignore[union-attr]
    if seconds % 60:
        dt, seconds = dt.astimezone(UTC), 0
    offset = seconds // 60
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset), 60)
    return f"{dt:%Y-%m-%d %H:%M:%S}{sign}{hours:02d}:{minutes:02d}"


def click(event: Event) -> tuple[str, str] | None:
    return next(((p, v) for p in CLICK_PARAMS if (v := event.click_ids.get(p))), None)


def conversion(sink: Sink, event: Event) -> dict[str, Any]:
    param, value = click(event) or ("gclid", "")
    out: dict[str, Any] = {
        param: value,
        "conversionAction": conversion_action(sink, event),
        "conversionDateTime": date_time(event.event_time, sink.time_zone),
        "orderId": event.event_id,
    }
    consent = {field: v for field, key in CONSENT_FIELDS
               if (v := event.consent_mode.get(key))}
    if consent:
        out["consent"] = consent
    return out


def token_source(sink: Sink) -> TokenSource:
    form = {"grant_type": "refresh_token", "client_id": sink.client_id or "",
            "client_secret": sink.client_secret or "",
            "refresh_token": sink.refresh_token or ""}
    return TokenSource(sink.token_url or GOOGLE_ADS_TOKEN_URL, form, timeout_for(sink.timeout))


def per_conversion(body: bytes, count: int) -> list[Decision]:
    """Decisions for a 200's conversions, from `partialFailureError` and `results`.
    Any shape is read without a crash: what cannot be read is not counted as sent."""
    try:
        doc = _obj(orjson.loads(body)) if body else {}
    except ValueError:
        return [GiveUp("Google Ads answered 200 without JSON", truncate_body(body))] * count
    failure = doc.get("partialFailureError")
    if not failure:
        return [Sent()] * count
    out: list[Decision | None] = [None] * count
    for detail in _list(_obj(failure).get("details")):
        for error in _list(_obj(detail).get("errors")):
            i = _index(_obj(error))
            if i is not None and 0 <= i < count and out[i] is None:
                out[i] = _decision(_obj(error))
    results = _list(doc.get("results"))
    fallback = GiveUp(f"Google Ads: {_obj(failure).get('message', 'rejected')}"[:500],
                      truncate_body(body))
    for i in range(count):
        if out[i] is None:
            done = i < len(results) and any(_obj(results[i]).get(p) for p in CLICK_PARAMS)
            out[i] = Sent() if done else fallback
    return [d for d in out if d is not None]


def _obj(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _index(error: dict[str, Any]) -> int | None:
    for element in _list(_obj(error.get("location")).get("fieldPathElements")):
        if _obj(element).get("fieldName") == "conversions":
            index = element.get("index", 0)     # proto JSON may leave out a 0
            return index if isinstance(index, int) and not isinstance(index, bool) else None
    return None


def _decision(error: dict[str, Any]) -> Decision:
    kind, reason = next(iter(_obj(error.get("errorCode")).items()), ("error", "UNKNOWN"))
    text = f"Google Ads {kind} {reason}: {error.get('message', '')}".strip()[:500]
    if reason == ALREADY_UPLOADED:
        return Sent()
    if kind in TRANSIENT_ERRORS:
        return Retry(text)
    return GiveUp(text, truncate_body(orjson.dumps(error)))


class GoogleAdsSink:
    batch_size = MAX_BATCH

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        version = sink.api_version or DEFAULT_VERSION
        self.url = (f"{sink.api.rstrip('/')}/{version}/customers/{sink.customer_id}"
                    ":uploadClickConversions")
        self.timeout = timeout_for(sink.timeout)
        self.tokens = token_source(sink)

    def prepare(self, events: Sequence[Event], token: str) -> Prepared:
        headers = {hdrs.AUTHORIZATION: bearer(token), hdrs.CONTENT_TYPE: "application/json",
                   DEVELOPER_TOKEN: self.sink.developer_token or ""}
        if self.sink.login_customer_id:
            headers[LOGIN_CUSTOMER_ID] = self.sink.login_customer_id
        body = {"conversions": [conversion(self.sink, e) for e in events],
                "partialFailure": True}
        return Prepared("POST", self.url, headers, orjson.dumps(body))

    def unsendable(self, event: Event) -> GiveUp | None:
        if click(event) is None:
            return GiveUp("no gclid, gbraid or wbraid click id")
        if conversion_action(self.sink, event) is None:
            return GiveUp(f"no conversion action for {event.name}: set conversion_action "
                          "or event_names")
        return None

    async def send(self, session: aiohttp.ClientSession,
                   events: Sequence[Event]) -> list[Decision]:
        async def chunk(batch: list[Event]) -> list[Decision]:
            answer = await authorized(session, self.tokens,
                                      lambda t: self.prepare(batch, t).send(
                                          session, self.timeout, REPORT_LIMIT))
            return batch_decisions(answer, len(batch), per_conversion)
        return await in_batches(events, MAX_BATCH, self.unsendable, chunk)
