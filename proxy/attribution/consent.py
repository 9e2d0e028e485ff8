"""Marketing consent from the `[consent]` section, the consent cookie and Sec-GPC.

Decisions:
- `honor_gpc = true`: `Sec-GPC: 1` means "no" whether or not consent is required.
  GPC is a legal opt-out signal (e.g. under CCPA), so it also wins over a consent
  cookie that says yes.
- `required = true`: yes only when the consent cookie lists one of `granted`
  (comma-, pipe- or space-separated, percent-encoding allowed, any letter case).
- `required = false`: yes unless GPC said no.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from proxy.config.model import ConsentSection

_SPLIT = re.compile(r"[,|\s]+")
_MAX_CONSENT_VALUE = 1024


class Consent:
    def __init__(self, section: ConsentSection) -> None:
        self.cookie = section.cookie
        self._required = section.required
        self._honor_gpc = section.honor_gpc
        self._granted = frozenset(g.strip().lower() for g in section.granted)

    def allows(self, cookie_value: str | None, gpc: bool) -> bool:
        if gpc and self._honor_gpc:
            return False
        if not self._required:
            return True
        if not cookie_value or len(cookie_value) > _MAX_CONSENT_VALUE:
            return False
        if "%" in cookie_value:
            cookie_value = unquote(cookie_value, errors="replace")
        tokens = _SPLIT.split(cookie_value.lower())
        return any(t in self._granted for t in tokens)
