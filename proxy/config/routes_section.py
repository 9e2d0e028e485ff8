"""The `[[routes]]` section: public path prefixes served by other upstreams, checked.

A prefix starts and ends with "/" (so `/apply/` never also claims `/applying`), is
not the whole site ("/": that is `[proxy] upstream`) and not under the proxy's own
prefix. An upstream is an http(s) URL whose path ends with "/" (it replaces the
prefix, as nginx's `proxy_pass` with a URI does); its path holds only characters
that never end a URL in a page, so absolute links to it are found and rewritten.
Every problem is recorded in the `Ctx` with its key and line.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from proxy.config.model import Route
from proxy.config.schema import Ctx, Table, describe, http_url
from proxy.config.tables import ROUTES

ROUTE_KEYS = ROUTES.names
# Unreserved characters, "/" and percent-escapes: no quote, comma, semicolon or
# parenthesis, which the link rewriter treats as the end of a URL.
_PATH = re.compile(r"/(?:[A-Za-z0-9._~!$&*+=:@/-]|%[0-9A-Fa-f]{2})*")


def prefix_problem(v: str, edge_prefix: str) -> str | None:
    if not v.startswith("/") or not v.endswith("/") or v == "/":
        return f"{v!r} must start and end with '/' and name a path below /, e.g. \"/apply/\""
    if "//" in v or not _PATH.fullmatch(v):
        return f"{v!r} may hold only letters, digits, single '/' and - . _ ~ %XX"
    if any(seg in (".", "..") for seg in v.split("/")):
        return f"{v!r} must not hold a '.' or '..' segment"
    if (v + "/").startswith(edge_prefix + "/") or v == edge_prefix + "/":
        return f"{v!r} is under the proxy's own prefix {edge_prefix}"
    return None


def upstream_problem(v: str) -> str | None:
    problem = http_url(v)
    if problem:
        return problem
    parts = urlsplit(v)
    if parts.query or parts.fragment:
        return f"{v!r} must not carry a query or fragment"
    path = parts.path or "/"
    if not path.endswith("/"):
        return (f"{v!r}: its path must end with '/' (it replaces the prefix, which ends "
                f"with '/'), e.g. {v + '/'!r}")
    if not _PATH.fullmatch(path) or "//" in path:
        return f"{v!r}: its path may hold only letters, digits, single '/' and - . _ ~ %XX"
    if any(seg in (".", "..") for seg in path.split("/")):
        return f"{v!r}: its path must not hold a '.' or '..' segment"
    return None


def routes(ctx: Ctx, raw: Any, edge_prefix: str) -> tuple[Route, ...]:
    if not isinstance(raw, list):
        ctx.error(("routes",), f"expected [[routes]] tables, got {describe(raw)}")
        return ()
    out: list[Route] = []
    seen: dict[str, int] = {}
    for i, body in enumerate(raw):
        key = ("routes", i)
        t = Table(ctx, key, body, ROUTE_KEYS)
        if not t.ok:
            continue
        prefix = t.get("prefix", str, None, required=True,
                       check=lambda v: prefix_problem(v, edge_prefix))
        upstream = t.get("upstream", str, None, required=True, check=upstream_problem)
        if prefix is not None and prefix in seen:
            ctx.error(key + ("prefix",), f"{prefix!r} is already the prefix of "
                      f"routes[{seen[prefix]}]; each prefix is served by one upstream")
            continue
        if prefix is None or upstream is None:
            continue
        seen[prefix] = i
        parts = urlsplit(upstream)
        normal = f"{parts.scheme}://{parts.netloc}{parts.path or '/'}"
        out.append(Route(prefix, normal, ctx.lines.line_of(key)))
    return tuple(out)
