"""`[proxy]`: where the proxy listens, what it fronts, and how; and the overrides
(`--listen`, `--upstream`, `--workers` or CAREERS_EDGE_*) that win over the file.

Reads raw TOML through `schema.Table` and records every problem in the `Ctx`; returns
None when there is no usable upstream (the loader raises with the errors).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from proxy.config import rules_section, tables
from proxy.config.env import Overrides
from proxy.config.model import ProxySection
from proxy.config.schema import (
    Ctx,
    Table,
    at_least,
    cidr,
    describe,
    http_url,
    listen_address,
    nonempty,
    positive,
)
from proxy.hosts import HostPolicy, host_entry_problem, split_host
from proxy.state import StateURLError, parse_state

PROXY_KEYS = tables.PROXY.names
OVERRIDABLE = ("listen", "upstream", "workers")
DEFAULTS = ProxySection(upstream="")    # the defaults, for reading
_WORKERS = at_least(1, 256)
UPSTREAM_HINT = "or give it to `run` as --upstream URL or CAREERS_EDGE_UPSTREAM"


def override_values(ctx: Ctx, over: Overrides) -> dict[str, Any]:
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


def proxy_section(ctx: Ctx, raw: Any, over: Overrides, allow_missing_upstream: bool
           ) -> ProxySection | None:
    t = Table(ctx, ("proxy",), raw, PROXY_KEYS)
    values = override_values(ctx, over)
    if "listen" not in values and t.has("listen"):
        values["listen"] = t.get("listen", str, DEFAULTS.listen, check=listen_address)
    if "workers" not in values and t.has("workers"):
        values["workers"] = t.get("workers", int, DEFAULTS.workers, check=_WORKERS)
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
        "prefix": t.get("prefix", str, DEFAULTS.prefix, check=_prefix),
        "state": t.get("state", str, DEFAULTS.state, check=_state),
        "secret": t.get("secret", str, None, unset_ok=True, check=nonempty),
        "previous_secrets": _previous_secrets(t),
        "timeout": t.get("timeout", float, DEFAULTS.timeout, check=positive),
        "connect_timeout": t.get("connect_timeout", float, DEFAULTS.connect_timeout,
                              check=positive),
        "max_connections": t.get("max_connections", int, DEFAULTS.max_connections,
                              check=at_least(1)),
        "trusted_proxies": t.strings("trusted_proxies", check=cidr),
        "rewrite_links": t.get("rewrite_links", bool, True),
        "access_log": t.get("access_log", bool, None),
        "allow_paths": t.strings("allow_paths", check=rules_section.pattern_problem),
        "hosts": (hosts := t.strings("hosts", check=host_entry_problem)),
        "header_timeout": t.get("header_timeout", float, DEFAULTS.header_timeout, check=positive),
        "body_timeout": t.get("body_timeout", float, DEFAULTS.body_timeout, check=positive),
        "keepalive_timeout": t.get("keepalive_timeout", float, DEFAULTS.keepalive_timeout,
                                   check=positive),
        "request_buffering": t.get("request_buffering", bool, True),
        "max_body": t.size("max_body", DEFAULTS.max_body),
        "pool_timeout": t.get("pool_timeout", float, DEFAULTS.pool_timeout, check=positive),
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
            problem = nonempty(text)
            if problem:
                t.ctx.error(key + (i,), problem)
            else:
                out.append(text)
    return tuple(out)
