"""Normalising JobPosting property values into bounded plain text. Pure.

schema.org lets most properties be a string, a number, a list or a typed object
(`MonetaryAmount`, `PostalAddress`, `PropertyValue`, …); each function here takes
whatever a site published and returns short text or None, never raising.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

MAX_DESCRIPTION = 64 * 1024     # bytes of UTF-8 kept of a description (HTML kept as is)
MAX_TEXT = 1024                 # characters kept of any other text field

# schema.org employmentType enumeration → the words job feeds use
JOB_TYPE_WORDS = {
    "FULL_TIME": "fulltime", "PART_TIME": "parttime", "CONTRACTOR": "contract",
    "TEMPORARY": "temporary", "INTERN": "internship", "VOLUNTEER": "volunteer",
    "PER_DIEM": "per diem", "OTHER": "other",
}


def text(value: Any, limit: int = MAX_TEXT, _depth: int = 0) -> str | None:
    """A short plain-text field: entities decoded, whitespace collapsed, bounded."""
    if isinstance(value, dict):
        value = value.get("@value", value.get("name", value.get("value")))
    if isinstance(value, list):
        if _depth > 2:
            return None
        value = ", ".join(t for t in (text(v, limit, _depth + 1) for v in value[:20]) if t)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        value = f"{value:g}" if isinstance(value, float) else str(value)
    if not isinstance(value, str):
        return None
    value = " ".join(html.unescape(value[: limit * 4]).split())[:limit]
    return value or None


def description(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    head = value[:MAX_DESCRIPTION].encode("utf-8", "surrogatepass")[:MAX_DESCRIPTION]
    return head.decode("utf-8", "ignore").strip() or None


def parse_date(value: Any, *, end_of_day: bool = False) -> float | None:
    """ISO 8601 (date or date-time, `Z` allowed; naive means UTC) or RFC 2822."""
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        return None
    raw = value.strip()
    try:
        moment = datetime.fromisoformat(raw.replace(" ", "T", 1) if len(raw) > 10 else raw)
    except ValueError:
        try:
            moment = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
    else:
        if end_of_day and len(raw) == 10:
            moment += timedelta(days=1)     # a bare date is valid through that whole day
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def salary(value: Any) -> str | None:
    """MonetaryAmount → "50000-60000 EUR per year"; a plain value is kept as text."""
    if not isinstance(value, dict):
        return text(value)
    currency = text(value.get("currency")) or ""
    amount = value.get("value")
    unit = ""
    figure: str | None
    if isinstance(amount, dict):
        unit = (text(amount.get("unitText")) or "").lower()
        low, high = amount.get("minValue"), amount.get("maxValue")
        single = amount.get("value")
        if low is not None and high is not None and low != high:
            figure = f"{text(low)}-{text(high)}"
        else:
            figure = text(single if single is not None else low if low is not None else high)
    else:
        figure = text(amount)
    if not figure:
        return None
    return " ".join(p for p in (figure, currency, f"per {unit}" if unit else "") if p)[:MAX_TEXT]


def jobtype(value: Any) -> str | None:
    values = value if isinstance(value, list) else [value]
    words = [JOB_TYPE_WORDS.get(t.strip().upper().replace("-", "_"), t.strip())
             for t in values[:10] if isinstance(t, str) and t.strip()]
    return text(", ".join(words))


def education(value: Any) -> str | None:
    if isinstance(value, dict):
        return text(value.get("credentialCategory")) or text(value.get("name"))
    return text(value)


def experience(value: Any) -> str | None:
    if isinstance(value, dict):
        months = value.get("monthsOfExperience")
        if isinstance(months, (int, float, str)) and text(months):
            return f"{text(months)} months"
        return text(value.get("description")) or text(value.get("name"))
    return text(value)
