"""The request shapes Indeed, LinkedIn and TikTok document, as checks for the recorder.

Each `*_problem` takes one decoded event and returns what the network would refuse
in it, or None. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

INDEED_EVENTS = ("JOB_PAGE_LANDED", "APPLY_COMPLETE")
INDEED_KEYS = {"event", "guid", "ittk", "eventTimeMs", "jobUid", "testFire", "userInfo"}
LINKEDIN_URN = re.compile(r"urn:lla:llaPartnerConversion:\d+")
LINKEDIN_ID_TYPES = {"SHA256_EMAIL", "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID", "ACXIOM_ID",
                     "ORACLE_MOAT_ID"}
LINKEDIN_MAX_AGE_MS = 90 * 86400 * 1000
SHA256 = re.compile(r"[0-9a-f]{64}")


def json_or_none(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except ValueError:
        return None


def _typed(e: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> bool:
    v = e.get(key)
    return isinstance(v, kind) and not (kind is int and isinstance(v, bool))


def indeed_problem(e: Any) -> str | None:
    if not isinstance(e, dict):
        return "an event must be an object"
    checks: list[tuple[bool, str]] = [
        (not set(e) - INDEED_KEYS, f"unknown keys {sorted(set(e) - INDEED_KEYS)}"),
        (e.get("event") in INDEED_EVENTS, f"event must be one of {INDEED_EVENTS}"),
        (_typed(e, "guid", str) and bool(e["guid"]), "guid is required"),
        (_typed(e, "ittk", str) and bool(e["ittk"]), "ittk is required"),
        ("eventTimeMs" not in e or _typed(e, "eventTimeMs", int), "eventTimeMs: integer ms"),
        ("testFire" not in e or _typed(e, "testFire", bool), "testFire must be a boolean"),
        ("jobUid" not in e or _typed(e, "jobUid", str), "jobUid must be a string"),
        (all(isinstance(v, str) and SHA256.fullmatch(v) for v in (e.get("userInfo") or {})
             .values()), "userInfo values must be SHA-256 hex"),
    ]
    return next((msg for ok, msg in checks if not ok), None)


def linkedin_problem(e: Any, now_ms: float) -> str | None:
    if not isinstance(e, dict):
        return "an element must be an object"
    when = e.get("conversionHappenedAt")
    ids = (e.get("user") or {}).get("userIds") if isinstance(e.get("user"), dict) else None
    checks: list[tuple[bool, str]] = [
        (bool(LINKEDIN_URN.fullmatch(str(e.get("conversion", "")))),
         "conversion must be urn:lla:llaPartnerConversion:ID"),
        (isinstance(when, int) and not isinstance(when, bool)
         and now_ms - LINKEDIN_MAX_AGE_MS <= when <= now_ms + 60_000,
         "conversionHappenedAt: ms within the last 90 days"),
        (isinstance(ids, list) and bool(ids) and all(
            isinstance(u, dict) and u.get("idType") in LINKEDIN_ID_TYPES and u.get("idValue")
            for u in ids), "user.userIds needs an idType and idValue"),
        ("eventId" not in e or _typed(e, "eventId", str), "eventId must be a string"),
    ]
    return next((msg for ok, msg in checks if not ok), None)


def tiktok_problem(e: Any) -> str | None:
    if not isinstance(e, dict):
        return "an event must be an object"
    user = e.get("user") or {}
    hashed: Callable[[str], bool] = lambda k: k not in user or bool(  # noqa: E731
        isinstance(user[k], str) and SHA256.fullmatch(user[k]))
    checks: list[tuple[bool, str]] = [
        (_typed(e, "event", str) and bool(e["event"]), "event is required"),
        (_typed(e, "event_time", int), "event_time must be integer seconds"),
        ("event_id" not in e or _typed(e, "event_id", str), "event_id must be a string"),
        (isinstance(user, dict), "user must be an object"),
        (all(hashed(k) for k in ("external_id", "email", "phone")),
         "external_id, email and phone must be SHA-256 hex"),
        ("page" not in e or isinstance(e["page"], dict) and _typed(e["page"], "url", str),
         "page.url must be a string"),
    ]
    return next((msg for ok, msg in checks if not ok), None)
