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
    ProxySection,
    RedirectSection,
    Route,
)
from proxy.config.named_tables import PIXELS, SINKS
from proxy.detect.spec import Rule

# `kind:arg`; the kinds are checked by the loader (rules_section.EXTRACTOR_KINDS)
EXTRACTOR = r"^[a-z_]+:.+"

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
