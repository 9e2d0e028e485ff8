"""The indeed, google_ads, linkedin and tiktok sinks pointed at the demo recorder, which
checks each request against the shape its network documents."""

from __future__ import annotations

import time
from collections.abc import Sequence

import aiohttp

from proxy.config.model import Sink
from proxy.conversions.backoff import Decision
from proxy.conversions.events import Event
from proxy.conversions.sinks import build_sink
from proxy.demo.recorder import RecordedRequest, Recorder

ITTK = "1a2b3c4d5e6f7g8h"
GCLID = "Cj0KCQiA-gclid_1"
LI_FAT_ID = "df5gf5-gh6t7-ph4j7h-fgf6n1"
TTCLID = "E.C.P.ttclid-1"
CUSTOMER = "1234567890"


async def serve(aiohttp_server) -> tuple[Recorder, str]:
    rec = Recorder()
    server = await aiohttp_server(rec.build_app())
    return rec, f"http://{server.host}:{server.port}"


def indeed(base: str, **kw) -> Sink:
    kw = {"api": base, "token_url": base + "/oauth/v2/tokens", "client_id": "cid",
          "client_secret": "csecret", "guid": "partner-guid", "requires": ("ittk",), **kw}
    return Sink("indeed", "indeed", **kw)


def google_ads(base: str, **kw) -> Sink:
    kw = {"api": base, "token_url": base + "/oauth/token", "client_id": "gid",
          "client_secret": "gsecret", "refresh_token": "1//refresh", "customer_id": CUSTOMER,
          "developer_token": "devtok", "conversion_action": "555", "api_version": "v25", **kw}
    return Sink("google_ads", "google_ads", **kw)


def linkedin(base: str, **kw) -> Sink:
    kw = {"api": base, "access_token": "li-token", "conversion": "104",
          "api_version": "202603", **kw}
    return Sink("linkedin", "linkedin", **kw)


def tiktok(base: str, **kw) -> Sink:
    kw = {"api": base, "access_token": "tt-token", "pixel_code": "CABCDEF1234567890XYZ", **kw}
    return Sink("tiktok", "tiktok", **kw)


def event(**kw) -> Event:
    base = {"name": "ApplicationCompleted", "event_id": "e1", "event_time": time.time() - 60,
            "links_clicked_id": "LCID-1", "job_id": "42", "job_name": "Nurse (m/f/d)",
            "click_ids": {"ittk": ITTK, "gclid": GCLID, "li_fat_id": LI_FAT_ID,
                          "ttclid": TTCLID},
            "url": "https://careers.acme.example/jobs/42/thanks", "client_ip": "203.0.113.9",
            "user_agent": "Mozilla/5.0", "ttp": "2F7h37YkS1j57AYSKTI7IHhJPYH"}
    base.update(kw)
    return Event(**base)


async def send(sink: Sink, events: Sequence[Event], client=None) -> list[Decision]:
    client = client or build_sink(sink)
    async with aiohttp.ClientSession() as s:
        return await client.send(s, list(events))


def to(rec: Recorder, network: str) -> list[RecordedRequest]:
    return rec.of(network)
