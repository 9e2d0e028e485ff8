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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
    RedirectSection,
    frozen_map,
)
from proxy.config.proxy_section import DEFAULTS, UPSTREAM_HINT, override_values, proxy_section
from proxy.config.schema import (
    Ctx,
    Table,
    at_least,
    http_url,
    listen_address,
    nonempty,
    positive,
    token,
)
from proxy.detect.patterns import GlobPattern, PatternError

TOP_KEYS = tuple(section.name for section in tables.SECTIONS)


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
    values = override_values(ctx, over)
    if ctx.errors:
        raise ConfigErrors(ctx.errors)
    return dataclasses.replace(config, proxy=dataclasses.replace(config.proxy, **values))


def _build(ctx: Ctx, raw: dict[str, Any], over: Overrides,
           allow_missing_upstream: bool) -> Config | None:
    top = Table(ctx, (), raw, TOP_KEYS, "the top level")
    proxy = proxy_section(ctx, raw.get("proxy", {}), over, allow_missing_upstream)
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
    api = ApiSection(api_t.get("token", str, None, unset_ok=True, check=nonempty),
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
                                   proxy.prefix if proxy is not None else DEFAULTS.prefix)
    log = log_section(ctx, raw.get("log", {}), proxy.access_log if proxy else None)
    _report_unset(ctx)
    if ctx.errors or proxy is None or not top.ok:
        return None
    return Config(proxy, attribution, consent, pixels, rules, sinks, api, redirect, feed,
                  admin, routes=routes, log=log)


def _redirect_target(v: str) -> str | None:
    try:
        GlobPattern.compile(v, url=True)
    except PatternError as e:
        return str(e)
    return None


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
        token=t.get("token", str, None, unset_ok=True, check=nonempty),
        preview_token=t.get("preview_token", str, None, unset_ok=True, check=nonempty))


def _report_unset(ctx: Ctx) -> None:
    """Unset `${VAR}`s outside sinks (sinks decide for themselves) are errors."""
    for key, var in ctx.unset:
        if key[:1] == ("sinks",):
            continue
        hint = f"; {UPSTREAM_HINT}" if key == ("proxy", "upstream") else ""
        ctx.error(key, f"${{{var}}} is not set in the environment{hint}")
