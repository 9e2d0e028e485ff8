"""The rules file as frozen values: what every other module reads, never writes.

`load.py` turns TOML into these; nothing here parses or validates. Patterns are
compiled once (`detect.patterns.PathPattern`) so the request path only matches;
a rule's own values (`Rule`, `StatusMatch`, `Extractor`) live in `detect.spec`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from proxy.detect.spec import Rule

if TYPE_CHECKING:
    from proxy.detect.patterns import PathPattern

DEFAULT_PARAMS = (
    "tlr_sid", "fbclid", "gclid", "gbraid", "wbraid", "msclkid",
    "ttclid", "li_fat_id", "ittk", "ccuid",
)
DEFAULT_STATE = "sqlite:.careers-edge/state.db"
DEFAULT_PREFIX = "/_edge"


def frozen_map(d: Mapping | None = None) -> Mapping:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True, slots=True)
class ProxySection:
    upstream: str
    listen: str = "127.0.0.1:8080"
    public_url: str | None = None
    prefix: str = DEFAULT_PREFIX
    state: str = DEFAULT_STATE
    secret: str | None = None
    previous_secrets: tuple[str, ...] = ()   # still verify cookies they signed
    workers: int = 1
    timeout: float = 30.0
    connect_timeout: float = 10.0
    max_connections: int = 256
    trusted_proxies: tuple[str, ...] = ()
    rewrite_links: bool = True
    access_log: bool | None = None       # deprecated: [log] access; None when not given
    allow_paths: tuple[str, ...] = ()    # empty: every path is proxied
    hosts: tuple[str, ...] = ()          # empty: public_url's host, else any (development)
    header_timeout: float = 10.0         # s for a whole request head, else 408
    body_timeout: float = 60.0           # s of silence while reading a request body, else 408
    keepalive_timeout: float = 75.0      # s an idle visitor connection is kept
    request_buffering: bool = True       # read the whole body before taking an upstream conn
    max_body: int = 100 * 1024 * 1024    # bytes; larger request bodies get 413; 0: no limit
    pool_timeout: float = 5.0            # s to wait for a free upstream connection, else 503


@dataclass(frozen=True, slots=True)
class AttributionSection:
    params: tuple[str, ...] = DEFAULT_PARAMS
    strip: bool = True
    cookie_days: int = 90


@dataclass(frozen=True, slots=True)
class ConsentSection:
    required: bool = False
    cookie: str = "cookie_consent"
    granted: tuple[str, ...] = ("all", "marketing")
    honor_gpc: bool = True
    tcf: bool = False                      # read an IAB TCF v2.2 TC string (euconsent-v2)


@dataclass(frozen=True, slots=True)
class Pixel:
    name: str
    type: Literal["meta", "html", "tiktok", "linkedin", "google"]
    paths: tuple[PathPattern, ...]
    pixel_id: str | None = None            # meta
    html: str | None = None                # html
    position: Literal["head", "body"] = "head"
    csp: Mapping[str, tuple[str, ...]] = field(default_factory=frozen_map)
    pixel_code: str | None = None          # tiktok
    partner_id: str | None = None          # linkedin
    conversion_ids: Mapping[str, str] = field(default_factory=frozen_map)   # linkedin
    tag_id: str | None = None              # google: AW-...
    send_to: Mapping[str, str] = field(default_factory=frozen_map)   # google: AW-.../label
    event_names: Mapping[str, str] = field(default_factory=frozen_map)   # tiktok
    tcf_vendor: int | None = None          # IAB vendor id whose consent it needs


@dataclass(frozen=True, slots=True)
class Sink:
    name: str
    type: Literal["talroo", "meta", "http", "webhook", "indeed", "google_ads", "linkedin",
                  "tiktok"]
    url: str | None = None
    method: str = "GET"
    events: Mapping[str, str] = field(default_factory=frozen_map)       # talroo: event -> url
    pixel_id: str | None = None
    access_token: str | None = None
    api: str = "https://graph.facebook.com/v21.0"
    test_event_code: str = ""
    preview_test_event_code: str = ""       # meta: a preview visitor's events carry it
    event_names: Mapping[str, str] = field(default_factory=frozen_map)  # our event -> sink's name
    requires: tuple[str, ...] = ()
    secret: str | None = None
    headers: Mapping[str, str] = field(default_factory=frozen_map)
    body: str | None = None                 # http: templated body
    timeout: float = 10.0
    concurrency: int = 4
    marketing: bool = True                  # consent applies to it
    tcf_vendor: int | None = None           # IAB vendor id whose consent it needs
    # indeed, google_ads: OAuth 2 (client credentials; Google adds a refresh token)
    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None
    token_url: str | None = None
    scope: str | None = None
    api_version: str | None = None          # google_ads "v25", linkedin "202603"
    guid: str | None = None                 # indeed: partner GUID
    test_fire: bool = False                 # indeed: every event a test event (onboarding)
    customer_id: str | None = None          # google_ads: digits only
    login_customer_id: str | None = None    # google_ads: the manager account, digits only
    developer_token: str | None = None
    conversion_action: str | None = None    # google_ads: resource name
    time_zone: str = "UTC"                  # google_ads: conversion_date_time's zone
    conversion: str | None = None           # linkedin: conversion rule URN
    pixel_code: str | None = None           # tiktok

    def event_name(self, event: str) -> str:
        return self.event_names.get(event, event)


@dataclass(frozen=True, slots=True)
class ApiSection:
    token: str | None = None
    send_to: tuple[str, ...] | None = None      # None: every sink


@dataclass(frozen=True, slots=True)
class RedirectSection:
    allow: tuple[str, ...] = ()
    send_to: tuple[str, ...] = ()               # sinks that get the RedirectPage server event


@dataclass(frozen=True, slots=True)
class FeedSection:
    enabled: bool = False
    publisher: str = ""
    publisher_url: str | None = None
    sitemap: bool = False
    crawl_interval: float = 3600.0
    crawl_rate: float = 2.0                 # requests per second at most
    url_params: Mapping[str, str] = field(default_factory=frozen_map)
    expire_days: int = 30


DEFAULT_ADMIN_LISTEN = "127.0.0.1:9180"


@dataclass(frozen=True, slots=True)
class AdminSection:
    listen: str | None = DEFAULT_ADMIN_LISTEN    # None: no admin listener
    token: str | None = None                     # bearer token for all but healthz
    preview_token: str | None = None             # {prefix}/preview?token=T on the public side


@dataclass(frozen=True, slots=True)
class Route:
    """`[[routes]]`: public paths under `prefix` are served by `upstream`, whose URL path
    replaces the prefix (nginx `proxy_pass` with a URI)."""

    prefix: str                             # "/apply/"
    upstream: str                           # "https://boards.greenhouse.io/embed/"
    line: int | None = None


@dataclass(frozen=True, slots=True)
class LogSection:
    access: Literal["json", "combined", "off"] = "json"
    format: Literal["text", "json"] = "text"     # app log lines
    level: str = "info"                          # lower case; --log-level and env win
    redact: bool = True
    health: bool = False                         # log healthz/readyz/metrics requests


@dataclass(frozen=True, slots=True)
class Config:
    proxy: ProxySection
    attribution: AttributionSection = AttributionSection()
    consent: ConsentSection = ConsentSection()
    pixels: tuple[Pixel, ...] = ()
    rules: tuple[Rule, ...] = ()
    sinks: Mapping[str, Sink] = field(default_factory=frozen_map)
    api: ApiSection = ApiSection()
    redirect: RedirectSection = RedirectSection()
    feed: FeedSection = FeedSection()
    admin: AdminSection = AdminSection()
    log: LogSection = LogSection()
    source: Path | None = None
    routes: tuple[Route, ...] = ()
