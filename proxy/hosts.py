"""`[proxy] hosts`: the public host names this proxy serves, matched as nginx's
`server_name` matches them.

A Host value (or a trusted X-Forwarded-Host) is first made canonical: lower case,
no trailing dot, IPv6 in brackets, an optional numeric port; anything else is not a
host (`split_host` returns None, the caller answers 400). Then `HostPolicy`
decides whether it is one of ours: the port plays no part unless the entry names one
(`localhost:8080`), `*.acme.example` matches every subdomain of acme.example (not
acme.example itself). A host that is not ours is answered 421 and never forwarded,
so links, Location, cookie Domain and conversion URLs only ever name one of `hosts`.

No list at all means any host (development only: `check` warns).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}"
                   r"[a-z0-9_])?)*")
_PORT = re.compile(r"[0-9]{1,5}")
MAX_HOST = 255


def split_host(value: str) -> tuple[str, str] | None:
    """`Host` value -> (canonical name, port or ""), or None when it is not a host."""
    value = value.strip().lower()
    if not value or len(value) > MAX_HOST + 8:
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1:]
        try:
            if not isinstance(ipaddress.ip_address(name), ipaddress.IPv6Address) or "%" in name:
                return None
        except ValueError:
            return None
        name = f"[{ipaddress.IPv6Address(name)}]"
    else:
        name, colon, port = value.partition(":")
        rest = colon + port
        name = name.removesuffix(".")
        if len(name) > MAX_HOST or not _NAME.fullmatch(name):
            return None
    port = ""
    if rest:
        if rest[0] != ":" or not _PORT.fullmatch(rest[1:]) or int(rest[1:]) > 65535:
            return None
        port = rest[1:]
    return name, port


def host_entry_problem(entry: str) -> str | None:
    """Why a `hosts` entry is unusable, or None (for the config reader)."""
    name = entry[2:] if entry.startswith("*.") else entry
    if split_host(name) is None or "*" in name:
        return (f"{entry!r} is not a host name: write careers.acme.example, "
                "*.acme.example (its subdomains), or host:port")
    return None


MISDIRECTED = 421       # a host we do not serve
BAD_HOST = 400          # not a host name at all


class HostPolicy:
    """Which canonical hosts are ours; compiled once per rules file."""

    _CACHE = 1024

    def __init__(self, entries: Sequence[str] | None) -> None:
        self.any = entries is None
        self._seen: dict[str, tuple[str, int]] = {}
        self._exact: set[tuple[str, str]] = set()        # (name, port or "")
        self._suffixes: list[tuple[str, str]] = []        # (".acme.example", port or "")
        for entry in entries or ():
            wildcard = entry.startswith("*.")
            parts = split_host(entry[2:] if wildcard else entry)
            if parts is None:
                raise ValueError(host_entry_problem(entry))
            if wildcard:
                self._suffixes.append(("." + parts[0], parts[1]))
            else:
                self._exact.add(parts)

    def resolve(self, value: str) -> tuple[str, int]:
        """(canonical host, 0) for a Host value that is ours, else ("", BAD_HOST or
        MISDIRECTED). Remembered: visitors send the same few values again and again."""
        hit = self._seen.get(value)
        if hit is None:
            parts = split_host(value)
            if parts is None:
                hit = ("", BAD_HOST)
            elif not self.serves(*parts):
                hit = ("", MISDIRECTED)
            else:
                hit = (f"{parts[0]}:{parts[1]}" if parts[1] else parts[0], 0)
            if len(value) <= 64:            # anyone can send a Host: keep the memory small
                if len(self._seen) >= self._CACHE:
                    self._seen.clear()
                self._seen[value] = hit
        return hit

    def serves(self, name: str, port: str = "") -> bool:
        """Whether a host (as `split_host` gives it) is one of ours."""
        if self.any:
            return True
        for want in (port, "") if port else ("",):
            if (name, want) in self._exact:
                return True
            if any(p == want and name.endswith(s) for s, p in self._suffixes):
                return True
        return False
