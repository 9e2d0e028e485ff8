"""The keys of the named tables: `[pixels.NAME]` and `[sinks.NAME]`, one variant per
type (see `tables.py`, whose `SECTIONS` list them with the rest).

A network sink's default endpoints are the ones its client sends to (`networks.py`).
"""

from __future__ import annotations

from proxy.config.keys import (
    BOOLEAN,
    INTEGER,
    NUMBER,
    STRING,
    STRING_TABLE,
    STRINGS,
    Described,
    Key,
    Kind,
    Section,
)
from proxy.config.model import Pixel, Sink
from proxy.config.networks import (
    GOOGLE_ADS_API,
    GOOGLE_ADS_TOKEN_URL,
    INDEED_API,
    INDEED_TOKEN_URL,
    LINKEDIN_API,
    TIKTOK_API,
)

CSP_DIRECTIVES = (
    "default-src", "script-src", "script-src-elem", "style-src", "style-src-elem",
    "img-src", "connect-src", "frame-src", "child-src", "font-src", "media-src",
    "worker-src", "manifest-src", "object-src", "form-action",
)
SINK_METHODS = ("GET", "POST", "PUT", "PATCH")
POSITIONS = ("head", "body")
PIXEL_ID = r"^[0-9]+$"
DIGITS = r"^[0-9]{1,20}$"

CSP = Kind("table of directive = [host sources]", {
    "type": "object", "propertyNames": {"enum": list(CSP_DIRECTIVES)},
    "additionalProperties": {"type": "array", "items": {"type": "string"}}})

_TCF_VENDOR = Key("tcf_vendor", INTEGER, "IAB vendor id whose TCF consent it needs ([consent] tcf)",
                  755, default=Described("none"), minimum=1, maximum=65535)
_EVENT_TABLE = Kind("table of event = string", STRING_TABLE.schema)
PIXELS = Section(
    "pixels", "[pixels.NAME]", "Tags injected into HTML pages, one table per pixel.", (
        Key("type", STRING, "what kind of pixel", "meta", required=True),
        Key("paths", STRINGS, "path patterns of the pages that get it", ["/jobs/*"],
            default=["/**"]),
        Key("csp", CSP, "hosts the pixel needs, added to the page's CSP directives",
            {"script-src": ["https://click.appcast.io"]}),
        _TCF_VENDOR,
    ), Pixel, many="named", variants={
        "meta": (
            Key("pixel_id", STRING, "the Meta pixel id", "123456789012345", required=True,
                pattern=PIXEL_ID),
        ),
        "html": (
            Key("html", STRING, "the snippet, inserted verbatim",
                '<script async src="https://click.appcast.io/pixels/acme-1.js"></script>',
                required=True),
            Key("position", STRING, "before the real `</head>`, or before the last `</body>`",
                "body", choices=POSITIONS),
        ),
        "tiktok": (
            Key("pixel_code", STRING, "the TikTok pixel code", "C4ABCDEFGH12345678",
                required=True, pattern=r"^[A-Z0-9]{10,40}$"),
            Key("event_names", _EVENT_TABLE, "our event name -> TikTok's",
                {"ApplicationCompleted": "SubmitForm"}),
        ),
        "linkedin": (
            Key("partner_id", STRING, "the LinkedIn Insight Tag partner id", "1234567",
                required=True, pattern=DIGITS),
            Key("conversion_ids", _EVENT_TABLE, "our event name -> LinkedIn conversion id",
                {"ApplicationCompleted": "7654321"}),
        ),
        "google": (
            Key("tag_id", STRING, "the Google Ads tag id", "AW-123456789", required=True,
                pattern=r"^AW-[0-9]{1,20}$"),
            Key("send_to", _EVENT_TABLE, "our event name -> the conversion's send_to",
                {"ApplicationCompleted": "AW-123456789/AbC-label"}),
        ),
    })

_SINK_NAMES = Key("event_names", STRING_TABLE, "our event name -> the network's",
                  {"ApplicationCompleted": "SubmitApplication"})
_HEADERS = Key("headers", STRING_TABLE, "extra request headers",
               {"Authorization": "Bearer ${APPCAST_TOKEN}"})
_CLIENT_ID = Key("client_id", STRING, "OAuth client id", "${OAUTH_CLIENT_ID}", required=True)
_CLIENT_SECRET = Key("client_secret", STRING, "OAuth client secret", "${OAUTH_CLIENT_SECRET}",
                     required=True)


def _api(meaning: str, default: str) -> Key:
    return Key("api", STRING, meaning + " (tests point it at a recorder)", default,
               default=default)


def _token_url(default: str) -> Key:
    return Key("token_url", STRING, "OAuth token endpoint", default, default=default)


SINKS = Section(
    "sinks", "[sinks.NAME]", "Where conversions go, one table per destination.", (
        Key("type", STRING, "what kind of destination", "talroo", required=True),
        Key("requires", STRINGS, "click ids a visitor must have, else the sink is skipped",
            ["ccuid"], default=Described('["tlr_sid"] for talroo, ["ittk"] for indeed, else []')),
        Key("timeout", NUMBER, "seconds per delivery attempt", 5, above=0),
        Key("concurrency", INTEGER, "deliveries in flight at once", 8, minimum=1, maximum=64),
        Key("marketing", BOOLEAN, "consent applies to it", False,
            default=Described("true; false for webhook")),
        _TCF_VENDOR,
    ), Sink, many="named", variants={
        "talroo": (
            Key("url", STRING, "conversion endpoint (conversion2.php: event 2)",
                "https://www.jobs2careers.com/conversion2.php", required=True),
            Key("events", STRING_TABLE, "per-event endpoint, by event name",
                {"Hire": "https://www.jobs2careers.com/conversion3.php"}),
        ),
        "meta": (
            Key("pixel_id", STRING, "the Meta pixel (dataset) id", "123456789012345",
                required=True, pattern=PIXEL_ID),
            Key("access_token", STRING, "Conversions API access token", "${META_ACCESS_TOKEN}",
                required=True),
            Key("api", STRING, "Graph API base URL", "https://graph.facebook.com/v21.0"),
            Key("test_event_code", STRING, "sends events as test events (Events Manager)",
                "TEST12345"),
            Key("preview_test_event_code", STRING, "a preview visitor's events are sent as "
                "test events with this code; without it they are not sent", "TEST67890"),
            _SINK_NAMES,
        ),
        "http": (
            Key("url", STRING, "templated URL: {event}, {event_id}, {click.PARAM}, …",
                "${APPCAST_EVENTS_URL}?e={event}&click={click.ccuid}", required=True),
            Key("method", STRING, "request method", "POST", choices=SINK_METHODS),
            _HEADERS,
            Key("body", STRING, "templated request body", '{"event": "{event}"}'),
            _SINK_NAMES,
        ),
        "webhook": (
            Key("url", STRING, "where the signed JSON is POSTed",
                "https://hooks.acme.example/conversions", required=True),
            Key("secret", STRING, "HMAC key of X-Careers-Edge-Signature", "${WEBHOOK_SECRET}",
                required=True),
            _HEADERS,
            _SINK_NAMES,
        ),
        "indeed": (
            _api("Indeed API base URL", INDEED_API),
            _CLIENT_ID, _CLIENT_SECRET,
            _token_url(INDEED_TOKEN_URL),
            Key("scope", STRING, "OAuth scope asked for with the token", "employer_access"),
            Key("guid", STRING, "the partner guid Indeed gave you", "${INDEED_PARTNER_GUID}",
                required=True),
            Key("test_fire", BOOLEAN, "every event sent as testFire", False),
            Key("event_names", STRING_TABLE, "our event name -> JOB_PAGE_LANDED or APPLY_COMPLETE",
                {"ApplicationCompleted": "APPLY_COMPLETE"}),
        ),
        "google_ads": (
            _api("Google Ads API base URL", GOOGLE_ADS_API),
            Key("api_version", STRING, "Google Ads API version", "v25", default=Described("v25")),
            Key("customer_id", STRING, "the Ads account (10 digits, dashes allowed)",
                "123-456-7890", required=True),
            Key("login_customer_id", STRING, "manager account used to log in", "111-222-3333"),
            Key("developer_token", STRING, "Google Ads API developer token",
                "${GOOGLE_ADS_DEVELOPER_TOKEN}", required=True),
            Key("conversion_action", STRING, "conversion action id or resource name",
                "customers/1234567890/conversionActions/987654321"),
            Key("time_zone", STRING, "IANA zone of conversion_date_time", "Europe/Berlin",
                default="UTC"),
            _CLIENT_ID, _CLIENT_SECRET,
            Key("refresh_token", STRING, "OAuth refresh token", "${GOOGLE_ADS_REFRESH_TOKEN}",
                required=True),
            _token_url(GOOGLE_ADS_TOKEN_URL),
            Key("event_names", STRING_TABLE, "our event name -> conversion action",
                {"Hire": "customers/1234567890/conversionActions/111"}),
        ),
        "linkedin": (
            _api("LinkedIn API base URL", LINKEDIN_API),
            Key("api_version", STRING, "LinkedIn-Version header (YYYYMM)", "202603",
                default=Described("202603")),
            Key("access_token", STRING, "Conversions API access token",
                "${LINKEDIN_ACCESS_TOKEN}", required=True),
            Key("conversion", STRING, "the conversion id or urn:lla:llaPartnerConversion URN",
                "urn:lla:llaPartnerConversion:123456"),
            Key("event_names", STRING_TABLE, "our event name -> conversion",
                {"Hire": "urn:lla:llaPartnerConversion:654321"}),
        ),
        "tiktok": (
            _api("TikTok Business API base URL", TIKTOK_API),
            Key("access_token", STRING, "Events API access token", "${TIKTOK_ACCESS_TOKEN}",
                required=True),
            Key("pixel_code", STRING, "the TikTok pixel code (event_source_id)",
                "C4ABCDEFGH12345678", required=True),
            Key("test_event_code", STRING, "sends events as test events", "TEST12345"),
            _SINK_NAMES,
        ),
    })
