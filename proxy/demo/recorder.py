"""A local stand-in for the ad networks: records every request, answers like them.

Routes (any host; point the sinks' URLs at the recorder's base URL):

    GET  /conversion.php | /conversion2.php | /conversion3.php ?tlr_sid=..&Link=true  Talroo
    POST /v21.0/{pixel_id}/events   JSON {"data": [...], "access_token": ...}           Meta CAPI
    *    /hooks/{name}              any body; headers recorded, nothing verified        webhook
    *    /appcast/{tail}            GET pixels and templated events; *.js gets a script Appcast
    Indeed, Google Ads, LinkedIn, TikTok and their OAuth token endpoints: see `networks`

Everything received is kept as a `RecordedRequest` in `Recorder.requests`, in order.
Tests script outages with `fail_next(...)` and await deliveries with `wait_for(...)`;
the demo prints each one with `describe()` from an `on_request` callback.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from proxy.demo.networks import AdNetworks, describe_body, events_in, network_of

TALROO_PATHS = ("/conversion.php", "/conversion2.php", "/conversion3.php")
META_MAX_EVENTS = 1000
META_MAX_AGE = 7 * 24 * 3600        # Meta rejects the whole request if one event is older
META_MAX_AHEAD = 3600               # ... or from too far in the future
SIGNATURE_HEADER = "X-Careers-Edge-Signature"
PIXEL_SUFFIXES = (".js", ".png", ".gif")
PIXEL_JS = b'document.documentElement.dataset.appcastPixel = "loaded";\n'
PIXEL_GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c"
                          "00000000010001000002024401003b")

Predicate = Callable[["RecordedRequest"], bool]
OnRequest = Callable[["RecordedRequest"], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the recorder saw it, and the status it answered."""

    method: str
    path: str
    query_string: str
    query: MultiDictProxy[str]
    headers: CIMultiDictProxy[str]
    body: bytes
    time: float
    status: int
    network: str      # talroo | meta | webhook | appcast | indeed | google_ads | linkedin
                      # | tiktok | oauth | other

    @property
    def is_conversion(self) -> bool:
        """A server-side conversion, not a browser loading a pixel script or image."""
        if self.network == "appcast":
            return not self.path.endswith(PIXEL_SUFFIXES)
        return self.network not in ("other", "oauth")

    @property
    def events(self) -> int:
        """Conversions this request carried: a batch counts its events."""
        if self.network == "meta":
            return len(self.json().get("data", []))
        if self.network in ("indeed", "google_ads", "linkedin", "tiktok"):
            return events_in(self.network, self.json())
        return 1

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def signature_valid(self, secret: str) -> bool:
        """Does the webhook signature header carry the HMAC-SHA256 of the body?"""
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get(SIGNATURE_HEADER, ""), expected)


@dataclass(slots=True)
class _Failure:
    prefix: str
    status: int
    times: int
    retry_after: str | None
    body: bytes
    delay: float
    disconnect: bool


@dataclass(slots=True)
class Recorder:
    """The ad networks' endpoints in one aiohttp app. `strict` validates Meta payloads."""

    on_request: OnRequest | None = None
    strict: bool = True
    requests: list[RecordedRequest] = field(default_factory=list)
    ads: AdNetworks = field(default_factory=AdNetworks)
    _failures: list[_Failure] = field(default_factory=list, init=False, repr=False)
    _changed: asyncio.Event | None = field(default=None, init=False, repr=False)

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024, middlewares=[self._record])
        app.router.add_get("/conversion.php", self._talroo)
        app.router.add_get("/conversion2.php", self._talroo)
        app.router.add_get("/conversion3.php", self._talroo)
        app.router.add_post("/{version:v[0-9.]+}/{pixel_id}/events", self._meta)
        app.router.add_route("*", "/hooks/{name:.*}", self._webhook)
        app.router.add_route("*", "/appcast/{tail:.*}", self._appcast)
        self.ads.add_routes(app)
        return app

    # --- scripting and waiting ------------------------------------------------------

    def fail_next(self, path_prefix: str, status: int = 503, times: int = 1,
                  retry_after: float | str | None = None, body: bytes | str = b"",
                  delay: float = 0.0, disconnect: bool = False) -> None:
        """Answer the next `times` requests under `path_prefix` with `status` (and
        `Retry-After`), after `delay` seconds; `disconnect` drops the connection instead."""
        ra = None if retry_after is None else str(retry_after)
        raw = body.encode() if isinstance(body, str) else body
        self._failures.append(_Failure(path_prefix, status, times, ra, raw, delay, disconnect))

    async def wait_for(self, predicate: Predicate | None = None,
                       timeout: float = 10.0) -> RecordedRequest:
        """The first recorded request matching `predicate`, waiting up to `timeout` s."""
        return (await self.wait_for_all(predicate, 1, timeout))[0]

    async def wait_for_all(self, predicate: Predicate | None = None, count: int = 1,
                           timeout: float = 10.0) -> list[RecordedRequest]:
        """The first `count` matching requests; TimeoutError if they do not all arrive."""
        async def matches() -> list[RecordedRequest]:
            while True:
                found = [r for r in self.requests if predicate is None or predicate(r)]
                if len(found) >= count:
                    return found[:count]
                await self._event().wait()
        return await asyncio.wait_for(matches(), timeout)

    def of(self, network: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.network == network]

    def clear(self) -> None:
        self.requests.clear()
        self._failures.clear()

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _notify(self) -> None:
        # Wake every waiter once, then arm a fresh event for the next request.
        self._event().set()
        self._changed = asyncio.Event()

    def _take_failure(self, path: str) -> _Failure | None:
        for failure in self._failures:
            if path.startswith(failure.prefix):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    # --- the recording middleware ---------------------------------------------------

    @web.middleware
    async def _record(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                      ) -> web.StreamResponse:
        body = await request.read()
        failure = self._take_failure(request.path)
        if failure and failure.delay:
            await asyncio.sleep(failure.delay)
        if failure and failure.disconnect:
            resp: web.StreamResponse | None = None
        elif failure:
            headers = {hdrs.RETRY_AFTER: failure.retry_after} if failure.retry_after else {}
            resp = web.Response(status=failure.status, body=failure.body, headers=headers)
        else:
            try:
                resp = await handler(request)
            except web.HTTPException as exc:    # 404, 405: answered, and recorded too
                resp = web.Response(status=exc.status, body=exc.body, headers=exc.headers)
        rec = RecordedRequest(
            method=request.method, path=request.path, query_string=request.query_string,
            query=MultiDictProxy(MultiDict(request.query)),
            headers=CIMultiDictProxy(CIMultiDict(request.headers)), body=body,
            time=time.time(), status=0 if resp is None else resp.status,
            network=_network(request.path))
        self.requests.append(rec)
        self._notify()
        if self.on_request is not None:
            result = self.on_request(rec)
            if inspect.isawaitable(result):
                await result
        if resp is None:
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError()   # aiohttp drops the connection without an answer
        return resp

    # --- the networks ---------------------------------------------------------------

    async def _talroo(self, request: web.Request) -> web.Response:
        if not request.query.get("tlr_sid"):
            return web.Response(status=400, text="missing tlr_sid")
        return web.Response(text="OK")

    async def _meta(self, request: web.Request) -> web.Response:
        trace = secrets.token_urlsafe(9)
        try:
            payload = json.loads(await request.read())
        except ValueError:
            return _meta_error("Invalid JSON body", 100, trace)
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            return _meta_error("The parameter data is required", 100, trace)
        if self.strict:
            if not payload.get("access_token"):
                return _meta_error("An access token is required", 190, trace, status=401)
            problem = _meta_problem(payload["data"], time.time())
            if problem:
                return _meta_error(problem, 100, trace)
        return web.json_response({"events_received": len(payload["data"]), "messages": [],
                                  "fbtrace_id": trace})

    async def _webhook(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _appcast(self, request: web.Request) -> web.Response:
        tail = request.match_info["tail"]
        if tail.endswith(".js"):
            return web.Response(body=PIXEL_JS, content_type="application/javascript")
        if tail.endswith((".png", ".gif")):
            return web.Response(body=PIXEL_GIF, content_type="image/gif")
        return web.json_response({"status": "accepted"})


# Every network `_network` names: `describe` pads to the longest.
NETWORKS = ("talroo", "meta", "webhook", "appcast", "indeed", "google_ads", "linkedin",
            "tiktok", "oauth", "other")
_NETWORK_WIDTH = max(map(len, NETWORKS))


def _network(path: str) -> str:
    ad = network_of(path)
    if ad is not None:
        return ad
    if path in TALROO_PATHS:
        return "talroo"
    if path.startswith("/v") and path.endswith("/events"):
        return "meta"
    if path.startswith("/hooks/"):
        return "webhook"
    if path.startswith("/appcast/"):
        return "appcast"
    return "other"


def _meta_problem(data: list[Any], now: float) -> str | None:
    """Meta's payload checks that matter to a sender; None when the batch is accepted."""
    if not data or len(data) > META_MAX_EVENTS:
        return f"data must hold 1 to {META_MAX_EVENTS} events"
    for i, event in enumerate(data):
        if not isinstance(event, dict) or not event.get("event_name"):
            return f"event {i}: event_name is required"
        when = event.get("event_time")
        if not isinstance(when, int) or isinstance(when, bool):
            return f"event {i}: event_time must be an integer (Unix seconds)"
        if when < now - META_MAX_AGE or when > now + META_MAX_AHEAD:
            return f"event {i}: event_time is outside the allowed window"
        if event.get("action_source") == "website" and not event.get("event_source_url"):
            return f"event {i}: event_source_url is required for website events"
    return None


def _meta_error(message: str, code: int, trace: str, status: int = 400) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "OAuthException",
                                        "code": code, "fbtrace_id": trace}}, status=status)


def describe(rec: RecordedRequest) -> str:
    """One readable line per delivered conversion, e.g. `→ talroo  conversion2.php  tlr_sid=…`."""
    mark = "→" if 200 <= rec.status < 300 else f"✗ {rec.status or 'dropped'}"
    if rec.network == "talroo":
        detail = f"{rec.path.lstrip('/')}  tlr_sid={rec.query.get('tlr_sid', '')}"
    elif rec.network == "meta":
        detail = _describe_meta(rec)
    elif rec.network == "webhook":
        try:
            doc = rec.json()
            detail = (f"{rec.path}  {doc.get('event')}  jobName={doc.get('jobName')!r}"
                      f"{_on_page(doc.get('url'))}")
        except (ValueError, AttributeError):
            detail = f"{rec.path}  {len(rec.body)} bytes"
    elif rec.network in ("indeed", "google_ads", "linkedin", "tiktok"):
        try:
            detail = describe_body(rec.network, rec.json()) or f"{len(rec.body)} bytes"
        except ValueError:
            detail = f"{len(rec.body)} bytes"
    else:
        detail = rec.path + (f"?{rec.query_string}" if rec.query_string else "")
    return f"{mark} {rec.network:<{_NETWORK_WIDTH}} {detail}"


def _describe_meta(rec: RecordedRequest) -> str:
    try:
        events = rec.json().get("data", [])
        parts = [f"{e.get('event_name')} event_id={e.get('event_id')} "
                 f"jobName={(e.get('custom_data') or {}).get('jobName')!r}"
                 f"{_on_page(e.get('event_source_url'))}" for e in events]
        return "; ".join(parts) or "no events"
    except (ValueError, AttributeError):
        return f"{len(rec.body)} bytes"


def _on_page(url: object) -> str:
    """`  on /jobs/3`: the page the visitor was on (a form post and a quick apply differ)."""
    if not isinstance(url, str) or "://" not in url:
        return ""
    return "  on " + (urlsplit(url).path or "/")
