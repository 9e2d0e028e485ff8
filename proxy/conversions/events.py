"""The conversion event: what a rule or the events API fired, as one frozen value.

An `Event` is written to the outbox as JSON (orjson) and read back by the dispatcher;
`from_json` ignores keys it does not know so rows written by a newer version still load.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.random_ids import HexIds

DEFAULT_DEDUPE_HOURS = 720.0


_event_ids = HexIds(uuid4=True)


def new_event_id() -> str:
    """A random (version 4) UUID as 32 hex digits, without building a `uuid.UUID`
    (cut from a 4 KB draw of the OS CSPRNG: a page mints one per response)."""
    return _event_ids()


@dataclass(frozen=True)
class Event:
    name: str                                  # our name: ApplicationCompleted, Hire, ...
    event_id: str = field(default_factory=new_event_id)
    event_time: float = field(default_factory=time.time)    # unix seconds
    links_clicked_id: str | None = None
    click_ids: Mapping[str, str] = field(default_factory=dict)   # param -> value
    job_id: str | None = None
    job_name: str | None = None
    url: str | None = None                     # public event_source_url
    client_ip: str | None = None
    user_agent: str | None = None
    fbc: str | None = None
    fbp: str | None = None
    ttp: str | None = None                     # TikTok's _ttp cookie
    preview: bool = False                      # a test visitor: networks get a test event
    fields: Mapping[str, str] = field(default_factory=dict)      # extra extracted values
    rule: str | None = None
    dedupe_hours: float = DEFAULT_DEDUPE_HOURS
    # Google Consent Mode v2 signals of the visit that fired the event, for sinks that
    # pass them on (google_ads): {"ad_user_data": "GRANTED" | "DENIED",
    # "ad_personalization": "GRANTED" | "DENIED"}; empty when the visitor was never
    # asked (consent not required, no TC string, no GPC) or unknown (events API).
    consent_mode: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "event_id": self.event_id, "event_time": self.event_time,
            "links_clicked_id": self.links_clicked_id, "click_ids": dict(self.click_ids),
            "job_id": self.job_id, "job_name": self.job_name, "url": self.url,
            "client_ip": self.client_ip, "user_agent": self.user_agent,
            "fbc": self.fbc, "fbp": self.fbp, "ttp": self.ttp,
            "preview": self.preview, "fields": dict(self.fields),
            "rule": self.rule, "dedupe_hours": self.dedupe_hours,
            "consent_mode": dict(self.consent_mode),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Event:
        known = {k: d[k] for k in _FIELDS if k in d}
        known["click_ids"] = dict(known.get("click_ids") or {})
        known["fields"] = dict(known.get("fields") or {})
        known["consent_mode"] = dict(known.get("consent_mode") or {})
        return cls(**known)

    @classmethod
    def from_json(cls, data: bytes | str) -> Event:
        return cls.from_dict(orjson.loads(data))


_FIELDS = tuple(Event.__dataclass_fields__)
