"""The recorder's Indeed, Google Ads, LinkedIn and TikTok, and their OAuth token endpoints.

Each handler checks a request against the shape its network documents and answers
as that network does, so a sink that drifts from the documentation fails its tests:

    POST /oauth/{any}                                 OAuth 2 token (client credentials,
                                                      refresh token)
    POST /enterprise/conversions/v1/events            Indeed Conversion Tracking API
    POST /v{N}/customers/{id}:uploadClickConversions  Google Ads (partial failure)
    POST /rest/conversionEvents                       LinkedIn (create, BATCH_CREATE)
    POST /open_api/v1.3/event/track/                  TikTok Events API (errors: 200 + code)

Tokens issued by the token endpoint are the only bearer tokens Indeed and Google Ads
accept; `revoke_tokens()` makes them all stale, as an expiry would.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import hdrs, web

from proxy.demo.shapes import indeed_problem, json_or_none, linkedin_problem, tiktok_problem

INDEED_PATH = "/enterprise/conversions/v1/events"
GOOGLE_PATH = r"/{version:v[0-9]+}/customers/{customer:[0-9]+}:uploadClickConversions"
GOOGLE_CLICKS = ("gclid", "gbraid", "wbraid")
GOOGLE_MAX = 2000
GOOGLE_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d")
GOOGLE_CONSENT = {"GRANTED", "DENIED", "UNSPECIFIED", "UNKNOWN"}
LINKEDIN_PATH = "/rest/conversionEvents"
TIKTOK_PATH = "/open_api/v1.3/event/track/"
TIKTOK_MAX = 1000


@dataclass(slots=True)
class AdNetworks:
    """What the stand-ins remember and what tests script."""

    token_ttl: int = 3600
    clients: dict[str, str] = field(default_factory=dict)   # id -> secret; empty: any
    tokens: set[str] = field(default_factory=set)           # issued and not revoked
    google_rejects: dict[str, str] = field(default_factory=dict)   # click id -> reason
    google_orders: set[tuple[str, str]] = field(default_factory=set)   # (action, orderId)
    linkedin_rejects: set[str] = field(default_factory=set)   # eventIds answered 400

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/oauth/{tail:.*}", self.token)
        app.router.add_post(INDEED_PATH, self.indeed)
        app.router.add_post(GOOGLE_PATH, self.google_ads)
        app.router.add_post(LINKEDIN_PATH, self.linkedin)
        app.router.add_post(TIKTOK_PATH, self.tiktok)

    # --- OAuth 2 -------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = form.get("grant_type")
        client, secret = form.get("client_id"), form.get("client_secret")
        if grant not in ("client_credentials", "refresh_token"):
            return _oauth_error("unsupported_grant_type", 400)
        if not client or not secret or (self.clients and self.clients.get(str(client)) != secret):
            return _oauth_error("invalid_client", 401)
        if grant == "refresh_token" and not form.get("refresh_token"):
            return _oauth_error("invalid_grant", 400)
        token = "at-" + secrets.token_hex(12)
        self.tokens.add(token)
        return web.json_response({"access_token": token, "token_type": "Bearer",
                                  "expires_in": self.token_ttl})

    def _authorized(self, request: web.Request) -> bool:
        auth = request.headers.get(hdrs.AUTHORIZATION, "")
        return auth.startswith("Bearer ") and auth[7:] in self.tokens

    # --- Indeed --------------------------------------------------------------------

    async def indeed(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "invalid_token"}, status=401)
        events = json_or_none(await request.read())
        if not isinstance(events, list) or not events:
            return web.json_response({"error": "body must be a non-empty array of events"},
                                     status=400)
        for i, e in enumerate(events):
            problem = indeed_problem(e)
            if problem:
                return web.json_response({"error": f"events[{i}]: {problem}"}, status=400)
        return web.json_response({})

    # --- Google Ads ----------------------------------------------------------------

    async def google_ads(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _google_error(401, "UNAUTHENTICATED", "Request had invalid credentials.")
        if not request.headers.get("developer-token"):
            return _google_error(401, "UNAUTHENTICATED", "developer-token header is missing.")
        login = request.headers.get("login-customer-id")
        if login is not None and not login.isdigit():
            return _google_error(400, "INVALID_ARGUMENT", "login-customer-id must be digits.")
        body = json_or_none(await request.read())
        if not isinstance(body, dict) or body.get("partialFailure") is not True:
            return _google_error(400, "INVALID_ARGUMENT", "partialFailure must be true.")
        conversions = body.get("conversions")
        if not isinstance(conversions, list) or not 1 <= len(conversions) <= GOOGLE_MAX:
            return _google_error(400, "INVALID_ARGUMENT", "conversions: 1 to 2000 required.")
        customer = request.match_info["customer"]
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for i, c in enumerate(conversions):
            problem = self._google_problem(customer, c)
            if problem:
                errors.append(_google_failure(i, *problem))
                results.append({})
            else:
                click = next(p for p in GOOGLE_CLICKS if p in c)
                results.append({click: c[click], "conversionAction": c["conversionAction"],
                                "conversionDateTime": c["conversionDateTime"]})
        answer: dict[str, Any] = {"results": results, "jobId": str(secrets.randbelow(2**31))}
        if errors:
            answer["partialFailureError"] = {
                "code": 3, "message": errors[0]["message"],
                "details": [{"@type": "type.googleapis.com/google.ads.googleads.v25.errors."
                             "GoogleAdsFailure", "errors": errors}]}
        return web.json_response(answer)

    def _google_problem(self, customer: str, c: Any) -> tuple[str, str, str] | None:
        """(error kind, reason, message) for a conversion Google would reject."""
        if not isinstance(c, dict):
            return "requestError", "INVALID_INPUT", "a conversion must be an object"
        clicks = [p for p in GOOGLE_CLICKS if c.get(p)]
        if len(clicks) != 1:
            return ("conversionUploadError", "EXACTLY_ONE_CLICK_ID",
                    "exactly one of gclid, gbraid, wbraid is required")
        action = c.get("conversionAction", "")
        if not re.fullmatch(rf"customers/{customer}/conversionActions/\d+", str(action)):
            return "conversionUploadError", "INVALID_CONVERSION_ACTION", f"bad action {action!r}"
        if not GOOGLE_DATE_TIME.fullmatch(str(c.get("conversionDateTime", ""))):
            return ("dateError", "INVALID_STRING_DATE_TIME",
                    "conversionDateTime must be yyyy-mm-dd hh:mm:ss+|-hh:mm")
        consent = c.get("consent", {})
        if not isinstance(consent, dict) or set(consent) - {"adUserData", "adPersonalization"} \
                or set(consent.values()) - GOOGLE_CONSENT:
            return "fieldError", "INVALID_VALUE", "consent takes adUserData, adPersonalization"
        reason = self.google_rejects.get(c[clicks[0]])
        if reason:
            return "conversionUploadError", reason, f"The click was refused: {reason}"
        order = (action, str(c.get("orderId", "")))
        if order[1] and order in self.google_orders:
            return ("conversionUploadError", "CLICK_CONVERSION_ALREADY_EXISTS",
                    "This conversion was already uploaded.")
        self.google_orders.add(order)
        return None

    # --- LinkedIn ------------------------------------------------------------------

    async def linkedin(self, request: web.Request) -> web.Response:
        h = request.headers
        if not h.get(hdrs.AUTHORIZATION, "").startswith("Bearer ") or \
                len(h[hdrs.AUTHORIZATION]) <= 7:
            return _linkedin_error(401, "INVALID_ACCESS_TOKEN", "Invalid access token")
        if not re.fullmatch(r"\d{6}", h.get("LinkedIn-Version", "")):
            return _linkedin_error(400, "VERSION_MISSING", "A version must be present")
        if h.get("X-Restli-Protocol-Version") != "2.0.0":
            return _linkedin_error(400, "PROTOCOL_VERSION", "X-Restli-Protocol-Version 2.0.0")
        body = json_or_none(await request.read())
        if h.get("X-RestLi-Method", "").upper() == "BATCH_CREATE":
            elements = body.get("elements") if isinstance(body, dict) else None
            if not isinstance(elements, list) or not elements:
                return _linkedin_error(400, "INVALID_BATCH", "elements must be a list")
            return web.json_response({"elements": [self._linkedin_status(e)
                                                   for e in elements]})
        status = self._linkedin_status(body)
        if status["status"] != 201:
            return web.json_response(status, status=status["status"])
        return web.Response(status=201)

    def _linkedin_status(self, e: Any) -> dict[str, Any]:
        problem = linkedin_problem(e, time.time() * 1000)
        if problem is None and e.get("eventId") in self.linkedin_rejects:
            problem = "rejected for this test"
        if problem:
            return {"status": 400, "message": problem}
        return {"status": 201}

    # --- TikTok --------------------------------------------------------------------

    async def tiktok(self, request: web.Request) -> web.Response:
        if not request.headers.get("Access-Token"):
            return _tiktok(40105, "Access token is incorrect or has been revoked.")
        body = json_or_none(await request.read())
        if not isinstance(body, dict) or body.get("event_source") != "web" \
                or not body.get("event_source_id"):
            return _tiktok(40002, "event_source must be web, with event_source_id")
        data = body.get("data")
        if not isinstance(data, list) or not 1 <= len(data) <= TIKTOK_MAX:
            return _tiktok(40002, "data must hold 1 to 1000 events")
        for i, e in enumerate(data):
            problem = tiktok_problem(e)
            if problem:
                return _tiktok(40002, f"data[{i}]: {problem}")
        return _tiktok(0, "OK")


def _oauth_error(error: str, status: int) -> web.Response:
    return web.json_response({"error": error}, status=status)


def _google_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": status, "message": message, "status": code}},
                             status=status)


def _google_failure(index: int, kind: str, reason: str, message: str) -> dict[str, Any]:
    return {"errorCode": {kind: reason}, "message": message,
            "location": {"fieldPathElements": [{"fieldName": "conversions", "index": index}]}}


def _linkedin_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"status": status, "code": code, "message": message},
                             status=status)


def _tiktok(code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message,
                              "request_id": secrets.token_hex(8), "data": {}})


def network_of(path: str) -> str | None:
    """Which of these networks a path belongs to, if any."""
    if path.startswith("/oauth/"):
        return "oauth"
    if path == INDEED_PATH:
        return "indeed"
    if path.endswith(":uploadClickConversions"):
        return "google_ads"
    if path == LINKEDIN_PATH:
        return "linkedin"
    if path == TIKTOK_PATH:
        return "tiktok"
    return None


def events_in(network: str, doc: Any) -> int:
    """How many conversions one request of `network` carried (its batch's size)."""
    if network == "indeed" and isinstance(doc, list):
        return len(doc)
    if isinstance(doc, dict):
        key = {"google_ads": "conversions", "linkedin": "elements", "tiktok": "data"}.get(network)
        batch = doc.get(key) if key else None
        if isinstance(batch, list):
            return len(batch)
    return 1


def describe_body(network: str, doc: Any) -> str:
    """One readable line of what a conversion request of `network` carried."""
    if network == "indeed" and isinstance(doc, list):
        return "; ".join(f"{e.get('event')} ittk={e.get('ittk')}"
                         + (" testFire" if e.get("testFire") else "") for e in doc)
    if network == "google_ads" and isinstance(doc, dict):
        return "; ".join(
            " ".join(f"{p}={c[p]}" for p in GOOGLE_CLICKS if p in c)
            + f" order_id={c.get('orderId')} at {c.get('conversionDateTime')}"
            for c in doc.get("conversions", ()))
    if network == "linkedin" and isinstance(doc, dict):
        elements = doc.get("elements", [doc])
        return "; ".join(f"{e.get('conversion')} eventId={e.get('eventId')}" for e in elements)
    if network == "tiktok" and isinstance(doc, dict):
        return "; ".join(f"{e.get('event')} event_id={e.get('event_id')} "
                         f"ttclid={(e.get('user') or {}).get('ttclid')}"
                         for e in doc.get("data", ()))
    return ""
