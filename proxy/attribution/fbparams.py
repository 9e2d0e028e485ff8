"""Meta's `_fbc` / `_fbp` first-party cookies, built by Meta's own Parameter Builder.

`capi_param_builder.ParamBuilder` decides the values (`fb.<i>.<ms>.<fbclid>.<appendix>`,
`fb.<i>.<ms>.<random>.<appendix>`) and when to set them. Around it this module:
- resolves the eTLD+1 with the Public Suffix List (the builder's own fallback
  drops the first label, which gives `co.uk` for `acme.co.uk`, a Domain browsers
  refuse); IPs and single-label hosts (localhost) get host-only cookies;
- hands the builder only validated input: an fbclid that passed click-id
  validation and `_fbc`/`_fbp` cookies of the documented shape, so nothing a
  client sends is copied into a Set-Cookie unchecked;
- keeps one builder per host (the builder caches the host's eTLD+1 on first use),
  and the host's Set-Cookie attributes beside it.
The builder is asked only when its answer can change something: an fbclid arrived,
or `_fbp` is missing or malformed. Otherwise the cookies are kept as they are.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Sequence
from typing import NamedTuple

from capi_param_builder import EtldPlusOneResolver, ParamBuilder  # type: ignore[import-untyped]
from publicsuffixlist import PublicSuffixList

from proxy.attribution.cookies import FBC_COOKIE, FBP_COOKIE, cookie_attributes

FB_MAX_AGE = 90 * 86400            # Meta's documented lifetime (the builder's DEFAULT_1PC_AGE)
# ASCII digits only: `\d` also takes any Unicode digit ("١٢"), which Meta never writes.
_FBC = re.compile(r"fb\.[0-9]{1,2}\.[0-9]{1,16}\.[A-Za-z0-9._~-]{1,600}")
_FBP = re.compile(r"fb\.[0-9]{1,2}\.[0-9]{1,16}\.[0-9]{1,20}(?:\.[A-Za-z0-9_-]{2,8})?")
_HOSTNAME = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?")
_MAX_BUILDERS = 256


def valid_fbc(value: str | None) -> str | None:
    return value if value and _FBC.fullmatch(value) else None


def valid_fbp(value: str | None) -> str | None:
    return value if value and _FBP.fullmatch(value) else None


class _Fixed(EtldPlusOneResolver):
    def __init__(self, domain: str) -> None:
        self._domain = domain

    def resolve(self, host_name: str) -> str:
        return self._domain


def _hostname(host: str) -> str:
    """Host header -> bare lowercase name (no port, no brackets, no trailing dot)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else ""
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    # Parsing the list takes tens of milliseconds: once per process, not per reload.
    return PublicSuffixList()


# (_fbc, _fbp, their Set-Cookie header values to send: _fbc's first)
FbCookies = tuple[str | None, str | None, Sequence[str]]
_NOTHING_TO_SET: tuple[str, ...] = ()


class _Host(NamedTuple):
    """What one Host header value always gives: its builder and cookie attributes."""

    builder: ParamBuilder
    name: str                   # the hostname the builder is given
    attributes: tuple[str, str]     # after "_fbc=<value>": plain, then Secure


class FbParams:
    def __init__(self) -> None:
        self._psl = _public_suffixes()
        self._hosts: dict[str, _Host] = {}

    def cookie_domain(self, host: str) -> str | None:
        """The Domain attribute for `host`: its eTLD+1, or None (host-only cookie)."""
        name = _hostname(host)
        try:
            ipaddress.ip_address(name)
            return None
        except ValueError:
            pass
        if "." not in name or not _HOSTNAME.fullmatch(name):
            return None
        return self._psl.privatesuffix(name)

    def _host(self, host: str) -> _Host:
        """The builder, hostname and cookie attributes for a Host header value, cached."""
        cached = self._hosts.get(host)
        if cached is None:
            domain = self.cookie_domain(host)
            name = _hostname(host)
            if domain is None and not _HOSTNAME.fullmatch(name):
                name = "localhost"      # hostile or empty Host: index 0, host-only cookie
            builder = ParamBuilder(_Fixed(domain or name))
            if len(self._hosts) >= _MAX_BUILDERS:
                self._hosts.clear()
            plain, secure = (cookie_attributes(FB_MAX_AGE, s, http_only=False, domain=domain)
                             for s in (False, True))
            cached = self._hosts[host] = _Host(builder, name or "localhost", (plain, secure))
        return cached

    def build(self, host: str, fbclid: str | None, fbc_cookie: str | None,
              fbp_cookie: str | None, secure: bool) -> FbCookies:
        """`fbclid` must already be validated; the cookies are validated here."""
        fbc = valid_fbc(fbc_cookie) if fbc_cookie else None
        fbp = valid_fbp(fbp_cookie) if fbp_cookie else None
        if fbclid is None and fbp is not None:
            return fbc, fbp, _NOTHING_TO_SET       # nothing for the builder to change
        builder, name, attributes = self._hosts.get(host) or self._host(host)
        cookies = {}
        if fbc:
            cookies[FBC_COOKIE] = fbc
        if fbp:
            cookies[FBP_COOKIE] = fbp
        queries = {"fbclid": [fbclid]} if fbclid else {}
        # The referer is never passed: its fbclid is validated by the caller instead.
        settings = builder.process_request(name, queries, cookies, None)
        fbc, fbp = builder.get_fbc(), builder.get_fbp()
        if fbc is not None:
            fbc = valid_fbc(fbc)
        if fbp is not None:
            fbp = valid_fbp(fbp)
        set_fbc = set_fbp = False
        for s in settings:          # at most one per name
            if s.name == FBC_COOKIE:
                set_fbc = fbc is not None and s.value == fbc
            elif s.name == FBP_COOKIE:
                set_fbp = fbp is not None and s.value == fbp
        attrs = attributes[secure]
        if set_fbp:
            if set_fbc:
                return fbc, fbp, (f"{FBC_COOKIE}={fbc}{attrs}", f"{FBP_COOKIE}={fbp}{attrs}")
            return fbc, fbp, (f"{FBP_COOKIE}={fbp}{attrs}",)
        if set_fbc:
            return fbc, fbp, (f"{FBC_COOKIE}={fbc}{attrs}",)
        return fbc, fbp, _NOTHING_TO_SET
