"""A transformed page's headers, planned once per distinct set of upstream headers.

Whether a response may be transformed, its headers once it is (`transformed_headers`)
and its CSP rewritten for the pixels (`apply_csp`) depend only on the method, the
status, the upstream's headers and the pixels' hosts: the same for every visitor
of a page until a header changes (Date, every second). Only the hash of this
response's inline script differs; the plan carries a placeholder's hash in its
place, swapped for the real one per response.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from proxy.transform import codecs
from proxy.transform.csp import (
    CSP,
    CSP_REPORT_ONLY,
    CspNeeds,
    allows_scripts_by_hash,
    apply_csp,
    hosts_key,
    script_hash,
)
from proxy.transform.headers import declared_utf16, should_transform, transformed_headers

PLANS: Final = 256
HostsKey = tuple[tuple[str, tuple[str, ...]], ...]     # as `csp.hosts_key` makes it
_SCRIPT: Final = b"\x00the inline script of this response\x00"
_SCRIPT_HASH: Final = script_hash(_SCRIPT)
_CSP_NAMES: Final = (CSP, CSP_REPORT_ONLY)


@dataclass(frozen=True, slots=True)
class HeaderPlan:
    transform: bool                          # False: the response passes through
    headers: tuple[tuple[str, str], ...]     # with the placeholder's hash where it goes
    nonce: str | None                        # the page's nonce the snippet reuses
    encoding: str | None                     # the upstream's Content-Encoding
    coding: str                              # as `codecs.normalize` names it
    hashed: bool                             # a header holds the placeholder's hash
    script_hashes: bool = False              # the page's own CSP allows scripts by hash
    utf16: str | None = None                 # the charset says UTF-16: its codec

    def headers_for(self, script: bytes) -> list[tuple[str, str]] | None:
        """The headers for this response's inline script; None when the policy
        already names its hash (plan it directly)."""
        if not self.hashed:
            return list(self.headers)
        real = script_hash(script)
        out = []
        for k, v in self.headers:
            if _SCRIPT_HASH in v:
                if real in v:
                    return None
                v = v.replace(_SCRIPT_HASH, real)
            out.append((k, v))
        return out


_NO = HeaderPlan(False, (), None, None, "identity", False)


def plan_headers(method: str, status: int, headers: list[tuple[str, str]],
                 hosts: Mapping[str, tuple[str, ...]] | None) -> HeaderPlan:
    """`hosts`: the pixels' CSP hosts, None when no pixel is injected (no CSP change)."""
    if not should_transform(method, status, headers):
        return _NO
    encoding = next((v for k, v in headers if k.lower() == "content-encoding"), None)
    coding = codecs.normalize(encoding)
    if coding is None:
        return _NO
    out = transformed_headers(headers)
    by_hash = allows_scripts_by_hash(headers)
    nonce = None
    if hosts is not None:
        decision = apply_csp(out, CspNeeds(inline_scripts=(_SCRIPT,), hosts=hosts))
        out, nonce = decision.headers, decision.nonce
    hashed = any(_SCRIPT_HASH in v for k, v in out if k.lower() in _CSP_NAMES)
    return HeaderPlan(True, tuple(out), nonce, encoding, coding, hashed, by_hash,
                      declared_utf16(headers))


class HeaderPlans:
    """`plan_headers`, cached by its arguments. Bounded by starting over when full:
    the Date header retires a plan every second anyway, so recency buys nothing."""

    def __init__(self, size: int = PLANS) -> None:
        self._size = size
        self._cache: dict[object, HeaderPlan] = {}

    def get(self, method: str, status: int, headers: list[tuple[str, str]],
            hosts: Mapping[str, tuple[str, ...]] | None,
            key_of_hosts: HostsKey | None = None) -> HeaderPlan:
        """`key_of_hosts`: `csp.hosts_key(hosts)`, when the caller keeps it."""
        if key_of_hosts is None and hosts is not None:
            key_of_hosts = hosts_key(hosts)
        key = (method, status, tuple(headers), key_of_hosts)
        plan = self._cache.get(key)
        if plan is None:
            if len(self._cache) >= self._size:
                self._cache.clear()
            plan = self._cache[key] = plan_headers(method, status, headers, hosts)
        return plan

    def __len__(self) -> int:
        return len(self._cache)
