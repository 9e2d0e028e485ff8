"""The one-screen summary `check` prints for a valid rules file.

It shows what the proxy will do and where conversions go, and never a secret: tokens,
webhook secrets, the cookie key and URL credentials or queries are left out (sinks
show only their endpoint's host).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from proxy.config.errors import ConfigError
from proxy.config.model import Config, LogSection, Pixel, Sink
from proxy.config.networks import missing_params
from proxy.detect.spec import Rule, StatusMatch

_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def _host(url: str | None) -> str:
    if not url:
        return "-"
    try:
        parts = urlsplit(_PLACEHOLDER.sub("x", url))
        host = parts.hostname or "-"
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "-"


def _state(state: str) -> str:
    """The state location without credentials (a redis URL may carry a password)."""
    parts = urlsplit(state)
    if parts.scheme.startswith(("redis", "rediss")) and parts.hostname:
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
    return state


def _route_upstream(url: str) -> str:
    """A route's upstream without credentials (the loader refuses them anyway)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _size(n: int) -> str:
    """A byte limit as written in a rules file: "100MB", "512k", "no limit"."""
    if n == 0:
        return "no limit"
    for unit, scale in (("GB", 1024 ** 3), ("MB", 1024 ** 2), ("k", 1024)):
        if n >= scale and n % scale == 0:
            return f"≤ {n // scale}{unit}"
    return f"≤ {n} bytes"


def _status(status: Sequence[StatusMatch]) -> str:
    if not status:
        return "any"
    return ",".join(str(s.low) if s.low == s.high else f"{s.low // 100}xx" for s in status)


def rule_line(rule: Rule) -> str:
    """`METHOD PATH status [location …] → EVENT → sinks` for one rule."""
    parts = [rule.method or "*", rule.path.source
             + ("?" + "&".join(f"{k}={v}" for k, v in rule.query) if rule.query else ""),
             _status(rule.status)]
    if rule.location is not None:
        parts.append(f"location {rule.location.source}")
    if rule.header:
        parts.append(" ".join(f"{k}: {v}" for k, v in rule.header))
    if rule.body is not None:
        parts.append("body " + (rule.body if len(rule.body) <= 30 else rule.body[:29] + "…"))
    for label, conditions in (("request_json", rule.request_json), ("json", rule.json)):
        if conditions:
            parts.append(label + " " + ", ".join(f"{e.source} = {g}" for e, g in conditions))
    sinks = ", ".join(rule.send_to) or "(browser pixel only)"
    more = []
    if rule.job_name is not None:
        more.append(f"jobName {rule.job_name.source}")
    if rule.continue_:
        more.append("continue")
    tail = f"  [{'; '.join(more)}]" if more else ""
    return f"{' '.join(parts)} → {rule.event} → {sinks}{tail}"


def _network_where(sink: Sink) -> str | None:
    """Where an indeed, google_ads, linkedin or tiktok sink sends: host and account."""
    account = {
        "indeed": f"guid {sink.guid}" + (" (testFire)" if sink.test_fire else ""),
        "google_ads": f"customer {sink.customer_id}" + (
            f" action {sink.conversion_action.rpartition('/')[2]}"
            if sink.conversion_action else ""),
        "linkedin": f"conversion {sink.conversion or '(per event)'}",
        "tiktok": f"pixel {sink.pixel_code}" + (" (test events)" if sink.test_event_code else ""),
    }.get(sink.type)
    return f"{_host(sink.api)} {account}" if account else None


def sink_line(sink: Sink) -> str:
    network = _network_where(sink)
    if network:
        where = network
    elif sink.type == "meta":
        where = f"{_host(sink.api)} pixel {sink.pixel_id}"
        if sink.test_event_code:
            where += " (test events)"
        elif sink.preview_test_event_code:
            where += " (preview visitors: test events)"
    else:
        where = _host(sink.url)
        if sink.events:
            where += " + " + ", ".join(f"{e}→{_host(u)}" for e, u in sink.events.items())
    extras = []
    needs = missing_params(sink, {})
    if needs:
        extras.append(f"requires {', '.join(n.replace('|', ' or ') for n in needs)}")
    if not sink.marketing:
        extras.append("not marketing")
    if sink.tcf_vendor is not None:
        extras.append(f"TCF vendor {sink.tcf_vendor}")
    tail = f"  ({'; '.join(extras)})" if extras else ""
    return f"{sink.type:<8} {where}{tail}"


def pixel_line(px: Pixel) -> str:
    if px.type == "html":
        what: str = px.position
    elif px.type == "linkedin":
        what = f"partner {px.partner_id}" + "".join(
            f", {e}→{c}" for e, c in px.conversion_ids.items())
    elif px.type == "google":
        what = f"{px.tag_id}" + "".join(f", {e}→{t}" for e, t in px.send_to.items())
    else:
        what = f"{px.pixel_id or px.pixel_code}" + "".join(
            f", {e}→{n}" for e, n in px.event_names.items())
    vendor = f"  (TCF vendor {px.tcf_vendor})" if px.tcf_vendor is not None else ""
    return f"{px.type:<8} {what}  " + " ".join(pp.source for pp in px.paths) + vendor


def _table(rows: Iterable[tuple[str, str]], indent: str = "  ") -> list[str]:
    rows = list(rows)
    width = max((len(k) for k, _ in rows), default=0)
    return [f"{indent}{k:<{width}}  {v}" for k, v in rows]


def edge_warnings(config: Config) -> list[ConfigError]:
    """What `check` warns about in a deployment that is valid but unsafe on a public edge."""
    p = config.proxy
    if p.hosts or p.public_url:
        return []
    return [ConfigError(str(config.source or "rules"), None, "proxy.hosts",
                        "neither hosts nor public_url is set: any Host is served and named in "
                        "links, cookies and conversions (development only)")]


def _logs(log: LogSection) -> str:
    access = "no access log" if log.access == "off" else (
        f"access {log.access}" + ("" if log.health else " (health checks left out)"))
    return (f"{access}; app {log.format} at {log.level} (--log-level, "
            f"CAREERS_EDGE_LOG_LEVEL win); {'redacted' if log.redact else 'NOT redacted'}")


def summary(config: Config, warnings: Sequence[ConfigError] = ()) -> str:
    p, a, c = config.proxy, config.attribution, config.consent
    name = str(config.source) if config.source else "rules"
    out = [f"{name}: valid"]
    upstream = p.upstream or "(not in the file: give --upstream or CAREERS_EDGE_UPSTREAM)"
    consent = "not required" if not c.required else (
        f"required: cookie {c.cookie} in {', '.join(c.granted)}"
        + ("; Sec-GPC honoured" if c.honor_gpc else ""))
    if c.tcf:
        consent += "; IAB TCF v2.2 from euconsent-v2 (no purpose 1: no pixel, no cookie " \
            "but linksClickedId)"
    out += _table([
        ("upstream", upstream),
        ("paths", " ".join(p.allow_paths) + "  (others: 404)" if p.allow_paths
         else "every path"),
        ("listen", f"{p.listen}  workers {p.workers}  timeout {p.timeout:g}s"),
        ("clients", f"head {p.header_timeout:g}s, body idle {p.body_timeout:g}s, keep-alive "
                    f"{p.keepalive_timeout:g}s; bodies {_size(p.max_body)}, "
                    + ("buffered" if p.request_buffering else "streamed")
                    + f"; upstream wait {p.pool_timeout:g}s"),
        ("public url", p.public_url or "from Host / X-Forwarded-Proto"),
        ("hosts", " ".join(p.hosts) if p.hosts else
         _host(p.public_url) + " (public_url's)" if p.public_url else "any  (development only)"),
        ("trusted", " ".join(p.trusted_proxies) + "  (X-Forwarded-* believed, realip walk)"
         if p.trusted_proxies else "none  (X-Forwarded-* ignored)"),
        ("admin", (config.admin.listen or "off") + (
            "  (bearer token)" if config.admin.token and config.admin.listen else "") + (
            f"  (preview link {p.prefix}/preview)" if config.admin.preview_token else "")),
        ("ui", f"http://{config.admin.listen}{p.prefix}/ui/  (operators, admin listener)"
         if config.admin.listen else "off  (no admin listener)"),
        ("prefix", p.prefix),
        ("state", _state(p.state)),
        ("cookie key", ("set" if p.secret else "generated once, kept in the state")
         + (f"; {len(p.previous_secrets)} previous still verified"
            if p.previous_secrets else "")),
        ("click ids", (f"{', '.join(a.params)}  ({'stripped' if a.strip else 'kept'} "
                       f"upstream; cookies {a.cookie_days} days)")),
        ("consent", consent),
        ("logs", _logs(config.log)),
    ])
    if config.routes:
        out.append(f"routes ({len(config.routes)}; longest prefix first, the rest: upstream)")
        out += _table((r.prefix, f"→ {_route_upstream(r.upstream)}") for r in sorted(
            config.routes, key=lambda r: len(r.prefix), reverse=True))
    out.append(f"pixels ({len(config.pixels)})")
    out += _table((px.name, pixel_line(px)) for px in config.pixels)
    out.append(f"rules ({len(config.rules)})")
    out += [f"  {i}. {rule_line(r)}" for i, r in enumerate(config.rules)]
    out.append(f"sinks ({len(config.sinks)})")
    out += _table((s.name, sink_line(s)) for s in config.sinks.values())
    allow = config.redirect.allow
    out += _table([
        ("api", "on (bearer token set)" if config.api.token else "off (no [api] token)"),
        ("redirect", f"{len(allow)} allowed: {', '.join(_host(u) for u in allow)}"
                     if allow else "off (no [redirect] allow)"),
        ("feed", f"on, publisher {config.feed.publisher or '-'}"
                 + (" + sitemap" if config.feed.sitemap else "")
                 if config.feed.enabled else "off"),
    ], indent="")
    if warnings:
        out.append(f"warnings ({len(warnings)})")
        out += [f"  {w}" for w in warnings]
    return "\n".join(out)
