"""`[pixels.NAME]`: the browser tags injected into pages, their paths and CSP hosts.

Reads raw TOML through `schema.Table`, records every problem in the `Ctx`, and
returns model values (possibly partial when there were errors: the loader raises
before anyone sees them).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from proxy.config.model import Pixel, frozen_map
from proxy.config.named_tables import CSP_DIRECTIVES, PIXELS, POSITIONS
from proxy.config.networks import pixel_id_problem, tcf_vendor_problem, tiktok_code_problem
from proxy.config.rules_section import event_name, pattern_problem
from proxy.config.schema import Ctx, Table, describe, one_of
from proxy.detect.patterns import PathPattern

PIXEL_TYPES = tuple(PIXELS.variants)
PIXEL_KEYS = PIXELS.variant_names()
PIXEL_COMMON = PIXELS.common

_CSP_SOURCE = re.compile(r"(?:https?://)?(?:\*\.)?[A-Za-z0-9.-]+(?::(?:\d+|\*))?(?:/[^\s;,']*)?")
_GOOGLE_TAG = re.compile(r"AW-\d{1,20}")
_GOOGLE_SEND_TO = re.compile(r"AW-\d{1,20}/[A-Za-z0-9_-]{1,100}")


def _digits(what: str) -> Any:
    return lambda v: None if v.isdigit() and len(v) <= 20 else f"{v!r} must be the numeric {what}"


def _google_tag(v: str) -> str | None:
    return None if _GOOGLE_TAG.fullmatch(v) else \
        f"{v!r} is not a Google Ads tag id (AW- and digits, e.g. AW-123456789)"


def _google_send_to(v: str) -> str | None:
    return None if _GOOGLE_SEND_TO.fullmatch(v) else \
        f"{v!r} is not a conversion's send_to (AW-123456789/AbC-label)"


def _network_pixel(t: Table, name: str, kind: str, paths: tuple[PathPattern, ...],
                   csp: Any, vendor: int | None) -> Pixel | None:
    """A tiktok, linkedin or google pixel: its ids and per-event settings."""
    common: dict[str, Any] = {"name": name, "type": kind, "paths": paths, "csp": csp,
                              "tcf_vendor": vendor}
    if kind == "tiktok":
        return Pixel(**common, pixel_code=t.get("pixel_code", str, None, required=True,
                                                check=tiktok_code_problem),
                     event_names=frozen_map(t.string_map("event_names", check_key=event_name,
                                                         check=event_name)))
    if kind == "linkedin":
        return Pixel(**common, partner_id=t.get("partner_id", str, None, required=True,
                                                check=_digits("LinkedIn partner id")),
                     conversion_ids=frozen_map(t.string_map(
                         "conversion_ids", check_key=event_name,
                         check=_digits("LinkedIn conversion id"))))
    if kind == "google":
        return Pixel(**common, tag_id=t.get("tag_id", str, None, required=True,
                                            check=_google_tag),
                     send_to=frozen_map(t.string_map("send_to", check_key=event_name,
                                                     check=_google_send_to)))
    return None


def pixels(ctx: Ctx, raw: Any) -> tuple[Pixel, ...]:
    if not isinstance(raw, dict):
        ctx.error(("pixels",), f"expected tables [pixels.NAME], got {describe(raw)}")
        return ()
    out = []
    for name, body in raw.items():
        key = ("pixels", name)
        kind = body.get("type") if isinstance(body, dict) else None
        specific = PIXEL_KEYS.get(kind) if isinstance(kind, str) else None
        allowed = PIXEL_COMMON + (specific or tuple(k for v in PIXEL_KEYS.values() for k in v))
        t = Table(ctx, key, body, allowed, f"pixels.{name}")
        kind = t.get("type", str, None, required=True, check=one_of(*PIXEL_TYPES))
        paths = t.strings("paths", ("/**",), check=pattern_problem)
        csp = _csp(ctx, key + ("csp",), t.raw.get("csp", {}))
        vendor = t.get("tcf_vendor", int, None, check=tcf_vendor_problem)
        if kind in ("tiktok", "linkedin", "google"):
            pixel = _network_pixel(t, name, kind, _compiled(paths), csp, vendor)
            if pixel is not None:
                out.append(pixel)
        elif kind == "meta":
            pixel_id = t.get("pixel_id", str, None, required=True, check=pixel_id_problem)
            out.append(Pixel(name, "meta", _compiled(paths), pixel_id=pixel_id, csp=csp,
                             tcf_vendor=vendor))
        elif kind == "html":
            html = t.get("html", str, None, required=True)
            position = t.get("position", str, "head", check=one_of(*POSITIONS))
            out.append(Pixel(name, "html", _compiled(paths), html=html,
                             position=position, csp=csp,   # type: ignore[arg-type]
                             tcf_vendor=vendor))
    return tuple(out)


def _compiled(paths: Sequence[str]) -> tuple[PathPattern, ...]:
    return tuple(PathPattern.compile(p) for p in paths)


def _csp(ctx: Ctx, key: tuple, raw: Any) -> Any:
    if not isinstance(raw, dict):
        ctx.error(key, f"expected a table of directive = [hosts], got {describe(raw)}")
        return frozen_map()
    t = Table(ctx, key, raw, CSP_DIRECTIVES)
    return frozen_map({d: t.strings(d, check=_csp_source) for d in raw if d in CSP_DIRECTIVES})


def _csp_source(v: str) -> str | None:
    if _CSP_SOURCE.fullmatch(v) and v not in ("*", "http://*", "https://*"):
        return None
    return (f"{v!r} is not a host source (e.g. https://click.appcast.io); keywords and "
            "wildcards would loosen the site's policy")
