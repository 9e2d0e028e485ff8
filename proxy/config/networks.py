"""What each ad network's conversions API takes, as the rules file is checked against it.

The default endpoints, the events and conversion ids a network accepts, the shape of
its ids, and the click ids a sink cannot work without. The rules-file reader checks
and fills in `[sinks.NAME]` and `[pixels.NAME]` with these; the sink clients
(`proxy.conversions.sinks`) and routing send by the same values, so they live here,
on the config's side, and the config never imports a client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from proxy.config.model import Sink
from proxy.config.schema import at_least

INDEED_API = "https://apis.indeed.com"
INDEED_TOKEN_URL = "https://apis.indeed.com/oauth/v2/tokens"
INDEED_EVENTS = ("JOB_PAGE_LANDED", "APPLY_COMPLETE")
GOOGLE_ADS_API = "https://googleads.googleapis.com"
GOOGLE_ADS_TOKEN_URL = "https://oauth2.googleapis.com/token"
GOOGLE_ADS_ACTION = re.compile(r"customers/(\d+)/conversionActions/(\d+)")
LINKEDIN_API = "https://api.linkedin.com"
LINKEDIN_URN_PREFIX = "urn:lla:llaPartnerConversion:"
LINKEDIN_URN = re.compile(re.escape(LINKEDIN_URN_PREFIX) + r"\d+")
TIKTOK_API = "https://business-api.tiktok.com"

DEFAULT_API: Mapping[str, str] = {"indeed": INDEED_API, "google_ads": GOOGLE_ADS_API,
                                  "linkedin": LINKEDIN_API, "tiktok": TIKTOK_API}
DEFAULT_TOKEN_URL: Mapping[str, str] = {"indeed": INDEED_TOKEN_URL,
                                        "google_ads": GOOGLE_ADS_TOKEN_URL}

# Click params a sink type cannot work without, on top of the sink's own `requires`.
IMPLICIT_REQUIRES: Mapping[str, tuple[str, ...]] = {
    "talroo": ("tlr_sid",), "indeed": ("ittk",), "linkedin": ("li_fat_id",)}
# ... and those of which it needs one at least.
IMPLICIT_ANY: Mapping[str, tuple[str, ...]] = {"google_ads": ("gclid", "gbraid", "wbraid")}

_TIKTOK_CODE = re.compile(r"[A-Z0-9]{10,40}")
_TCF_VENDOR = at_least(1, 65535)


def action_problem(v: str) -> str | None:
    """For `check`: a Google Ads conversion action id or resource name."""
    if v.isdigit() or GOOGLE_ADS_ACTION.fullmatch(v):
        return None
    return f"{v!r} must be a conversion action id or customers/ID/conversionActions/ID"


def conversion_problem(v: str) -> str | None:
    """For `check`: a LinkedIn conversion rule id or URN."""
    if v.isdigit() or LINKEDIN_URN.fullmatch(v):
        return None
    return f"{v!r} must be a conversion rule id or {LINKEDIN_URN_PREFIX}ID"


def pixel_id_problem(v: str) -> str | None:
    """For `check`: a Meta pixel id (a pixel's and a meta sink's)."""
    return None if v.isdigit() else f"{v!r} must be the numeric Meta pixel id"


def tiktok_code_problem(v: str) -> str | None:
    """For `check`: a TikTok pixel code (a pixel's and a tiktok sink's)."""
    return None if _TIKTOK_CODE.fullmatch(v) else \
        f"{v!r} is not a TikTok pixel code (upper-case letters and digits, e.g. C4ABCDEFGH12345678)"


def tcf_vendor_problem(v: int) -> str | None:
    """For `check`: an IAB TCF vendor id (a pixel's or a sink's `tcf_vendor`)."""
    return _TCF_VENDOR(v)


def required_params(sink: Sink) -> tuple[str, ...]:
    extra = tuple(p for p in IMPLICIT_REQUIRES.get(sink.type, ()) if p not in sink.requires)
    return tuple(sink.requires) + extra


def missing_params(sink: Sink, click_ids: Mapping[str, str]) -> list[str]:
    """What the visitor lacks for `sink`: params, or `a|b|c` when any one would do."""
    missing = [p for p in required_params(sink) if not click_ids.get(p)]
    anyof = IMPLICIT_ANY.get(sink.type, ())
    if anyof and not any(click_ids.get(p) for p in anyof):
        missing.append("|".join(anyof))
    return missing
