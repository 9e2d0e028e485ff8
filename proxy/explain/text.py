"""How `explain` writes: terminal-safe text, JSON laid out by depth, secrets masked."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

import orjson

from proxy.conversions.sinks.base import IDEMPOTENCY_HEADER
from proxy.conversions.sinks.webhook import SIGNATURE_HEADER

MASK = "***"
EXPAND_DEPTH = 3                # Meta's body: top level, the data list, each event
# Header and query names whose values are never printed (matched as substrings).
SECRET_NAMES = ("token", "secret", "key", "password", "auth", "sig")
MAX_SHOWN = 120                 # characters of a user-typed value shown at most
INDENT = "  "


def section(out: list[str], title: str, lines: Sequence[str]) -> None:
    out.append("")
    out.append(title)
    out.extend(INDENT + line for line in lines)


def safe(text: str, limit: int | None = MAX_SHOWN) -> str:
    """Text fit for a terminal: control characters escaped, length bounded."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def json_lines(value: object, expand: int, indent: str = "") -> str:
    """JSON with objects and arrays laid out on lines down to depth `expand`, compact below."""
    if expand <= 0 or not isinstance(value, (dict, list)) or not value:
        return orjson.dumps(value).decode()
    inner = indent + INDENT
    if isinstance(value, dict):
        items = [f"{inner}{orjson.dumps(k).decode()}: {json_lines(v, expand - 1, inner)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    items = [inner + json_lines(v, expand - 1, inner) for v in value]
    return "[\n" + ",\n".join(items) + f"\n{indent}]"


def is_secret_name(name: str) -> bool:
    lname = name.lower()
    return any(word in lname for word in SECRET_NAMES) and lname != IDEMPOTENCY_HEADER.lower()


def mask_header(name: str, value: str) -> str:
    if name.lower() == SIGNATURE_HEADER.lower():
        return value        # an HMAC of the body: says nothing about the secret
    return MASK if is_secret_name(name) else value


def mask_url(url: str) -> str:
    """`url` with credentials and secret-looking query values masked, the rest byte-exact."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rpartition("@")[2]
    segments = []
    for segment in parts.query.split("&") if parts.query else ():
        name, eq, _ = segment.partition("=")
        segments.append(f"{name}={MASK}" if eq and is_secret_name(unquote(name)) else segment)
    return parts._replace(netloc=netloc, query="&".join(segments)).geturl()
