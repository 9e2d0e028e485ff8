"""`[sinks.NAME]`: where the conversions go.

Reads raw TOML through `schema.Table`, records every problem in the `Ctx`, and
returns model values (possibly partial when there were errors: the loader raises
before anyone sees them). A sink's unset `${VAR}` is decided here: an error when a
rule sends to the sink, else the sink is left out with a warning. The network sinks'
own keys are read in `network_sinks`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from proxy.config.model import Sink, frozen_map
from proxy.config.named_tables import SINK_METHODS, SINKS
from proxy.config.network_sinks import network_keys
from proxy.config.networks import (
    DEFAULT_API,
    IMPLICIT_ANY,
    IMPLICIT_REQUIRES,
    INDEED_EVENTS,
    action_problem,
    conversion_problem,
    pixel_id_problem,
    tcf_vendor_problem,
)
from proxy.config.rules_section import event_name
from proxy.config.schema import (
    Ctx,
    Table,
    at_least,
    describe,
    http_url,
    nonempty,
    one_of,
    positive,
    token,
)
from proxy.detect.spec import Rule

SINK_TYPES = tuple(SINKS.variants)
SINK_KEYS = SINKS.variant_names()
SINK_REQUIRED = {kind: SINKS.required(kind) for kind in SINKS.variants}
SINK_COMMON = SINKS.common
SINK_DEFAULT_REQUIRES = {"talroo": ("tlr_sid",), "indeed": ("ittk",)}
# What a sink's event_names map to: the network's event, or its conversion.
SINK_EVENT_VALUE = {"indeed": one_of(*INDEED_EVENTS), "google_ads": action_problem,
                    "linkedin": conversion_problem}
# One of these must say where a conversion goes.
SINK_TARGET = {"google_ads": "conversion_action", "linkedin": "conversion"}
# http sink placeholders every event has (SPEC section 4); rules add their captures
PLACEHOLDERS = ("event", "event_id", "event_time", "event_time_ms", "linksClickedId",
                "job_id", "jobName")

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


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
    default_method = "POST" if kind in ("meta", "webhook") else "GET"
    return Sink(
        name=name, type=kind,   # type: ignore[arg-type]
        url=t.get("url", str, None, check=url_check),
        method=t.get("method", str, default_method,
                     check=lambda v: one_of(*SINK_METHODS)(v.upper())).upper(),
        events=frozen_map(t.string_map("events", check_key=event_name, check=http_url)),
        pixel_id=t.get("pixel_id", str, None, check=pixel_id_problem),
        access_token=t.get("access_token", str, None, check=nonempty),
        api=t.get("api", str, DEFAULT_API.get(kind, _SINK_DEFAULTS.api),
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
        tcf_vendor=t.get("tcf_vendor", int, None, check=tcf_vendor_problem),
        **network_keys(t, kind),
    )


_SINK_DEFAULTS = Sink(name="", type="http")


def _header_value(v: str) -> str | None:
    return "must not contain a line break" if "\r" in v or "\n" in v else None
