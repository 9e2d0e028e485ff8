"""The visitor's IP address behind trusted proxies, found as nginx's realip module finds it.

`real_ip` does what nginx does with `set_real_ip_from` (our `trusted_proxies`),
`real_ip_header X-Forwarded-For` and `real_ip_recursive on`:

    address = the socket peer
    while address is trusted and X-Forwarded-For has entries left:
        take its rightmost remaining entry
        not an IP address (optionally with a port)?  stop: `address` stays as it is
        address = that entry

So a visitor can write anything to the left of what our own balancers append, and it
is never believed: the walk stops at the first address no trusted hop vouches for.
Pure: no I/O; the caller says who is trusted.

What goes upstream (our reasoned choice, documented in the README): the chain from the
visitor's IP rightwards, i.e. the visitor's address, each trusted hop after it, then
the peer, all in canonical form. The entries left of the visitor's address are the
visitor's own words and are dropped, so an upstream that reads the leftmost entry
(the common mistake) still gets the same IP as our access log and the ad networks.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Container, Sequence
from dataclasses import dataclass

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"    # no leading zeros
_IPV4 = re.compile(rf"({_OCTET}(?:\.{_OCTET}){{3}})(?::[0-9]{{1,5}})?")


@dataclass(frozen=True, slots=True)
class RealIp:
    ip: str                      # the visitor's address (the peer's when nothing is believed)
    chain: tuple[str, ...]       # ip, then each trusted hop after it; the peer last

    @property
    def forwarded_for(self) -> bytes:
        """The X-Forwarded-For value to send upstream."""
        return ", ".join(self.chain).encode("ascii", "replace")


def parse_address(entry: str) -> str | None:
    """One X-Forwarded-For entry as a canonical IP address, or None when it is not one.

    Accepted as nginx accepts them: `203.0.113.9`, `203.0.113.9:4711`, `2001:db8::1`,
    `[2001:db8::1]`, `[2001:db8::1]:443`. The port is dropped; a scoped IPv6 address
    (`fe80::1%eth0`) is not a visitor's address and is refused.
    """
    v4 = _IPV4.fullmatch(entry)             # the common case, without ipaddress's cost
    if v4 is not None:
        return v4.group(1)
    text = entry
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1:] if end > 0 else "x"
        if rest and not (rest[0] == ":" and rest[1:].isdigit() and len(rest) <= 6):
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text, _, port = text.partition(":")
        if not (port.isdigit() and len(port) <= 5):
            return None
    if not text or len(text) > 45 or "%" in text:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def xff_values(raw: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
    """Every X-Forwarded-For header value of a raw header list, in order."""
    return [v for n, v in raw if len(n) == 15 and n.lower() == b"x-forwarded-for"]


def xff_entries(values: Sequence[bytes]) -> list[str]:
    """The entries of every X-Forwarded-For header, in order (several headers are one
    list, as RFC 9110 §5.3 says); empty entries are skipped."""
    out: list[str] = []
    for value in values:
        for part in value.split(b","):
            part = part.strip()
            if part:
                out.append(part.decode("latin-1"))
    return out


def real_ip(peer: str, forwarded_for: Sequence[bytes], trusted: Container[str]) -> RealIp:
    """The visitor's IP as the realip walk finds it (see the module docstring)."""
    if peer not in trusted:
        return RealIp(peer, (peer,))
    address = peer
    chain = [peer]
    for entry in reversed(xff_entries(forwarded_for)):
        parsed = parse_address(entry)
        if parsed is None:
            break
        address = parsed
        chain.append(parsed)
        if parsed not in trusted:
            break
    chain.reverse()
    return RealIp(address, tuple(chain))
