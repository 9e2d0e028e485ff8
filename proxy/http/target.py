"""The request-target as the visitor sent it, checked and kept byte-exact.

aiohttp hands the request line's target over undecoded (`request.raw_path`);
an absolute-form target (`GET http://elsewhere/ HTTP/1.1`) is reduced to its
path and query only when it names the same host as the Host header, so the proxy
can never be used as an open forward proxy.
"""

from __future__ import annotations

from urllib.parse import urlsplit


class BadTarget(ValueError):
    pass


def origin_form(raw_target: str, host_header: str) -> str:
    """The path-and-query to forward; raises BadTarget for anything else."""
    if raw_target.startswith("/"):
        if raw_target.startswith("//"):
            # Keep "//" byte-exact: it is the upstream's path, not an authority.
            return raw_target
        return raw_target
    if raw_target == "*":
        raise BadTarget("asterisk-form is not served")
    try:
        parts = urlsplit(raw_target)
    except ValueError:
        raise BadTarget("unparseable request target") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise BadTarget("request target must be a path")
    if parts.netloc.lower() != host_header.lower():
        raise BadTarget("absolute request target names a foreign host")
    rest = raw_target.split("//", 1)[1]
    slash = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=-1)
    if slash < 0:
        return "/"
    tail = rest[slash:]
    return tail if tail.startswith("/") else "/" + tail


def split_target(target: str) -> tuple[str, str]:
    """'/a/b?x=1' -> ('/a/b', 'x=1'); the fragment is never sent by browsers."""
    path, _, query = target.partition("?")
    return path, query
