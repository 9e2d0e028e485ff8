"""The named tables of a rules file: `[pixels.NAME]` and `[sinks.NAME]`.

Each builder reads raw TOML through `schema.Table`, records every problem in the
`Ctx`, and returns model values (possibly partial when there were errors: the loader
raises before anyone sees them). A sink's unset `${VAR}` is decided here: an error
when a rule sends to the sink, else the sink is left out with a warning.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from proxy.config.model import Pixel, Sink, frozen_map
from proxy.config.rules_section import event_name, pattern_problem
from proxy.config.schema import Ctx, Table, at_least, describe, http_url, one_of, positive, token
from proxy.config.tables import CSP_DIRECTIVES, PIXELS, POSITIONS, SINK_METHODS, SINKS
from proxy.conversions.routing import IMPLICIT_ANY, IMPLICIT_REQUIRES
from proxy.conversions.sinks import google_ads, indeed, linkedin, tiktok
from proxy.detect.patterns import PathPattern
from proxy.detect.spec import Rule

PIXEL_TYPES = tuple(PIXELS.variants)
PIXEL_KEYS = PIXELS.variant_names()
PIXEL_COMMON = PIXELS.common
SINK_TYPES = tuple(SINKS.variants)
SINK_KEYS = SINKS.variant_names()
SINK_REQUIRED = {kind: SINKS.required(kind) for kind in SINKS.variants}
SINK_COMMON = SINKS.common
SINK_DEFAULT_REQUIRES = {"talroo": ("tlr_sid",), "indeed": ("ittk",)}
SINK_DEFAULT_API = {"indeed": indeed.DEFAULT_API, "google_ads": google_ads.DEFAULT_API,
                    "linkedin": linkedin.DEFAULT_API, "tiktok": tiktok.DEFAULT_API}
SINK_DEFAULT_TOKEN_URL = {"indeed": indeed.DEFAULT_TOKEN_URL,
                          "google_ads": google_ads.DEFAULT_TOKEN_URL}
# What a sink's event_names map to: the network's event, or its conversion.
SINK_EVENT_VALUE = {"indeed": one_of(*indeed.EVENTS), "google_ads": google_ads.action_problem,
                    "linkedin": linkedin.conversion_problem}
# One of these must say where a conversion goes.
SINK_TARGET = {"google_ads": "conversion_action", "linkedin": "conversion"}
# http sink placeholders every event has (SPEC section 4); rules add their captures
PLACEHOLDERS = ("event", "event_id", "event_time", "event_time_ms", "linksClickedId",
                "job_id", "jobName")

_CSP_SOURCE = re.compile(r"(?:https?://)?(?:\*\.)?[A-Za-z0-9.-]+(?::(?:\d+|\*))?(?:/[^\s;,']*)?")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def _pixel_id(v: str) -> str | None:
    return None if v.isdigit() else f"{v!r} must be the numeric Meta pixel id"


_TIKTOK_CODE = re.compile(r"[A-Z0-9]{10,40}")
_GOOGLE_TAG = re.compile(r"AW-\d{1,20}")
_GOOGLE_SEND_TO = re.compile(r"AW-\d{1,20}/[A-Za-z0-9_-]{1,100}")


def _tiktok_code(v: str) -> str | None:
    return None if _TIKTOK_CODE.fullmatch(v) else \
        f"{v!r} is not a TikTok pixel code (upper-case letters and digits, e.g. C4ABCDEFGH12345678)"


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
                                                check=_tiktok_code),
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


def _tcf_vendor(t: Table) -> int | None:
    return t.get("tcf_vendor", int, None, check=at_least(1, 65535))


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
        vendor = _tcf_vendor(t)
        if kind in ("tiktok", "linkedin", "google"):
            pixel = _network_pixel(t, name, kind, _compiled(paths), csp, vendor)
            if pixel is not None:
                out.append(pixel)
        elif kind == "meta":
            pixel_id = t.get("pixel_id", str, None, required=True, check=_pixel_id)
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




def sinks(ctx: Ctx, raw: Any, rules: Sequence[Rule], raw_rules: Any,
          params: Sequence[str]) -> Any:
    """`[sinks.NAME]` tables -> name -> Sink; unusable unused sinks are left out.

    Who uses a sink is read from the raw rules, so a rule with another error still
    makes its sinks count as used.
    """
    if not isinstance(raw, dict):
        ctx.error(("sinks",), f"expected tables [sinks.NAME], got {describe(raw)}")
        return frozen_map()
    users = _users(raw_rules)
    names = set(PLACEHOLDERS) | {f"click.{p}" for p in params}
    for rule in rules:
        names.update(rule.path.names, rule.extract)
    out: dict[str, Sink] = {}
    for name, body in raw.items():
        before = len(ctx.unset)
        sink = _sink(ctx, ("sinks", name), name, body, names, params)
        unset = ctx.unset[before:]
        if unset and name in users:
            for key, var in unset:
                ctx.error(key, f"${{{var}}} is not set in the environment, and rule "
                          f"{users[name][0]!r} sends to sink {name!r}")
        elif unset:
            ctx.warn(("sinks", name), f"sink left out: ${{{unset[0][1]}}} is not set "
                     "(no rule sends to it)")
        elif sink is not None:
            out[name] = sink
    return frozen_map(out)


def _users(raw_rules: Any) -> dict[str, list[str]]:
    users: dict[str, list[str]] = {}
    for i, rule in enumerate(raw_rules if isinstance(raw_rules, list) else ()):
        if not isinstance(rule, dict):
            continue
        send_to = rule.get("send_to", ())
        for sink in [send_to] if isinstance(send_to, str) else send_to:
            if isinstance(sink, str):
                users.setdefault(sink, []).append(str(rule.get("name", f"rules[{i}]")))
    return users


def _sink(ctx: Ctx, key: tuple, name: str, body: Any, placeholders: set[str],
          params: Sequence[str]) -> Sink | None:
    kind = body.get("type") if isinstance(body, dict) else None
    specific = SINK_KEYS.get(kind) if isinstance(kind, str) else None
    allowed = SINK_COMMON + (specific or tuple({k for v in SINK_KEYS.values() for k in v}))
    t = Table(ctx, key, body, allowed, f"sinks.{name}")
    kind = t.get("type", str, None, required=True, check=one_of(*SINK_TYPES))
    if kind is None:
        return None
    for req in SINK_REQUIRED[kind]:
        if not t.has(req):
            ctx.error(key + (req,), f"is required for a {kind} sink")
    needs = IMPLICIT_REQUIRES.get(kind, ()) + IMPLICIT_ANY.get(kind, ())
    if needs and not any(p in params for p in needs):
        ctx.error(key + ("type",), f"a {kind} sink needs {' or '.join(needs)}, which is never "
                  "captured: add it to [attribution] params")
    target = SINK_TARGET.get(kind)
    if target and not t.has(target) and not t.has("event_names"):
        ctx.error(key + (target,), f"is required for a {kind} sink (or event_names for "
                  "every event sent to it)")

    def template(v: str, *, url: bool) -> str | None:
        for ph in _PLACEHOLDER.findall(v):
            if ph not in placeholders and ph.removeprefix("field.") not in placeholders:
                return (f"unknown placeholder {{{ph}}}; available: "
                        + ", ".join("{" + p + "}" for p in sorted(placeholders)))
        return http_url(_PLACEHOLDER.sub("x", v)) if url else None

    url_check = (lambda v: template(v, url=True)) if kind == "http" else http_url
    nonempty = (lambda v: None if v.strip() else "must not be empty")
    default_method = "POST" if kind in ("meta", "webhook") else "GET"
    return Sink(
        name=name, type=kind,   # type: ignore[arg-type]
        url=t.get("url", str, None, check=url_check),
        method=t.get("method", str, default_method,
                     check=lambda v: one_of(*SINK_METHODS)(v.upper())).upper(),
        events=frozen_map(t.string_map("events", check_key=event_name, check=http_url)),
        pixel_id=t.get("pixel_id", str, None, check=_pixel_id),
        access_token=t.get("access_token", str, None, check=nonempty),
        api=t.get("api", str, SINK_DEFAULT_API.get(kind, _SINK_DEFAULTS.api),
                  check=http_url).rstrip("/"),
        test_event_code=t.get("test_event_code", str, ""),
        preview_test_event_code=t.get("preview_test_event_code", str, ""),
        event_names=frozen_map(t.string_map("event_names", check_key=event_name,
                                            check=SINK_EVENT_VALUE.get(kind, event_name))),
        requires=t.strings("requires", SINK_DEFAULT_REQUIRES.get(kind, ()),
                           check=lambda p: None if p in params else
                           f"{p!r} is never captured: add it to [attribution] params"),
        secret=t.get("secret", str, None, check=nonempty),
        headers=frozen_map(t.string_map("headers", check_key=token, check=_header_value)),
        body=t.get("body", str, None, check=lambda v: template(v, url=False)),
        timeout=t.get("timeout", float, _SINK_DEFAULTS.timeout, check=positive),
        concurrency=t.get("concurrency", int, _SINK_DEFAULTS.concurrency,
                          check=at_least(1, 64)),
        marketing=t.get("marketing", bool, kind != "webhook"),
        tcf_vendor=_tcf_vendor(t),
        **_network_keys(t, kind, nonempty),
    )


def _network_keys(t: Table, kind: str, nonempty: Callable[[str], str | None]) -> dict[str, Any]:
    """The keys of the indeed, google_ads, linkedin and tiktok sinks."""
    version = {"google_ads": _google_version, "linkedin": _linkedin_version}.get(kind)
    return dict(
        client_id=t.get("client_id", str, None, check=nonempty),
        client_secret=t.get("client_secret", str, None, check=nonempty),
        refresh_token=t.get("refresh_token", str, None, check=nonempty),
        token_url=t.get("token_url", str, SINK_DEFAULT_TOKEN_URL.get(kind), check=http_url),
        scope=t.get("scope", str, None),
        api_version=t.get("api_version", str, None, check=version),
        guid=t.get("guid", str, None, check=nonempty),
        test_fire=t.get("test_fire", bool, False),
        customer_id=_undashed(t.get("customer_id", str, None, check=_customer_id)),
        login_customer_id=_undashed(t.get("login_customer_id", str, None,
                                          check=_customer_id)),
        developer_token=t.get("developer_token", str, None, check=nonempty),
        conversion_action=t.get("conversion_action", str, None,
                                check=google_ads.action_problem),
        time_zone=t.get("time_zone", str, "UTC", check=_time_zone),
        conversion=t.get("conversion", str, None, check=linkedin.conversion_problem),
        pixel_code=t.get("pixel_code", str, None, check=_tiktok_code),
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


_SINK_DEFAULTS = Sink(name="", type="http")


def _header_value(v: str) -> str | None:
    return "must not contain a line break" if "\r" in v or "\n" in v else None
