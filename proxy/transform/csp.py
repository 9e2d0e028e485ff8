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
from typing import Final

CSP: Final = "content-security-policy"
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


def find_nonce(policies: Sequence[str]) -> str | None:
    """The first nonce a policy allows scripts by, if any."""
    for value in policies:
        for policy in value.split(","):
            for tokens in _script_sources(_directives(policy)):
                for t in tokens:
                    if m := _NONCE.fullmatch(t):
                        return m.group(1)
    return None


def _covered(tokens: list[str], host: str) -> bool:
    lowered = {t.lower().rstrip("/") for t in tokens}
    scheme, _, bare = host.lower().rstrip("/").rpartition("://")
    return bool({host.lower().rstrip("/"), bare, "*", (scheme or "https") + ":"} & lowered)


def _add(tokens: list[str], additions: list[str]) -> list[str]:
    if [t.lower() for t in tokens] == ["'none'"]:
        tokens = []
    return tokens + [a for a in additions if a not in tokens]


def _script_additions(tokens: list[str], needs: CspNeeds, nonce: str | None) -> list[str]:
    lowered = [t.lower() for t in tokens]
    has_nonce_or_hash = any(t.startswith(("'nonce-", "'sha256-", "'sha384-", "'sha512-"))
                            for t in lowered)
    if "'unsafe-inline'" in lowered and not has_nonce_or_hash:
        return []                       # inline already runs; a hash would switch that off
    if nonce is not None and f"'nonce-{nonce}'".lower() in lowered:
        return []
    return [script_hash(s) for s in needs.inline_scripts]


def rewrite_policy(policy: str, needs: CspNeeds, nonce: str | None) -> str:
    """One serialized policy, rewritten to allow `needs` (unchanged when it already does)."""
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
    script_hosts = list(needs.hosts.get("script-src", ())) + list(
        needs.hosts.get("script-src-elem", ()))
    for name in script_names or ["script-src"]:
        tokens = _find(directives, name)
        if tokens is None:
            tokens = _find(directives, "default-src") or []
        adds = _script_additions(tokens, needs, nonce)
        adds += [h for h in script_hosts if not _covered(tokens, h)]
        extend(name, adds)
    for name, hosts in needs.hosts.items():
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


def rewrite_value(value: str, needs: CspNeeds, nonce: str | None) -> str:
    """A header value may hold several policies separated by commas."""
    return ", ".join(rewrite_policy(p.strip(), needs, nonce) for p in value.split(","))


def apply_csp(headers: Sequence[tuple[str, str]], needs: CspNeeds) -> CspDecision:
    """Rewrite every CSP and CSP-Report-Only header; headers keep their order.

    The nonce reused is the first one an enforced policy allows scripts by
    (else a report-only one's); policies without it get the hashes instead.
    """
    enforced = [v for k, v in headers if k.lower() == CSP]
    report_only = [v for k, v in headers if k.lower() == CSP_REPORT_ONLY]
    nonce = find_nonce(enforced) or find_nonce(report_only)
    out = [(k, rewrite_value(v, needs, nonce) if k.lower() in (CSP, CSP_REPORT_ONLY) else v)
           for k, v in headers]
    return CspDecision(nonce=nonce, headers=out)


def rewrite_meta_tag(tag: bytes, needs: CspNeeds, nonce: str | None) -> bytes | None:
    """A `<meta http-equiv="Content-Security-Policy" content=…>` tag, rewritten;
    None for any other tag or when nothing changes."""
    attrs: dict[bytes, bytes] = {}
    for name, value in _ATTR.findall(tag[len(b"<meta"):].rstrip(b">/")):
        attrs.setdefault(name.lower(), value[1:-1] if value[:1] in (b'"', b"'") else value)
    if attrs.get(b"http-equiv", b"").strip().lower() != CSP.encode() or b"content" not in attrs:
        return None
    policy = html.unescape(attrs[b"content"].decode("latin-1"))
    new = rewrite_value(policy, needs, nonce)
    if new == policy:
        return None
    content = html.escape(new, quote=False).replace('"', "&quot;").encode("latin-1")
    return b'<meta http-equiv="Content-Security-Policy" content="' + content + b'">'
