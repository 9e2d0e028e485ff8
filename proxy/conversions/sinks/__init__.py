"""Sink clients by `Sink.type`: talroo, meta, http, webhook, indeed, google_ads, linkedin,
tiktok."""

from __future__ import annotations

from collections.abc import Callable

from proxy.config.model import Sink
from proxy.conversions.sinks.base import SinkClient
from proxy.conversions.sinks.google_ads import GoogleAdsSink
from proxy.conversions.sinks.http import HttpSink
from proxy.conversions.sinks.indeed import IndeedSink
from proxy.conversions.sinks.linkedin import LinkedInSink
from proxy.conversions.sinks.meta import MetaSink
from proxy.conversions.sinks.talroo import TalrooSink
from proxy.conversions.sinks.tiktok import TikTokSink
from proxy.conversions.sinks.webhook import WebhookSink

CLIENTS: dict[str, Callable[[Sink], SinkClient]] = {
    "talroo": TalrooSink, "meta": MetaSink, "http": HttpSink, "webhook": WebhookSink,
    "indeed": IndeedSink, "google_ads": GoogleAdsSink, "linkedin": LinkedInSink,
    "tiktok": TikTokSink,
}


def build_sink(sink: Sink) -> SinkClient:
    try:
        cls = CLIENTS[sink.type]
    except KeyError:
        raise ValueError(f"unknown sink type {sink.type!r}") from None
    return cls(sink)


__all__ = ["CLIENTS", "SinkClient", "build_sink"]
