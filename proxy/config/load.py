"""The rules file -> a frozen `Config`, with every problem reported at once.

    load_config(path)             read, interpolate `${VAR}`, validate, build; raises
                                  ConfigErrors listing every error with key and line
    apply_overrides(config, …)    --listen/--upstream/--workers (or CAREERS_EDGE_*);
                                  `--admin-listen` is read with the file (Overrides)

Unset variables: an error wherever the value is needed, except that `proxy.secret`,
`proxy.public_url`, `api.token` and `admin.token` then count as absent (a warning), and a sink no
rule sends to is left out of `Config.sinks` (a warning), since it cannot fire.
Warnings go to the `warnings` list the caller passes, for `check` to show.

`[proxy] upstream` may be left to `run --upstream URL` / CAREERS_EDGE_UPSTREAM: give
`overrides=Overrides.resolve(os.environ, upstream=...)`; `check` passes
`allow_missing_upstream=True` and gets a warning (and `upstream == ""`) instead.
A reload must pass the same overrides again.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from proxy.config import pixels_section, routes_section, rules_section, sinks_section, tables
from proxy.config.env import Overrides
from proxy.config.errors import ConfigError, ConfigErrors, LineIndex, toml_syntax_error
from proxy.config.log_section import log_section
from proxy.config.model import (
    AdminSection,
    ApiSection,
    AttributionSection,
    Config,
    ConsentSection,
    FeedSection,
    ProxySection,
    RedirectSection,
    frozen_map,
)
from proxy.config.schema import (
    Ctx,
    Table,
    at_least,
    cidr,
    describe,
    http_url,
    listen_address,
    positive,
    token,
)
from proxy.detect.patterns import GlobPattern, PatternError
from proxy.hosts import HostPolicy, host_entry_problem, split_host
from proxy.state import StateURLError, parse_state

TOP_KEYS = tuple(section.name for section in tables.SECTIONS)
PROXY_KEYS = tables.PROXY.names
OVERRIDABLE = ("listen", "upstream", "workers")
_P = ProxySection(upstream="")    # the defaults, for reading
_WORKERS = at_least(1, 256)
UPSTREAM_HINT = "or give it to `run` as --upstream URL or CAREERS_EDGE_UPSTREAM"


def load_config(path: str | Path, env: Mapping[str, str] | None = None,
                overrides: Overrides | None = None, *, allow_missing_upstream: bool = False,
                warnings: list[ConfigError] | None = None) -> Config:
    """Read and validate a rules file; raises ConfigErrors with every problem."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigErrors([ConfigError(name, None, "", f"cannot read the rules file: {e}")]) \
            from None
    config = load_config_text(text, name, env, overrides,
                              allow_missing_upstream=allow_missing_upstream, warnings=warnings)
    return dataclasses.replace(config, source=Path(path))


def load_config_text(text: str, source_name: str = "<rules>",
                     env: Mapping[str, str] | None = None, overrides: Overrides | None = None,
                     *, allow_missing_upstream: bool = False,
                     warnings: list[ConfigError] | None = None) -> Config:
    """`load_config` for a string (tests, `explain` on a buffer)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigErrors([toml_syntax_error(source_name, e, text)]) from None
    ctx = Ctx(source_name, LineIndex(text), os.environ if env is None else env)
    config = _build(ctx, raw, overrides or Overrides(), allow_missing_upstream)
    if warnings is not None:
        warnings.extend(ctx.warnings)
    if ctx.errors or config is None:
        raise ConfigErrors(ctx.errors)
    return config


def apply_overrides(config: Config, listen: str | None = None, upstream: str | None = None,
                    workers: str | int | None = None,
                    origin: Mapping[str, str] | None = None) -> Config:
    """`config` with the given [proxy] values replaced, validated like the file's."""
    over = Overrides(listen, upstream, workers, origin)
    ctx = Ctx(str(config.source or "<overrides>"), LineIndex(""), {})
    values = _override_values(ctx, over)
    if ctx.errors:
        raise ConfigErrors(ctx.errors)
    return dataclasses.replace(config, proxy=dataclasses.replace(config.proxy, **values))


def _override_values(ctx: Ctx, over: Overrides) -> dict[str, Any]:
    """The overrides that are valid; each bad one is an error keyed by its flag/variable."""
    checks: dict[str, Callable[[Any], str | None]] = {
        "listen": listen_address, "upstream": _upstream_check, "workers": _WORKERS}
    out: dict[str, Any] = {}
    for key in OVERRIDABLE:
        value = getattr(over, key)
        if value is None:
            continue
        if key == "workers" and not isinstance(value, int):
            if not str(value).strip().isdigit():
                ctx.error((over.origin_of(key),), f"expected an integer, got {value!r}")
                continue
            value = int(str(value).strip())
        problem = checks[key](value)
        if problem:
            ctx.error((over.origin_of(key),), problem)
        else:
            out[key] = value
    return out


def _upstream_check(v: str) -> str | None:
    return http_url(v, root_only=True)


def _build(ctx: Ctx, raw: dict[str, Any], over: Overrides,
           allow_missing_upstream: bool) -> Config | None:
    top = Table(ctx, (), raw, TOP_KEYS, "the top level")
    proxy = _proxy(ctx, raw.get("proxy", {}), over, allow_missing_upstream)
    attribution = _attribution(ctx, raw.get("attribution", {}))
    consent = _consent(ctx, raw.get("consent", {}))
    pixels = pixels_section.pixels(ctx, raw.get("pixels", {}))
    raw_sinks = raw.get("sinks", {})
    sink_names = tuple(raw_sinks) if isinstance(raw_sinks, dict) else ()
    rules = rules_section.rules(ctx, raw.get("rules", []), sink_names)
    sinks = sinks_section.sinks(ctx, raw_sinks, rules, raw.get("rules"), attribution.params)
    def known_sink(name: str) -> str | None:
        if name in sink_names:
            return None
        return f"no sink named {name!r} (defined: {', '.join(sink_names) or 'none'})"

    api_t = Table(ctx, ("api",), raw.get("api", {}), tables.API.names)
    api = ApiSection(api_t.get("token", str, None, unset_ok=True, check=_nonempty),
                     api_t.strings("send_to", check=known_sink) if "send_to" in api_t.raw
                     else None)
    redirect_t = Table(ctx, ("redirect",), raw.get("redirect", {}), tables.REDIRECT.names)
    redirect = RedirectSection(redirect_t.strings("allow", check=_redirect_target),
                               redirect_t.strings("send_to", check=known_sink))
    feed = _feed(ctx, raw.get("feed", {}))
    admin = _admin(ctx, raw.get("admin", {}), over)
    if proxy is not None and admin.listen and _same_port(proxy.listen, admin.listen):
        key = ("admin", "listen") if over.admin_listen is None else (
            over.origin_of("admin_listen"),)
        ctx.error(key, f"{admin.listen!r} overlaps the public listener {proxy.listen!r}: "
                  "operators and visitors need two ports")
    routes = routes_section.routes(ctx, raw.get("routes", []),
                                   proxy.prefix if proxy is not None else _P.prefix)
    log = log_section(ctx, raw.get("log", {}), proxy.access_log if proxy else None)
    _report_unset(ctx)
    if ctx.errors or proxy is None or not top.ok:
        return None
    return Config(proxy, attribution, consent, pixels, rules, sinks, api, redirect, feed,
                  admin, routes=routes, log=log)


def _nonempty(v: str) -> str | None:
    return None if v.strip() else "must not be empty"


def _redirect_target(v: str) -> str | None:
    try:
        GlobPattern.compile(v, url=True)
    except PatternError as e:
        return str(e)
    return None


def _state(v: str) -> str | None:
    try:
        parse_state(v)
    except StateURLError as e:
        return str(e)
    return None


def _prefix(v: str) -> str | None:
    if not v.startswith("/") or v.endswith("/") or "//" in v:
        return f"{v!r} must start with '/' and not end with '/', e.g. \"/_edge\""
    if not all(c.isalnum() or c in "/._~-" for c in v):
        return f"{v!r} may hold only letters, digits and / . _ ~ -"
    return None


def _proxy(ctx: Ctx, raw: Any, over: Overrides, allow_missing_upstream: bool
           ) -> ProxySection | None:
    t = Table(ctx, ("proxy",), raw, PROXY_KEYS)
    values = _override_values(ctx, over)
    if "listen" not in values and t.has("listen"):
        values["listen"] = t.get("listen", str, _P.listen, check=listen_address)
    if "workers" not in values and t.has("workers"):
        values["workers"] = t.get("workers", int, _P.workers, check=_WORKERS)
    upstream = values.pop("upstream", None)
    if upstream is None and t.has("upstream"):
        warned = len(ctx.warnings)
        upstream = t.get("upstream", str, None, check=_upstream_check,
                         unset_ok=allow_missing_upstream)
        if upstream is None and len(ctx.warnings) > warned:    # ${VAR} unset, for `check`
            upstream = ""
    elif upstream is None and allow_missing_upstream:
        ctx.warn(("proxy", "upstream"), f"not in the file: {UPSTREAM_HINT}")
        upstream = ""
    elif upstream is None:
        ctx.error(("proxy", "upstream"),
                  "is required: the careers site's URL, e.g. upstream = "
                  f'"https://acme.hosted-ats.example"; {UPSTREAM_HINT}')
    public_url = t.get("public_url", str, None, unset_ok=True,
                       check=lambda v: http_url(v, root_only=True))
    section = {
        "public_url": public_url.rstrip("/") if public_url else None,
        "prefix": t.get("prefix", str, _P.prefix, check=_prefix),
        "state": t.get("state", str, _P.state, check=_state),
        "secret": t.get("secret", str, None, unset_ok=True, check=_nonempty),
        "previous_secrets": _previous_secrets(t),
        "timeout": t.get("timeout", float, _P.timeout, check=positive),
        "connect_timeout": t.get("connect_timeout", float, _P.connect_timeout,
                              check=positive),
        "max_connections": t.get("max_connections", int, _P.max_connections,
                              check=at_least(1)),
        "trusted_proxies": t.strings("trusted_proxies", check=cidr),
        "rewrite_links": t.get("rewrite_links", bool, True),
        "access_log": t.get("access_log", bool, None),
        "allow_paths": t.strings("allow_paths", check=rules_section.pattern_problem),
        "hosts": (hosts := t.strings("hosts", check=host_entry_problem)),
        "header_timeout": t.get("header_timeout", float, _P.header_timeout, check=positive),
        "body_timeout": t.get("body_timeout", float, _P.body_timeout, check=positive),
        "keepalive_timeout": t.get("keepalive_timeout", float, _P.keepalive_timeout,
                                   check=positive),
        "request_buffering": t.get("request_buffering", bool, True),
        "max_body": t.size("max_body", _P.max_body),
        "pool_timeout": t.get("pool_timeout", float, _P.pool_timeout, check=positive),
    }
    if t.raw.get("hosts") == []:
        ctx.error(("proxy", "hosts"), "is empty, which would refuse every request; leave it "
                  "out to serve public_url's host")
    elif public_url and hosts and not HostPolicy(hosts).serves(
            *(split_host(urlsplit(public_url).netloc) or ("", ""))):
        ctx.error(("proxy", "hosts"), f"does not list public_url's host "
                  f"{urlsplit(public_url).netloc!r}: links would name a host not served")
    if "allow_paths" in t.raw and t.raw["allow_paths"] == []:
        ctx.error(("proxy", "allow_paths"), "is empty, which would refuse every path; "
                  "leave it out to proxy every path")
    if upstream is None:
        return None
    return ProxySection(**section, **values, upstream=upstream)  # type: ignore[arg-type]


def _previous_secrets(t: Table) -> tuple[str, ...]:
    """Old cookie keys; one whose `${VAR}` is unset is left out (a warning), as `secret`
    counts as absent: a retired key's variable may well be gone."""
    key, raw = ("proxy", "previous_secrets"), t.raw.get("previous_secrets", [])
    if not isinstance(raw, list):
        t.ctx.error(key, f"expected a list of strings, got {describe(raw)}")
        return ()
    out: list[str] = []
    for i, item in enumerate(raw):
        if not isinstance(item, str):
            t.ctx.error(key + (i,), f"expected a string, got {describe(item)}")
            continue
        text = t.ctx.text(key + (i,), item, unset_ok=True)
        if text is not None:
            problem = _nonempty(text)
            if problem:
                t.ctx.error(key + (i,), problem)
            else:
                out.append(text)
    return tuple(out)


def _attribution(ctx: Ctx, raw: Any) -> AttributionSection:
    t = Table(ctx, ("attribution",), raw, tables.ATTRIBUTION.names)
    params = t.strings("params", AttributionSection().params, check=token)
    if len(set(params)) != len(params):
        ctx.error(("attribution", "params"), "lists a parameter twice")
    return AttributionSection(
        params=params, strip=t.get("strip", bool, True),
        cookie_days=t.get("cookie_days", int, 90, check=at_least(1, 400)))


def _consent(ctx: Ctx, raw: Any) -> ConsentSection:
    t = Table(ctx, ("consent",), raw, tables.CONSENT.names)
    return ConsentSection(
        required=t.get("required", bool, False),
        cookie=t.get("cookie", str, ConsentSection().cookie, check=token),
        granted=t.strings("granted", ConsentSection().granted),
        honor_gpc=t.get("honor_gpc", bool, True),
        tcf=t.get("tcf", bool, False))


def _feed(ctx: Ctx, raw: Any) -> FeedSection:
    t = Table(ctx, ("feed",), raw, tables.FEED.names)
    d = FeedSection()
    return FeedSection(
        enabled=t.get("enabled", bool, d.enabled),
        publisher=t.get("publisher", str, d.publisher),
        publisher_url=t.get("publisher_url", str, None, check=http_url),
        sitemap=t.get("sitemap", bool, d.sitemap),
        crawl_interval=t.get("crawl_interval", float, d.crawl_interval, check=positive),
        crawl_rate=t.get("crawl_rate", float, d.crawl_rate, check=positive),
        url_params=frozen_map(t.string_map("url_params", check_key=token)),
        expire_days=t.get("expire_days", int, d.expire_days, check=at_least(1)))


def _same_port(a: str, b: str) -> bool:
    """Whether two HOST:PORT addresses could bind the same port (SO_REUSEPORT would let
    the workers share it silently)."""
    (ha, _, pa), (hb, _, pb) = a.rpartition(":"), b.rpartition(":")
    wild = ("", "0.0.0.0", "[::]")
    return pa == pb and pa != "0" and (ha == hb or ha in wild or hb in wild)


def _admin_listen(v: str) -> str | None:
    return None if v in ("", "off") else listen_address(v)


def _admin(ctx: Ctx, raw: Any, over: Overrides) -> AdminSection:
    t = Table(ctx, ("admin",), raw, tables.ADMIN.names)
    if over.admin_listen is not None:
        listen: str | None = over.admin_listen
        problem = _admin_listen(over.admin_listen)
        if problem:
            ctx.error((over.origin_of("admin_listen"),), problem)
    else:
        listen = t.get("listen", str, AdminSection().listen, check=_admin_listen)
    return AdminSection(
        listen=None if listen in ("", "off") else listen,
        token=t.get("token", str, None, unset_ok=True, check=_nonempty),
        preview_token=t.get("preview_token", str, None, unset_ok=True, check=_nonempty))


def _report_unset(ctx: Ctx) -> None:
    """Unset `${VAR}`s outside sinks (sinks decide for themselves) are errors."""
    for key, var in ctx.unset:
        if key[:1] == ("sinks",):
            continue
        hint = f"; {UPSTREAM_HINT}" if key == ("proxy", "upstream") else ""
        ctx.error(key, f"${{{var}}} is not set in the environment{hint}")
