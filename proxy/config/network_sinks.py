"""The keys only the network sinks have: indeed, google_ads, linkedin and tiktok.

OAuth credentials, API versions, the Google Ads customer and conversion action, the
LinkedIn conversion and the TikTok pixel code, each checked for the shape its network
takes.
"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from proxy.config.networks import (
    DEFAULT_TOKEN_URL,
    action_problem,
    conversion_problem,
    tiktok_code_problem,
)
from proxy.config.schema import Table, http_url, nonempty


def network_keys(t: Table, kind: str) -> dict[str, Any]:
    """The keys of the indeed, google_ads, linkedin and tiktok sinks."""
    version = {"google_ads": _google_version, "linkedin": _linkedin_version}.get(kind)
    return dict(
        client_id=t.get("client_id", str, None, check=nonempty),
        client_secret=t.get("client_secret", str, None, check=nonempty),
        refresh_token=t.get("refresh_token", str, None, check=nonempty),
        token_url=t.get("token_url", str, DEFAULT_TOKEN_URL.get(kind), check=http_url),
        scope=t.get("scope", str, None),
        api_version=t.get("api_version", str, None, check=version),
        guid=t.get("guid", str, None, check=nonempty),
        test_fire=t.get("test_fire", bool, False),
        customer_id=_undashed(t.get("customer_id", str, None, check=_customer_id)),
        login_customer_id=_undashed(t.get("login_customer_id", str, None,
                                          check=_customer_id)),
        developer_token=t.get("developer_token", str, None, check=nonempty),
        conversion_action=t.get("conversion_action", str, None, check=action_problem),
        time_zone=t.get("time_zone", str, "UTC", check=_time_zone),
        conversion=t.get("conversion", str, None, check=conversion_problem),
        pixel_code=t.get("pixel_code", str, None, check=tiktok_code_problem),
    )


def _customer_id(v: str) -> str | None:
    if re.fullmatch(r"\d{3}-?\d{3}-?\d{4}", v):
        return None
    return f"{v!r} is not a Google Ads customer id (10 digits, e.g. 123-456-7890)"


def _undashed(v: str | None) -> str | None:
    return v.replace("-", "") if v else v


def _google_version(v: str) -> str | None:
    return None if re.fullmatch(r"v\d{1,3}", v) else f"{v!r} must be a version like v25"


def _linkedin_version(v: str) -> str | None:
    return None if re.fullmatch(r"20\d\d(0[1-9]|1[0-2])", v) else \
        f"{v!r} must be a version YYYYMM like 202603"


def _time_zone(v: str) -> str | None:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{v!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)"
    return None
