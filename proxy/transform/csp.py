"""Let injected pixels run under the page's Content-Security-Policy without loosening it.

Owns the policy rewrite for `Content-Security-Policy`, `…-Report-Only` and
`<meta http-equiv="Content-Security-Policy">`. Every policy is handled on its
own (all enforced policies apply together, so each must allow the pixel):

- scripts: reuse the page's nonce when a policy has one (`CspDecision.nonce`
  goes on the snippet's `<script nonce=…>`); otherwise add `'sha256-…'` of each
  inline script. A directive that relies on `'unsafe-inline'` without any
  nonce or hash gets neither (either would switch `'unsafe-inline'` off for the
  site's own inline scripts) — its inline scripts already run.
- hosts: added to the directive that restricts them. When that directive is
  absent but one it falls back to (`default-src`, …) is present, the directive
  is created as a copy of the fallback plus the hosts, so nothing else changes.
  A policy that does not restrict a kind of resource is left alone for it.
- never added: `'unsafe-inline'`, `'unsafe-eval'`, `*`, schemes.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

CSP: Final = "content-security-policy"
CACHE_SIZE: Final = 256                 # distinct policies (per hosts and script count) kept
CSP_REPORT_ONLY: Final = "content-security-policy-report-only"
SCRIPT_DIRECTIVES: Final = ("script-src-elem", "script-src")
# directive -> the directives it falls back to, nearest first (CSP Level 3).
FALLBACKS: Final[Mapping[str, tuple[str, ...]]] = {
    "script-src": ("default-src",),
    "script-src-elem": ("script-src", "default-src"),
    "style-src": ("default-src",),
    "style-src-elem": ("style-src", "default-src"),
    "img-src": ("default-src",),
    "connect-src": ("default-src",),
    "font-src": ("default-src",),
    "media-src": ("default-src",),
    "object-src": ("default-src",),
    "manifest-src": ("default-src",),
    "frame-src": ("child-src", "default-src"),
    "child-src": ("default-src",),
    "worker-src": ("child-src", "script-src", "default-src"),
}
_NONCE = re.compile(r"'nonce-([A-Za-z0-9+/_=-]+)'", re.IGNORECASE)
_SCRIPT_TAG = re.compile(rb"<script\b([^>]*)>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)
_SRC_ATTR = re.compile(rb"\ssrc\s*=", re.IGNORECASE)
# In every `<meta http-equiv=…>` (attribute names hold no entities); a search for
# it is fast because it starts with a byte that has no case.
META_MARKER: Final = re.compile(rb"-(?i:equiv)")
_ATTR = re.compile(rb"""([^\s/>=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?""")


@dataclass(frozen=True, slots=True)
class CspNeeds:
    """What the injected snippets need: inline script bodies and hosts per directive."""

    inline_scripts: tuple[bytes, ...] = ()
    hosts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CspDecision:
    nonce: str | None          # put on the snippet's <script> tags when set
    headers: list[tuple[str, str]]


def inline_scripts(snippet: bytes) -> tuple[bytes, ...]:
    """The bodies of the inline (no `src`) `<script>` elements of a snippet."""
    return tuple(body for attrs, body in _SCRIPT_TAG.findall(snippet)
                 if not _SRC_ATTR.search(b" " + attrs))


def script_hash(body: bytes) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"


def _directives(policy: str) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for part in policy.split(";"):
        tokens = part.split()
        if tokens:
            out.append((tokens[0].lower(), tokens[1:]))
    return out


def _find(directives: list[tuple[str, list[str]]], name: str) -> list[str] | None:
    for d, tokens in directives:     # the first occurrence wins; repeats are ignored
        if d == name:
            return tokens
    return None


def _script_sources(directives: list[tuple[str, list[str]]]) -> list[list[str]]:
    present = [t for n in SCRIPT_DIRECTIVES if (t := _find(directives, n)) is not None]
    if present:
        return present
    default = _find(directives, "default-src")
    return [default] if default is not None else []


_HASH_SOURCE: Final = re.compile(r"'sha(?:256|384|512)-", re.IGNORECASE)


def allows_scripts_by_hash(headers: Sequence[tuple[str, str]]) -> bool:
    """Whether an enforced policy allows scripts by hash: the page's inline scripts
    must then keep their exact bytes (rewriting a link inside one would block it)."""
    for k, v in headers:
        if k.lower() != CSP or "'sha" not in v.lower():
            continue
        for policy in v.split(","):
            for tokens in _script_sources(_directives(policy)):
                if any(_HASH_SOURCE.match(t) for t in tokens):
                    return True
    return False


def _first_nonce(policies: Sequence[str]) -> str | None:
    for value in policies:
        for policy in value.split(","):
            for tokens in _script_sources(_directives(policy)):
                for t in tokens:
                    if m := _NONCE.fullmatch(t):
                        return m.group(1)
    return None


@lru_cache(maxsize=CACHE_SIZE)
def _nonce_slot(numbered: str) -> int | None:
    """Which nonce of a value (its nonces numbered `N0`, `N1`, … in order) is found."""
    found = _first_nonce([numbered])
    return None if found is None else int(found[1:])


def find_nonce(policies: Sequence[str]) -> str | None:
    """The first nonce a policy allows scripts by, if any.

    Sites send the same policy on every response but for the nonce: the parse
    is cached on the value with its nonces numbered instead."""
    for value in policies:
        parts = _NONCE.split(value)         # text, nonce, text, nonce, …, text
        if len(parts) == 1:
            continue
        numbered = parts[0] + "".join(f"'nonce-N{i // 2}'{parts[i + 1]}"
                                      for i in range(1, len(parts), 2))
        slot = _nonce_slot(numbered)
        if slot is not None:
            return parts[2 * slot + 1]
    return None


def _covered(tokens: list[str], host: str) -> bool:
    lowered = {t.lower().rstrip("/") for t in tokens}
    scheme, _, bare = host.lower().rstrip("/").rpartition("://")
    return bool({host.lower().rstrip("/"), bare, "*", (scheme or "https") + ":"} & lowered)


def _add(tokens: list[str], additions: list[str]) -> list[str]:
    if [t.lower() for t in tokens] == ["'none'"]:
        tokens = []
    return tokens + [a for a in additions if a not in tokens]


def _script_additions(tokens: list[str], hashes: tuple[str, ...], nonce: str | None) -> list[str]:
    lowered = [t.lower() for t in tokens]
    has_nonce_or_hash = any(t.startswith(("'nonce-", "'sha256-", "'sha384-", "'sha512-"))
                            for t in lowered)
    if "'unsafe-inline'" in lowered and not has_nonce_or_hash:
        return []                       # inline already runs; a hash would switch that off
    if nonce is not None and f"'nonce-{nonce}'".lower() in lowered:
        return []
    return list(hashes)


def _rewrite(policy: str, hosts_needed: Mapping[str, tuple[str, ...]], hashes: tuple[str, ...],
             nonce: str | None) -> str:
    directives = _directives(policy)
    if not directives:
        return policy
    changed: dict[str, list[str]] = {}
    created: list[tuple[str, list[str]]] = []

    def extend(name: str, additions: list[str]) -> None:
        if not additions:
            return
        if name in changed:
            changed[name] = _add(changed[name], additions)
            return
        tokens = _find(directives, name)
        if tokens is not None:
            changed[name] = _add(tokens, additions)
            return
        for fb in FALLBACKS.get(name, ("default-src",)):
            base = _find(directives, fb)
            if base is not None:        # restricted by the fallback: copy it, then extend
                created.append((name, _add(changed.get(fb, base), additions)))
                return

    script_names = [n for n in SCRIPT_DIRECTIVES if _find(directives, n) is not None]
    script_hosts = list(hosts_needed.get("script-src", ())) + list(
        hosts_needed.get("script-src-elem", ()))
    for name in script_names or ["script-src"]:
        tokens = _find(directives, name)
        if tokens is None:
            tokens = _find(directives, "default-src") or []
        adds = _script_additions(tokens, hashes, nonce)
        adds += [h for h in script_hosts if not _covered(tokens, h)]
        extend(name, adds)
    for name, hosts in hosts_needed.items():
        name = name.lower()
        if name in SCRIPT_DIRECTIVES:
            continue
        tokens = _find(directives, name)
        if tokens is None:
            tokens = next((t for fb in FALLBACKS.get(name, ("default-src",))
                           if (t := _find(directives, fb)) is not None), None)
        if tokens is not None:
            extend(name, [h for h in hosts if not _covered(tokens, h)])
    if not changed and not created:
        return policy
    seen: set[str] = set()
    parts = []
    for name, tokens in directives:
        if name in changed and name not in seen:
            tokens = changed[name]
        seen.add(name)
        parts.append(" ".join([name, *tokens]))
    parts += [" ".join([name, *tokens]) for name, tokens in created]
    return "; ".join(parts)


# Placeholders the cached rewrite carries instead of this response's hashes and
# nonce: "\x00" never occurs in a header value, nor in a token split on whitespace.
_NONCE_TOKEN: Final = "'nonce-\x00'"


def _hash_slot(i: int) -> str:
    return f"\x00{i}\x00"


@lru_cache(maxsize=CACHE_SIZE)
def _template(policy: str, hosts: _HostsKey, n_hashes: int, nonce: str | None) -> str:
    return _rewrite(policy, dict(hosts), tuple(map(_hash_slot, range(n_hashes))), nonce)


def rewrite_policy(policy: str, needs: CspNeeds, nonce: str | None) -> str:
    """One serialized policy, rewritten to allow `needs` (unchanged when it already does).

    The rewrite is cached per (policy, hosts, number of scripts, nonce); only
    this response's hashes (and nonce) are filled in. The nonce is taken out of
    the key when the policy names it only as `'nonce-…'` tokens, so a policy
    whose nonce changes on every response still hits the cache."""
    scripts = needs.inline_scripts
    if ("\x00" in policy or len(set(scripts)) < len(scripts)
            or ("'sha256-" in policy.lower()
                and any(script_hash(s) in policy for s in scripts))):
        # the hash values themselves matter (repeated, or already allowed): no cache
        return _rewrite(policy, needs.hosts, tuple(map(script_hash, scripts)), nonce)
    token = None
    if nonce is not None:
        named = policy.lower().count(f"nonce-{nonce}".lower())
        if not named:
            nonce = None            # only compared with the policy's tokens: no match either way
        elif named == policy.count(f"'nonce-{nonce}'"):
            token = f"'nonce-{nonce}'"
            policy, nonce = policy.replace(token, _NONCE_TOKEN), "\x00"
    out = _template(policy, hosts_key(needs.hosts), len(scripts), nonce)
    if token is not None:
        out = out.replace(_NONCE_TOKEN, token)
    if "\x00" in out:              # hashes are added: only now are they computed
        for i, s in enumerate(scripts):
            out = out.replace(_hash_slot(i), script_hash(s))
    return out


_HostsKey = tuple[tuple[str, tuple[str, ...]], ...]
_last_hosts: list[tuple[Mapping[str, tuple[str, ...]], _HostsKey]] = []


def hosts_key(hosts: Mapping[str, tuple[str, ...]]) -> _HostsKey:
    """`hosts` as a cache key. A pixel set hands over the same read-only mapping
    on every response, so the last one's key is kept."""
    if _last_hosts and _last_hosts[0][0] is hosts:
        return _last_hosts[0][1]
    key = tuple((k, tuple(v)) for k, v in hosts.items())
    _last_hosts[:] = [(hosts, key)]
    return key


def rewrite_value(value: str, needs: CspNeeds, nonce: str | None) -> str:
    """A header value may hold several policies separated by commas."""
    return ", ".join(rewrite_policy(p.strip(), needs, nonce) for p in value.split(","))


def apply_csp(headers: Sequence[tuple[str, str]], needs: CspNeeds) -> CspDecision:
    """Rewrite every CSP and CSP-Report-Only header; headers keep their order.

    The nonce reused is the first one an enforced policy allows scripts by
    (else a report-only one's); policies without it get the hashes instead.
    """
    enforced: list[str] = []
    report_only: list[str] = []
    for k, v in headers:
        lk = k.lower()
        if lk == CSP:
            enforced.append(v)
        elif lk == CSP_REPORT_ONLY:
            report_only.append(v)
    if not enforced and not report_only:
        return CspDecision(nonce=None, headers=list(headers))
    nonce = find_nonce(enforced) or find_nonce(report_only)
    out = [(k, rewrite_value(v, needs, nonce) if k.lower() in (CSP, CSP_REPORT_ONLY) else v)
           for k, v in headers]
    return CspDecision(nonce=nonce, headers=out)


def _csp_meta_attrs(tag: bytes) -> dict[bytes, bytes] | None:
    """A `<meta>` tag's attributes when it is a CSP meta tag with a content."""
    attrs: dict[bytes, bytes] = {}
    for name, value in _ATTR.findall(tag[len(b"<meta"):].rstrip(b">/")):
        attrs.setdefault(name.lower(), value[1:-1] if value[:1] in (b'"', b"'") else value)
    if attrs.get(b"http-equiv", b"").strip().lower() != CSP.encode() or b"content" not in attrs:
        return None
    return attrs


def is_csp_meta(tag: bytes) -> bool:
    return _csp_meta_attrs(tag) is not None


def rewrite_meta_tag(tag: bytes, needs: CspNeeds, nonce: str | None) -> bytes | None:
    """A `<meta http-equiv="Content-Security-Policy" content=…>` tag, rewritten;
    None for any other tag or when nothing changes."""
    attrs = _csp_meta_attrs(tag)
    if attrs is None:
        return None
    policy = html.unescape(attrs[b"content"].decode("latin-1"))
    new = rewrite_value(policy, needs, nonce)
    if new == policy:
        return None
    content = html.escape(new, quote=False).replace('"', "&quot;").encode("latin-1")
    return b'<meta http-equiv="Content-Security-Policy" content="' + content + b'">'
