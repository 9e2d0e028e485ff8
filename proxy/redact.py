"""What never reaches a log: click-id values, e-mail addresses, tokens (`[log] redact`).

`Redactor.url` takes a request target (`/path?query`) or an absolute URL (a
Referer) and replaces with `[redacted]`: the value of every query parameter named
as a click id (`[attribution] params`) or like a credential (`token`,
`access_token`, `api_key`, `password`, `code`, …), any path segment or query value
that holds an e-mail address (also percent-encoded), and the user:password of a URL.
`Redactor.text` does the same in free text (app log messages, tracebacks), where it
also masks `Bearer …`/`Basic …` credentials. Both are pure and cheap on the common
case: a URL with neither a query nor an `@` is returned as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import unquote, unquote_plus

REDACTED: Final = "[redacted]"
# Names whose values are credentials, wherever they appear in a name.
_SECRET_WORDS: Final = (r"token|secret|passw(?:or)?d|pwd|api[_-]?key|apikey|auth|signature"
                        r"|session|credential")
_SECRET_NAME: Final = re.compile(rf"(?i)(?:{_SECRET_WORDS})|^(?:key|sig|code|jwt)$")
_LOCAL: Final = r"[\w.!#$%&'*+/=?^`{|}~-]+"
_DOMAIN: Final = r"[\w-]+(?:\.[\w-]+)+"
_EMAIL: Final = re.compile(rf"{_LOCAL}(?:@|%40){_DOMAIN}", re.IGNORECASE)
_AUTH_SCHEME: Final = re.compile(r"(?i)\b(bearer|basic|token)\s+[\w.~+/=-]{6,}")
_ABSOLUTE: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)(.*)$", re.DOTALL)


def has_email(text: str) -> bool:
    return ("@" in text or "%40" in text) and _EMAIL.search(unquote(text)) is not None


class Redactor:
    """Compiled once per rules file from the click-id params; `enabled=False` passes
    everything through unchanged."""

    def __init__(self, params: Iterable[str] = (), enabled: bool = True) -> None:
        self.enabled = enabled
        self._params = frozenset(p.lower() for p in params)
        names = "|".join(re.escape(p) for p in sorted(self._params, key=len, reverse=True))
        words = f"{names}|" if names else ""
        # name=value, name: value, "name": "value" in free text
        self._pair = re.compile(
            rf"(?i)((?<![\w-])[\w-]*(?:{words}{_SECRET_WORDS})[\w-]*[\"']?\s*[:=]\s*[\"']?)"
            r"([^\s\"'&,;}<>]+)")

    def sensitive(self, name: str) -> bool:
        """Whether a query parameter's value is never logged."""
        name = unquote_plus(name).lower()
        return name in self._params or _SECRET_NAME.search(name) is not None

    def url(self, target: str) -> str:
        if not self.enabled or ("?" not in target and "@" not in target
                                and "%40" not in target):
            return target
        prefix = ""
        m = _ABSOLUTE.match(target)
        if m is not None:
            scheme, authority, target = m.groups()
            if "@" in authority:
                authority = REDACTED + "@" + authority.rpartition("@")[2]
            prefix = scheme + authority
        path, q, query = target.partition("?")
        if "@" in path or "%40" in path:
            path = "/".join(REDACTED if has_email(seg) else seg for seg in path.split("/"))
        if q:
            query = "&".join(self._pair_value(pair) for pair in query.split("&"))
        rest = path + q + query
        if "@" in rest or "%40" in rest:     # one written raw across `/` or `&`
            rest = _EMAIL.sub(REDACTED, rest)
        return prefix + rest

    def _pair_value(self, pair: str) -> str:
        name, eq, value = pair.partition("=")
        if eq and value and self.sensitive(name):
            return name + "=" + REDACTED
        if has_email(pair):
            return (name + "=" + REDACTED) if eq and not has_email(name) else REDACTED
        return pair

    def text(self, message: str) -> str:
        if not self.enabled:
            return message
        if "@" in message or "%40" in message:
            message = _EMAIL.sub(REDACTED, message)
        message = _AUTH_SCHEME.sub(lambda m: m.group(1) + " " + REDACTED, message)
        return self._pair.sub(lambda m: m.group(1) + REDACTED, message)


NO_REDACTION: Final = Redactor(enabled=False)
