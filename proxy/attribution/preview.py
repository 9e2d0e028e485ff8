"""The preview cookie (`ce_preview`): an operator's browser marked as a test visitor.

`GET {prefix}/preview?token=T` (endpoints/preview.py) sets it for an hour; while it
is valid the visitor's events are test events (`Event.preview`). Value:
`<expiry, unix seconds>.<MAC>`, signed like the attribution cookie (`cookies.sign`,
its own label) with the state's secret or, while a key rotates, a previous one.
Anything that does not verify or has expired is not a preview: no error, no cookie
cleared, the visitor is an ordinary one.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from proxy.attribution.cookies import PREVIEW_COOKIE, set_cookie, sign

PREVIEW_SECONDS = 3600
_LABEL = PREVIEW_COOKIE.encode() + b"."
_MAX_VALUE = 64


class PreviewCodec:
    def __init__(self, secret: bytes, previous: Sequence[bytes] = ()) -> None:
        if not secret:
            raise ValueError("the preview cookie needs a non-empty secret")
        self._secrets = (bytes(secret), *(bytes(p) for p in previous if p and p != secret))

    def encode(self, expires: int) -> str:
        payload = str(int(expires)).encode()
        return payload.decode() + "." + sign(self._secrets[0], _LABEL, payload)

    def valid(self, value: str | None, now: float) -> bool:
        if not value or len(value) > _MAX_VALUE or value.count(".") != 1:
            return False
        expiry, _, mac = value.partition(".")
        if not expiry.isdigit() or not expiry.isascii() or int(expiry) <= now:
            return False
        payload = expiry.encode()
        return any(hmac.compare_digest(mac.encode("ascii", "replace"),
                                       sign(s, _LABEL, payload).encode())
                   for s in self._secrets)

    def set_cookie(self, now: float, secure: bool) -> str:
        """The Set-Cookie header value: HttpOnly, SameSite=Lax, an hour."""
        return set_cookie(PREVIEW_COOKIE, self.encode(int(now) + PREVIEW_SECONDS),
                          max_age=PREVIEW_SECONDS, secure=secure, http_only=True)
