"""Which upstream serves a public path: `[[routes]]` by longest prefix, else the main one.

Pure and compiled once per rules file. A routed request's target is the route's
upstream path followed by the rest of the public target after the prefix, byte-exact
(no re-quoting), so `/apply/job_app?for=acme` under `prefix = "/apply/"` and
`upstream = "https://boards.greenhouse.io/embed/"` is sent as
`/embed/job_app?for=acme` with `Host: boards.greenhouse.io`.

A routed path must never reach outside its upstream path on that host: a rest with a
`.` or `..` segment — however it is spelled: `%2e%2e`, `%252e.`, `..;x` (a path
parameter some servers drop), or behind an encoded or back slash — is refused
(`PathEscapes`) rather than forwarded. `//` inside the rest stays below the upstream
path, so it is forwarded as sent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from proxy.config.model import Route
from proxy.http.headers import LinkRoute, OriginRewriter

_DECODE_ROUNDS = 3          # %25-encoded dots, decoded again by a second server
_DOT_SEGMENTS = frozenset({".", ".."})


class PathEscapes(ValueError):
    """A routed path whose rest would leave the route's upstream path."""


def upstream_origins(upstream: str) -> tuple[str, str, tuple[str, ...]]:
    """(origin, host[:port], the origin spellings absolute URLs may use for it)."""
    parts = urlsplit(upstream)
    host = parts.netloc.lower()
    bare = parts.hostname or host
    default = (parts.scheme == "https" and parts.port in (None, 443)) or (
        parts.scheme == "http" and parts.port in (None, 80))
    names = {host}
    if default:
        names.add(bare)
    origins = tuple(f"{scheme}://{name}" for name in sorted(names)
                    for scheme in ("https", "http"))
    return f"{parts.scheme}://{host}", host, origins


def escapes(rest: str) -> bool:
    """Whether a path below a prefix climbs out of it once some server decodes it."""
    text = rest
    for _ in range(_DECODE_ROUNDS + 1):
        for segment in text.replace("\\", "/").split("/"):
            if segment.split(";", 1)[0] in _DOT_SEGMENTS:
                return True
        decoded = unquote(text, errors="surrogateescape")
        if decoded == text:
            return False
        text = decoded
    return True                 # still encoded after that many rounds: not forwarded


PageLinks = tuple[tuple[bytes, bytes], ...]     # see transform.links.RouteLinks


@dataclass(frozen=True, slots=True)
class UpstreamRoute:
    prefix: str                 # public, "/apply/"
    upstream: str               # as configured (normalised), for `check` and `explain`
    origin: str                 # "https://boards.greenhouse.io": the pool's key
    host: str                   # host[:port]
    path: str                   # the upstream path that replaces the prefix, "/embed/"
    origins: tuple[str, ...]    # the origin's spellings in absolute URLs
    rewriter: OriginRewriter    # headers of this upstream's responses
    page_links: PageLinks       # links in this upstream's pages: every route, and its mount

    def target(self, public_target: str) -> str:
        """The upstream target for a public target under this prefix."""
        return self.path + public_target[len(self.prefix):]

    def url(self, public_target: str) -> str:
        return self.origin + self.target(public_target)


class RouteTable:
    """The compiled `[[routes]]`; falsy when there are none (the common case)."""

    def __init__(self, routes: Sequence[Route], main_host: str,
                 main_origins: Sequence[str]) -> None:
        links = []
        parsed = []
        for r in routes:
            origin, host, origins = upstream_origins(r.upstream)
            path = urlsplit(r.upstream).path or "/"
            parsed.append((r, origin, host, origins, path))
            links.append(LinkRoute(origins, path, r.prefix))
        # Longer upstream URLs first, so /embed/forms/ wins over /embed/ when both exist.
        self.links: tuple[LinkRoute, ...] = tuple(sorted(
            links, key=lambda lr: len(lr.path), reverse=True))
        self.main_rewriter = OriginRewriter(main_host, main_origins, self.links)
        # For the page link rewriter: one spelling of each origin is enough (it knows
        # the others), and a route's own pages add its mount (a bare path).
        self.page_links: PageLinks = tuple(
            (lr.origins[0].encode() + lr.path.encode(), lr.prefix.encode()) for lr in self.links)
        self._routes = tuple(sorted(
            (UpstreamRoute(r.prefix, r.upstream, origin, host, path, origins,
                           OriginRewriter(host, origins, self.links, mount=(path, r.prefix)),
                           self.page_links + ((path.encode(), r.prefix.encode()),))
             for r, origin, host, origins, path in parsed),
            key=lambda u: len(u.prefix), reverse=True))
        self._bare = {u.prefix[:-1]: u.prefix for u in self._routes}

    def __bool__(self) -> bool:
        return bool(self._routes)

    def __iter__(self) -> Iterator[UpstreamRoute]:     # longest prefix first
        return iter(self._routes)

    @property
    def origins(self) -> frozenset[str]:
        """The upstream origins the routes need a connection pool for."""
        return frozenset(u.origin for u in self._routes)

    def match(self, path: str) -> UpstreamRoute | None:
        """The route serving this public path (longest prefix), None for the main upstream.

        Raises PathEscapes for a path that would leave the route's upstream path."""
        for route in self._routes:
            if path.startswith(route.prefix):
                if escapes(path[len(route.prefix):]):
                    raise PathEscapes(f"the path leaves {route.prefix}")
                return route
        return None

    def slash_redirect(self, path: str) -> str | None:
        """`/apply` → `/apply/` (as nginx answers a prefix location without its slash),
        unless a shorter prefix serves the path."""
        slashed = self._bare.get(path)
        if slashed is None or any(path.startswith(r.prefix) for r in self._routes):
            return None
        return slashed
