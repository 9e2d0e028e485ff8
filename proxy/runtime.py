"""Everything compiled from one rules file, swapped whole on reload.

The request path reads `edge.runtime` once per request, so a reload never shows a
request half the old rules and half the new ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import hdrs, web

from proxy.attribution.visit import Attribution
from proxy.config.model import Config, Sink
from proxy.detect.patterns import GlobPattern, PathPattern
from proxy.detect.rules import RuleSet
from proxy.hosts import HostPolicy
from proxy.http.body import BodyPolicy
from proxy.http.headers import ClientView, OriginRewriter, TrustedProxies, client_view
from proxy.http.route_table import RouteTable, escapes, upstream_origins
from proxy.pixels import PixelSet
from proxy.redact import Redactor


@dataclass(frozen=True, slots=True)
class Runtime:
    config: Config
    prefix: str
    prefix_slash: str
    public_origin: str | None          # None: from Host / X-Forwarded-Proto
    upstream_origin: str
    upstream_host: str
    rewriter: OriginRewriter
    link_origins: tuple[bytes, ...]    # upstream origins as they appear in HTML
    trusted: TrustedProxies
    hosts: HostPolicy
    attribution: Attribution
    rules: RuleSet
    pixels: PixelSet
    sinks: Mapping[str, Sink]
    redirect_allow: tuple[GlobPattern, ...]
    timeout: float
    allowed: AllowedPaths | None       # None: every path is proxied
    routes: RouteTable                 # [[routes]]: other upstreams by public prefix
    route_links: tuple[tuple[bytes, bytes], ...]   # (upstream URL, prefix) for page links
    redactor: Redactor                 # what the logs never show
    body: BodyPolicy                   # request bodies: buffering, max_body, body_timeout
    pool_timeout: float                # s to wait for a free upstream connection


def visitor(rt: Runtime, request: web.BaseRequest) -> ClientView:
    """Who asks, and for which of our hosts (`refused` set when it is none of them)."""
    return client_view(request.raw_headers, request.remote,
                       request.headers.get(hdrs.HOST, ""), request.scheme, rt.trusted, rt.hosts)


def public_origin(rt: Runtime, client: ClientView) -> str:
    """The origin visitors use: `public_url`, else the scheme and the (checked) host."""
    return rt.public_origin or f"{client.proto}://{client.host}"


def public_origin_of(rt: Runtime, request: web.BaseRequest) -> str:
    """`public_origin` for a request that already passed the host check."""
    return public_origin(rt, visitor(rt, request))


def served_hosts(config: Config) -> HostPolicy:
    """`[proxy] hosts`; by default `public_url`'s host, else any host (development)."""
    p = config.proxy
    if p.hosts:
        return HostPolicy(p.hosts)
    if p.public_url:
        name = urlsplit(p.public_url).hostname or ""
        return HostPolicy([f"[{name}]" if ":" in name else name])
    return HostPolicy(None)


def compile_runtime(config: Config, secret: bytes) -> Runtime:
    p = config.proxy
    origin, host, origins = upstream_origins(p.upstream)
    public = p.public_url.rstrip("/") if p.public_url else None
    routes = RouteTable(config.routes, host, origins)
    return Runtime(
        config=config,
        prefix=p.prefix,
        prefix_slash=p.prefix + "/",
        public_origin=public,
        upstream_origin=origin,
        upstream_host=host,
        rewriter=routes.main_rewriter,
        link_origins=tuple(o.encode() for o in origins),
        trusted=TrustedProxies(p.trusted_proxies),
        hosts=served_hosts(config),
        attribution=Attribution(config.attribution, config.consent, secret,
                                tuple(s.encode() for s in p.previous_secrets)),
        rules=RuleSet.compile(config.rules),
        pixels=PixelSet(config.pixels, config.sinks),
        sinks=config.sinks,
        redirect_allow=tuple(GlobPattern.compile(a, url=True) for a in config.redirect.allow),
        timeout=p.timeout,
        allowed=AllowedPaths(p.allow_paths) if p.allow_paths else None,
        routes=routes,
        route_links=routes.page_links,
        redactor=Redactor(config.attribution.params, config.log.redact),
        body=BodyPolicy(p.request_buffering, p.max_body, p.body_timeout),
        pool_timeout=p.pool_timeout,
    )


class AllowedPaths:
    """`[proxy] allow_paths`: the upstream paths this site serves (a shared ATS host
    also serves other companies' boards, which must not appear on our domain). A path
    with a `.` or `..` segment, however encoded, is none of them: the upstream would
    resolve `/acme/../rival` to another company's board."""

    _CACHE = 4096

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self._patterns = tuple(PathPattern.compile(p) for p in patterns)
        self._seen: dict[str, bool] = {}

    def __contains__(self, path: str) -> bool:
        hit = self._seen.get(path)
        if hit is None:
            hit = not escapes(path) and any(p.match(path) is not None for p in self._patterns)
            if len(path) <= 256:        # visitors choose paths: keep the cache small
                if len(self._seen) >= self._CACHE:
                    self._seen.clear()
                self._seen[path] = hit
        return hit
