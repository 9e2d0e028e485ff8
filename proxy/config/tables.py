"""Every key of the rules file: one declarative table per section (see `keys.py`).

The loader takes its allowed keys from here (an unknown key is an error), and the
configuration reference and the JSON Schema are generated from here — a new key is a
new row. Defaults not written here are the model's (`model.py`); a test loads a
minimal file and checks that the loader's values are the defaults written here.
"""

from __future__ import annotations

from proxy.config.keys import (
    BOOLEAN,
    INTEGER,
    NUMBER,
    SIZE,
    STRING,
    STRING_OR_STRINGS,
    STRING_TABLE,
    STRINGS,
    Described,
    Key,
    Kind,
    Section,
)
from proxy.config.model import (
    AdminSection,
    ApiSection,
    AttributionSection,
    ConsentSection,
    FeedSection,
    LogSection,
    Pixel,
    ProxySection,
    RedirectSection,
    Route,
    Sink,
)
from proxy.detect.spec import Rule

CSP_DIRECTIVES = (
    "default-src", "script-src", "script-src-elem", "style-src", "style-src-elem",
    "img-src", "connect-src", "frame-src", "child-src", "font-src", "media-src",
    "worker-src", "manifest-src", "object-src", "form-action",
)
SINK_METHODS = ("GET", "POST", "PUT", "PATCH")
POSITIONS = ("head", "body")
PIXEL_ID = r"^[0-9]+$"
DIGITS = r"^[0-9]{1,20}$"
# `kind:arg`; the kinds are checked by the loader (rules_section.EXTRACTOR_KINDS)
EXTRACTOR = r"^[a-z_]+:.+"

CSP = Kind("table of directive = [host sources]", {
    "type": "object", "propertyNames": {"enum": list(CSP_DIRECTIVES)},
    "additionalProperties": {"type": "array", "items": {"type": "string"}}})
STATUS = Kind("list of status codes or classes", {
    "anyOf": [{"$ref": "#/$defs/status"},
              {"type": "array", "items": {"$ref": "#/$defs/status"}}]})
EXTRACTOR_TABLE = Kind("table of NAME = \"kind:arg\"", {
    "type": "object", "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
    "additionalProperties": {"type": "string", "pattern": EXTRACTOR}})

PROXY = Section("proxy", "[proxy]", "Where the proxy listens, what it fronts, and how.", (
    Key("listen", STRING, "HOST:PORT to listen on; `--listen` / CAREERS_EDGE_LISTEN win",
        "0.0.0.0:8080"),
    Key("upstream", STRING, "the careers site's origin (the unmodified hosted ATS)",
        "https://acme.hosted-ats.example",
        default=Described("none: `--upstream` or CAREERS_EDGE_UPSTREAM")),
    Key("public_url", STRING, "the public origin; links and cookies name its host",
        "https://careers.acme.example",
        default=Described("from Host and (trusted) X-Forwarded-Proto")),
    Key("prefix", STRING, "path prefix of the proxy's own endpoints", "/_edge"),
    Key("state", STRING, "outbox, dedupe and journeys: sqlite:///ABS, sqlite:REL or redis://",
        "sqlite:///var/lib/careers-edge/state.db"),
    Key("secret", STRING, "HMAC key for signed cookies (the same on every host)",
        "${CAREERS_EDGE_SECRET}", default=Described("generated once and kept in the state")),
    Key("previous_secrets", STRINGS, "earlier cookie keys: cookies they signed still verify "
        "(and are re-signed with secret)", ["${CAREERS_EDGE_OLD_SECRET}"]),
    Key("workers", INTEGER, "worker processes on one port; `--workers` / CAREERS_EDGE_WORKERS",
        2, minimum=1, maximum=256),
    Key("timeout", NUMBER, "seconds to wait for the upstream's response headers, then 504",
        30, above=0),
    Key("connect_timeout", NUMBER, "seconds to connect to the upstream, then 502", 5,
        above=0),
    Key("max_connections", INTEGER, "upstream connections kept at most (per worker)", 256,
        minimum=1),
    Key("trusted_proxies", STRINGS, "CIDRs whose X-Forwarded-For / -Proto are believed",
        ["10.0.0.0/8"]),
    Key("rewrite_links", BOOLEAN, "rewrite absolute upstream-origin URLs in HTML", True),
    Key("access_log", BOOLEAN, 'deprecated: `[log] access`; false means access = "off"', False,
        default=Described("see [log] access")),
    Key("allow_paths", STRINGS, "only these path patterns are proxied; others get 404",
        ["/acme", "/acme/**"], default=Described("every path")),
    Key("hosts", STRINGS, "public hosts served (*.domain: its subdomains); others get 421",
        ["careers.acme.example"],
        default=Described("public_url's host; without it any host (development only)")),
    Key("header_timeout", NUMBER, "seconds to receive a whole request head, then 408 and close",
        10, above=0),
    Key("body_timeout", NUMBER, "seconds of silence while reading a request body, then 408",
        60, above=0),
    Key("keepalive_timeout", NUMBER, "seconds an idle visitor connection is kept open", 75,
        above=0),
    Key("request_buffering", BOOLEAN, "read a request body whole (over 1 MiB: to a file in "
        "$TMPDIR) before taking an upstream connection; false streams it", True),
    Key("max_body", SIZE, "larger request bodies get 413 and are never forwarded (0: no limit)",
        "100MB", default=Described('"100MB" (104857600 bytes)')),
    Key("pool_timeout", NUMBER, "seconds to wait for a free upstream connection, then 503", 5,
        above=0),
), ProxySection)

ATTRIBUTION = Section("attribution", "[attribution]", "Click ids captured from landing URLs.", (
    Key("params", STRINGS, "query parameters captured as click ids", ["tlr_sid", "gclid"]),
    Key("strip", BOOLEAN, "remove captured params from the URL sent upstream", False),
    Key("cookie_days", INTEGER, "lifetime of the attribution and linksClickedId cookies", 30,
        minimum=1, maximum=400),
), AttributionSection)

CONSENT = Section("consent", "[consent]", "When marketing pixels and sinks need consent.", (
    Key("required", BOOLEAN, "marketing pixels and sinks need consent", True),
    Key("cookie", STRING, "the consent cookie's name", "cookie_consent"),
    Key("granted", STRINGS, "values of that cookie that mean yes", ["all", "marketing"]),
    Key("honor_gpc", BOOLEAN, "Sec-GPC: 1 counts as no", True),
    Key("tcf", BOOLEAN, "read an IAB TCF v2.2 TC string from the euconsent-v2 cookie", True),
), ConsentSection)

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
            _api("Indeed API base URL", "https://apis.indeed.com"),
            _CLIENT_ID, _CLIENT_SECRET,
            _token_url("https://apis.indeed.com/oauth/v2/tokens"),
            Key("scope", STRING, "OAuth scope asked for with the token", "employer_access"),
            Key("guid", STRING, "the partner guid Indeed gave you", "${INDEED_PARTNER_GUID}",
                required=True),
            Key("test_fire", BOOLEAN, "every event sent as testFire", False),
            Key("event_names", STRING_TABLE, "our event name -> JOB_PAGE_LANDED or APPLY_COMPLETE",
                {"ApplicationCompleted": "APPLY_COMPLETE"}),
        ),
        "google_ads": (
            _api("Google Ads API base URL", "https://googleads.googleapis.com"),
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
            _token_url("https://oauth2.googleapis.com/token"),
            Key("event_names", STRING_TABLE, "our event name -> conversion action",
                {"Hire": "customers/1234567890/conversionActions/111"}),
        ),
        "linkedin": (
            _api("LinkedIn API base URL", "https://api.linkedin.com"),
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
            _api("TikTok Business API base URL", "https://business-api.tiktok.com"),
            Key("access_token", STRING, "Events API access token", "${TIKTOK_ACCESS_TOKEN}",
                required=True),
            Key("pixel_code", STRING, "the TikTok pixel code (event_source_id)",
                "C4ABCDEFGH12345678", required=True),
            Key("test_event_code", STRING, "sends events as test events", "TEST12345"),
            _SINK_NAMES,
        ),
    })

RULES = Section("rules", "[[rules]]", "Route rules: which responses fire which event.", (
    Key("name", STRING, "the rule's name, unique", "application submitted",
        default=Described("rules[N]")),
    Key("event", STRING, "the event fired", "ApplicationCompleted", required=True),
    Key("method", STRING, "request method to match", "POST", default=Described("any")),
    Key("path", STRING, "path pattern: * one segment, ** several, {name} a capture",
        "/jobs/{job_id}/apply", required=True),
    Key("status", STATUS, 'response statuses to match; "3xx" for a class', [302, 303],
        default=Described("any")),
    Key("location", STRING, "pattern the (public) Location must match", "/jobs/*/thanks*"),
    Key("header", STRING_TABLE, "response headers that must match a glob",
        {"Content-Type": "text/html*"}, default={}),
    Key("query", STRING_TABLE, "request URL parameters that must match a glob",
        {"op": "submit*"}, default={}),
    Key("body", STRING, "substring (or regex:…) the HTML response must contain",
        "Thank you for applying"),
    Key("json", STRING_TABLE, "JMESPath expression = glob its result must match, in the JSON "
        "answer", {"data.submit.accepted": "true"}, default={}),
    Key("request_json", STRING_TABLE, "the same in the JSON request body (its first 256 KiB)",
        {"operationName": "SubmitApplication"}, default={}),
    Key("job_name", STRING,
        "extractor of the job name: css:, form:, json:, path:, query:, regex:, …",
        "form:job_title", pattern=EXTRACTOR),
    Key("extract", EXTRACTOR_TABLE, "more values for sink templates, by name",
        {"location": "css:.job-location"}),
    Key("send_to", STRING_OR_STRINGS, "sinks the event goes to", ["talroo", "meta"]),
    Key("continue", BOOLEAN, "let later rules fire too", True, attr="continue_"),
    Key("dedupe_hours", NUMBER, "an event fires once per visitor and job in this window", 48,
        minimum=0),
), Rule, many="array")

API = Section("api", "[api]", "The events API for server-side events such as Hire.", (
    Key("token", STRING, "bearer token of POST {prefix}/api/events", "${CAREERS_EDGE_API_TOKEN}",
        default=Described("none: the API answers 404")),
    Key("send_to", STRINGS, "sinks its events go to", ["talroo", "ats"],
        default=Described("every sink")),
), ApiSection)

REDIRECT = Section("redirect", "[redirect]", "The redirect page {prefix}/go?to=URL.", (
    Key("allow", STRINGS, "URL patterns it may send visitors to", ["https://wa.me/*"]),
    Key("send_to", STRINGS, "sinks that get the RedirectPage server event", ["meta"]),
), RedirectSection)

FEED = Section("feed", "[feed]", "The XML job feed {prefix}/feed.xml.", (
    Key("enabled", BOOLEAN, "serve the feed", True),
    Key("publisher", STRING, "`<publisher>` and each job's `<company>`", "Acme GmbH"),
    Key("publisher_url", STRING, "`<publisherurl>`", "https://www.acme.example",
        default=Described("the public origin")),
    Key("sitemap", BOOLEAN, "also crawl the upstream's sitemap for job pages", True),
    Key("crawl_interval", NUMBER, "seconds between sitemap crawls", 1800, above=0),
    Key("crawl_rate", NUMBER, "sitemap crawl requests per second at most", 1, above=0),
    Key("url_params", STRING_TABLE, "query parameters added to each job URL",
        {"utm_source": "talroo"}),
    Key("expire_days", INTEGER, "days a job stays after it was last seen", 14, minimum=1),
), FeedSection)

ADMIN = Section("admin", "[admin]", "The operators' listener: healthz, readyz, metrics, "
                "the operators' API and UI ({prefix}/ui/); and the preview link.", (
    Key("listen", STRING, 'HOST:PORT, or "off"; `--admin-listen` / CAREERS_EDGE_ADMIN_LISTEN win',
        "0.0.0.0:9180"),
    Key("token", STRING, "bearer token every admin path but healthz and the UI's static "
        "files asks for",
        "${CAREERS_EDGE_ADMIN_TOKEN}", default=Described("none: no token asked")),
    Key("preview_token", STRING, "{prefix}/preview?token=… on the public listener makes a "
        "browser a test visitor for an hour", "${CAREERS_EDGE_PREVIEW_TOKEN}",
        default=Described("none: no preview link")),
), AdminSection)

ROUTES = Section("routes", "[[routes]]", "Other upstreams, each serving a public path prefix "
                 "(its upstream path replaces the prefix, as nginx's proxy_pass with a URI).", (
    Key("prefix", STRING, 'public path prefix, starting and ending with "/"; the longest wins',
        "/apply/", required=True, pattern=r"^/.*/$"),
    Key("upstream", STRING, 'http(s) URL whose path (ending with "/") replaces the prefix',
        "https://boards.greenhouse.io/embed/", required=True),
), Route, many="array")

# The top level, in the order the reference shows them.
LOG = Section("log", "[log]", "The access log (stdout) and the proxy's own log lines (stderr).", (
    Key("access", STRING, "one line per request: JSON, nginx's combined, or none", "combined",
        choices=("json", "combined", "off")),
    Key("format", STRING, "the proxy's own lines, one per record (tracebacks included)", "json",
        choices=("text", "json")),
    Key("level", STRING, "debug, info, warning, error or critical, any case; `--log-level`, "
        "then CAREERS_EDGE_LOG_LEVEL win", "warning"),
    Key("redact", BOOLEAN, "click-id values, e-mail addresses and tokens never reach a log",
        False),
    Key("health", BOOLEAN, "access-log healthz, readyz and metrics requests too", True),
), LogSection)

SECTIONS = (PROXY, ATTRIBUTION, CONSENT, PIXELS, RULES, SINKS, API, REDIRECT, FEED, ADMIN,
            ROUTES, LOG)
