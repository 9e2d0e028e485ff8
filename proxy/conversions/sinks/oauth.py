"""OAuth 2 access tokens for the sinks that need one: fetched once, cached until expiry.

Two grants (RFC 6749): `client_credentials` (Indeed, §4.4) and `refresh_token`
(Google Ads, §6). A token is fetched on first use and reused until its `expires_in`
(less a margin) has passed; `authorized` sends a request with it and, on a 401 from
the API, drops it and tries once more with a fresh one. The token endpoint's answer
becomes a decision like any other: 429, 5xx and timeouts are retried; any other
refusal (wrong client secret, revoked refresh token) is given up with its body, since
asking again cannot help.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlencode

import aiohttp
import orjson
from aiohttp import hdrs

from proxy.conversions.backoff import Decision, GiveUp, Retry, truncate_body
from proxy.conversions.sinks.base import Answer, exchange

EXPIRY_MARGIN = 60.0          # seconds: renew a little before the network would refuse
DEFAULT_LIFETIME = 3600.0     # when the endpoint does not say (both networks use an hour)
FORM = "application/x-www-form-urlencoded"


class TokenSource:
    """One cached bearer token; concurrent senders share a single fetch."""

    def __init__(self, token_url: str, form: Mapping[str, str],
                 timeout: aiohttp.ClientTimeout,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.token_url = token_url
        self._form = urlencode(dict(form)).encode()
        self._timeout = timeout
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0            # tokens asked for, for tests and explain

    async def token(self, session: aiohttp.ClientSession) -> str | Decision:
        async with self._lock:
            if self._token is not None and self._clock() < self._expires:
                return self._token
            self._token = None
            self.fetches += 1
            got = await self._fetch(session)
            if isinstance(got, tuple):
                self._token, lifetime = got
                self._expires = self._clock() + max(lifetime - EXPIRY_MARGIN, 0.0)
                return self._token
            return got

    def invalidate(self, token: str) -> None:
        """The API refused `token`; forget it unless another sender already renewed it."""
        if self._token == token:
            self._token = None

    async def _fetch(self, session: aiohttp.ClientSession) -> tuple[str, float] | Decision:
        answer = await exchange(session, "POST", self.token_url, timeout=self._timeout,
                                headers={hdrs.CONTENT_TYPE: FORM, hdrs.ACCEPT: "application/json"},
                                data=self._form)
        if isinstance(answer, Retry):
            return Retry(f"OAuth token: {answer.error}")
        if not isinstance(answer, Answer):
            return GiveUp(f"OAuth token: {getattr(answer, 'error', 'no answer')}")
        decision = answer.decision()
        if isinstance(decision, Retry):
            return Retry(f"OAuth token: {decision.error}", decision.after)
        if isinstance(decision, GiveUp):
            return GiveUp(f"OAuth token refused by {self.token_url}: {decision.error}",
                          decision.body)
        try:
            doc = orjson.loads(answer.body)
            token = doc["access_token"]
            lifetime = float(doc.get("expires_in") or DEFAULT_LIFETIME)
        except (ValueError, TypeError, KeyError):
            return GiveUp(f"OAuth token: no access_token in the answer of {self.token_url}",
                          truncate_body(answer.body))
        if not isinstance(token, str) or not token:
            return GiveUp(f"OAuth token: empty access_token from {self.token_url}",
                          truncate_body(answer.body))
        return token, lifetime


async def authorized(session: aiohttp.ClientSession, tokens: TokenSource,
                     send: Callable[[str], Awaitable[Answer | Decision]]) -> Answer | Decision:
    """`send(token)`; on a 401, once more with a freshly fetched token."""
    token = await tokens.token(session)
    if not isinstance(token, str):
        return token
    answer = await send(token)
    if isinstance(answer, Answer) and answer.status == 401:
        tokens.invalidate(token)
        token = await tokens.token(session)
        if not isinstance(token, str):
            return token
        answer = await send(token)
    return answer
