"""`careers-edge explain`: one request through the rules file, as a dry run.

No network and no state: the rules are compiled exactly as `run` compiles them
(`compile_runtime`, with a throw-away cookie key), and the same stages the request
path calls (attribution, candidates/classify, pixels, routing, the sinks' request
builders) are called with the values given on the command line. The response is
assumed to be `200 text/html` unless `--status` says otherwise, or JSON when `--json`
gives its body (`explain_json` shows what each JSON expression yields). Values that differ
per visitor are shown as placeholders (`<new>` for a minted visitor id, `<tlr_sid>`
for a click id the visitor lacks). Secrets are masked; anything the user typed is
escaped before it reaches the terminal.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import orjson

from proxy.attribution.clickids import MAX_VALUE_LEN, valid_value
from proxy.attribution.cookies import ATTR_COOKIE, VISITOR_COOKIE
from proxy.attribution.visit import Visit
from proxy.config.model import Config, Sink
from proxy.config.networks import missing_params
from proxy.conversions.events import Event
from proxy.conversions.routing import route, uncarried
from proxy.conversions.sinks import build_sink
from proxy.conversions.sinks.base import IDEMPOTENCY_HEADER, Prepared
from proxy.conversions.sinks.http import HttpSink
from proxy.conversions.sinks.meta import MetaSink, request_body
from proxy.conversions.sinks.talroo import TalrooSink
from proxy.conversions.sinks.webhook import SIGNATURE_HEADER, signature, webhook_body
from proxy.conversions.states import Outcome
from proxy.detect.extractors import BODY_KINDS
from proxy.detect.jsonexpr import JsonDoc
from proxy.detect.matchers import status_matches
from proxy.detect.rules import CompiledRule, Fired, RequestFacts, ResponseFacts
from proxy.detect.spec import Rule, StatusMatch
from proxy.explain_json import condition_lines, request_doc, response_doc, why_not
from proxy.handoff import CARRY_COOKIE
from proxy.hosts import split_host
from proxy.http.headers import EVENTS_HEADER, OriginRewriter
from proxy.http.route_table import PathEscapes, UpstreamRoute
from proxy.http.target import BadTarget, origin_form, split_target
from proxy.runtime import Runtime, compile_runtime
from proxy.transform.headers import should_transform
from proxy.transform.html import DEFAULT_OBSERVE

NEW_VISITOR = "<new>"
PIXEL_WHERE = {
    "meta": "head: base code + PageView; body: noscript image",
    "tiktok": "head: base code, ttq.load + ttq.page(); events via ttq.track",
    "linkedin": "head: Insight Tag; body: noscript image; conversions via lintrk",
    "google": "head: gtag.js config + Consent Mode default; conversions via send_to",
}
CLIENT_IP = "<client ip>"
USER_AGENT = "<User-Agent>"
MASK = "***"
EXPAND_DEPTH = 3                # Meta's body: top level, the data list, each event
# Header and query names whose values are never printed (matched as substrings).
SECRET_NAMES = ("token", "secret", "key", "password", "auth", "sig")
HTML_TYPE = "text/html; charset=utf-8"
JSON_TYPE = "application/json"
MAX_SHOWN = 120                 # characters of a user-typed value shown at most
URL_SHOWN = 400
INDENT = "  "
PLAIN_PARAM = "gclid"           # a param with the plain "URL-safe text" shape


def explain(config: Config, method: str, url: str, *, status: int | None = 200,
            location: str | None = None, body: bytes | None = None,
            form: Mapping[str, str] | None = None, cookie: str | None = None,
            json_body: bytes | None = None, request_json: bytes | None = None) -> str:
    """A readable report of what the proxy would do with `METHOD URL` (no I/O).

    `json_body` is the JSON answer (then the response is JSON, not HTML),
    `request_json` the JSON request body."""
    rt = compile_runtime(config, secrets.token_bytes(32))
    method, status, form = method.upper(), 200 if status is None else status, form or {}
    out: list[str] = []
    try:
        origin, target = _target(url, config)
    except BadTarget as e:
        return f"careers-edge explain: {e}"
    out.append(f"{method} {safe(origin + target, URL_SHOWN)}  →  assumed response {status}"
               + (" (JSON, the --json body)" if json_body is not None else "")
               + (f", Location {safe(location)}" if location else ""))
    refused = _host_refused(rt, origin, target) if "://" in url else None
    if refused:
        out.append(refused)
        return "\n".join(safe(line, limit=None) for line in out)
    if target == rt.prefix or target.startswith(rt.prefix_slash):
        out.append(f"{target.partition('?')[0]} is the proxy's own endpoint (prefix "
                   f"{rt.prefix}): served by the proxy, never forwarded; no rules apply.")
        return "\n".join(safe(line, limit=None) for line in out)

    path, query = split_target(target)
    if rt.allowed is not None and path not in rt.allowed:
        out.append(f"{safe(path)} is not in [proxy] allow_paths: answered 404 by the proxy, "
                   "never forwarded; no click ids, pixels or rules.")
        return "\n".join(safe(line, limit=None) for line in out)
    try:
        route = rt.routes.match(path)
    except PathEscapes as e:
        out.append(f"{safe(path)}: {e}: answered 400 by the proxy, never forwarded.")
        return "\n".join(safe(line, limit=None) for line in out)
    if route is None and (slashed := rt.routes.slash_redirect(path)) is not None:
        out.append(f"{safe(path)} is a route's prefix without its slash: answered 301 to "
                   f"{slashed} by the proxy, never forwarded.")
        return "\n".join(safe(line, limit=None) for line in out)
    visit = rt.attribution.on_request(
        raw_query=query, cookie_header=cookie, host=urlsplit(origin).netloc,
        secure=origin.startswith("https:"), gpc=False)
    if visit.new_visitor:
        visit.links_clicked_id = NEW_VISITOR
    _section(out, "Upstream", _upstream_lines(rt, route))
    _section(out, "Click ids", _click_lines(rt, visit, path, query, route))
    _section(out, "Cookies set", _cookie_lines(visit) or ["(none)"])
    _section(out, "Access log", [_access_line(config, rt, method, target)])
    _section(out, "Consent", [_consent_line(config, visit)])
    ctype = JSON_TYPE if json_body is not None else HTML_TYPE
    headers = [("Content-Type", ctype)] + ([("Location", location)] if location else [])
    transformed = should_transform(method, status, headers)
    _section(out, f"Pixels on {safe(path)}", _pixel_lines(rt, visit, path, method, status,
                                                          transformed))
    docs = (request_doc(request_json), response_doc(json_body))
    transformed_body: bytes | None
    if json_body is not None:
        body, transformed_body = json_body, json_body
    else:
        transformed_body = body if transformed else None
    fired, lines = _rules(rt, method, path, query, status, location, origin, headers,
                          transformed_body, body is not None, form, docs,
                          route.rewriter if route is not None else rt.rewriter)
    _section(out, "Rules", lines)
    page_url = origin + path + ("?" + query if query else "")
    browser = None
    if visit.consent and transformed and rt.pixels.allowed(path, visit.consent_state):
        browser = "browser: tracked on this page with the same event_id"
    elif visit.consent and 300 <= status < 400:
        browser = f"browser: tracked on the next HTML page (carried in the {CARRY_COOKIE} cookie)"
    elif visit.consent and rt.pixels:
        browser = (f"browser: tracked by the page's script from the {EVENTS_HEADER} header "
                   f"(a fetch or XHR), else on the next HTML page ({CARRY_COOKIE} cookie)")
    for f in fired:
        _section(out, f"Sinks for {f.rule.name!r} ({f.event})",
                 _sink_lines(rt, f, visit, page_url, browser))
    return "\n".join(safe(line, limit=None) for line in out)


# --- request side ------------------------------------------------------------


def _access_line(config: Config, rt: Runtime, method: str, target: str) -> str:
    """How the request appears in the access log (`[log]`)."""
    if config.log.access == "off":
        return "not logged ([log] access = \"off\")"
    how = "redacted" if config.log.redact else "NOT redacted: [log] redact = false"
    return f"{method} {rt.redactor.url(target)}  ({config.log.access}, {how})"


def _target(url: str, config: Config) -> tuple[str, str]:
    """(public origin, path-and-query) of an absolute URL or a path."""
    url = url.partition("#")[0]
    if url.startswith("/") or "://" not in url:
        origin = (config.proxy.public_url or f"http://{config.proxy.listen}").rstrip("/")
        return origin, url if url.startswith("/") else "/" + url
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise BadTarget(f"not an http(s) URL or a path: {safe(url)}")
    return f"{parts.scheme.lower()}://{parts.netloc}", origin_form(url, parts.netloc)


def _host_refused(rt: Runtime, origin: str, target: str) -> str | None:
    """Why the proxy would refuse this URL's host (400 or 421), or None."""
    if target.partition("?")[0] == rt.prefix + "/healthz":
        return None
    host = urlsplit(origin).netloc
    parts = split_host(host)
    if parts is None:
        return f"{safe(host)} is not a host name: answered 400, never forwarded."
    if not rt.hosts.serves(*parts):
        return (f"{safe(host)} is not in [proxy] hosts: answered 421 Misdirected Request, "
                "never forwarded; no click ids, pixels or rules.")
    return None


def _why_rejected(param: str, query: str) -> str:
    """`param = value  (why)` for a click id the attribution stage refused."""
    for name, value in parse_qsl(query, keep_blank_values=True, errors="replace"):
        if name != param:
            continue
        if not value:
            why = "empty"
        elif len(value) > MAX_VALUE_LEN:
            why = f"longer than {MAX_VALUE_LEN} characters"
        elif not valid_value(PLAIN_PARAM, value):
            why = "characters outside A-Z a-z 0-9 . _ ~ -"
        else:
            why = "not a UUID" if param == "tlr_sid" else f"not the shape {param} takes"
        return f"{param} = {safe(value, 60)}  ({why})"
    return f"{param}  (invalid value)"


def _upstream_lines(rt: Runtime, route: UpstreamRoute | None) -> list[str]:
    if route is None:
        upstream = rt.upstream_origin if rt.config.proxy.upstream else "<upstream>"
        why = f"[proxy] upstream {upstream}" + ("  (no [[routes]] prefix matches)"
                                                if rt.routes else "")
        return [why]
    return [f"[[routes]] prefix {route.prefix} → {route.upstream}  (Host: {route.host})",
            "links to it in pages, Location and cookies are rewritten to the prefix"]


def _click_lines(rt: Runtime, visit: Visit, path: str, query: str,
                 route: UpstreamRoute | None = None) -> list[str]:
    lines = [f"captured  {p} = {safe(visit.click_ids[p].value)}" for p in visit.captured]
    lines += [f"rejected  {_why_rejected(p, query)}: ignored" for p in visit.rejected]
    if not lines:
        lines.append("none in this URL (configured: " + ", ".join(
            rt.config.attribution.params) + ")")
    if visit.cookie_rejected:
        lines.append(f"{ATTR_COOKIE} cookie refused: tampered, foreign or signed with another key")
    forwarded = query if visit.upstream_query is None else visit.upstream_query
    target = path + ("?" + forwarded if forwarded else "")
    if route is not None:
        url = route.url(target)
    else:
        url = (rt.upstream_origin if rt.config.proxy.upstream else "<upstream>") + target
    lines.append(f"forwarded upstream: {safe(url, URL_SHOWN)}"
                 + ("  (captured params stripped)" if visit.upstream_query is not None else ""))
    return lines


def _cookie_lines(visit: Visit) -> list[str]:
    lines = []
    for header in visit.set_cookies:
        pair, _, attrs = header.partition("; ")
        name, _, value = pair.partition("=")
        if name == VISITOR_COOKIE and visit.links_clicked_id == NEW_VISITOR:
            value = NEW_VISITOR
        elif name == ATTR_COOKIE and value:
            value = "<signed: " + ", ".join(sorted(visit.click_ids)) + ">"
        lines.append(f"{name}={value}; {attrs}")
    return lines


def _consent_line(config: Config, visit: Visit) -> str:
    c = config.consent
    state = visit.consent_state
    if state.tcf is not None or state.tcf_invalid:
        mode = ", ".join(f"{k} {v}" for k, v in state.consent_mode().items())
        if state.tcf is not None:
            tc = state.tcf
            mode += ("; purposes consented " + (" ".join(map(str, sorted(tc.purposes_consent)))
                                                 or "none"))
        storage = "" if state.storage else "; no cookie of ours but linksClickedId"
        return f"{'granted' if state.marketing else 'not given'}: {state.why}{storage} ({mode})"
    if not c.required:
        gpc = "; a visitor sending Sec-GPC: 1 counts as no" if c.honor_gpc else ""
        return f"assumed granted ([consent] required = false{gpc})"
    if visit.consent:
        return f"granted by the {c.cookie} cookie given"
    return (f"not given: [consent] required = true and no {c.cookie} cookie listing "
            f"{' / '.join(c.granted)}; marketing pixels and sinks are suppressed")


def _pixel_lines(rt: Runtime, visit: Visit, path: str, method: str, status: int,
                 transformed: bool) -> list[str]:
    pixels = rt.pixels.for_path(path)
    lines: list[str] = []
    if not pixels:
        lines.append("none match this path")
    elif not visit.consent:
        lines.append("none: no consent (" + ", ".join(p.name for p in pixels) + " would match)")
        pixels = ()
    allowed = rt.pixels.allowed(path, visit.consent_state) if pixels else ()
    for p in pixels:
        if p not in allowed:
            lines.append(f"{p.name:<14} {p.type:<8} not injected: no consent for TCF vendor "
                         f"{p.tcf_vendor} (vendor consent, purposes 1 and 7)")
            continue
        lines.append(f"{p.name:<14} {p.type:<8} {PIXEL_WHERE.get(p.type, '')}"
                     + (f"{p.position}: html snippet" if p.type == "html" else ""))
    pixels = allowed
    if pixels:
        markup = rt.pixels.render(pixels, page_event_id="x", links_clicked_id="x",
                                  consent_mode=visit.consent_state.consent_mode())
        for directive, hosts in markup.csp_hosts.items():
            lines.append(f"CSP adds  {directive} {' '.join(hosts)}")
    if transformed and (pixels or rt.config.proxy.rewrite_links):
        what = "pixels injected" if pixels else "no pixels"
        links = ", links rewritten" if rt.config.proxy.rewrite_links else ""
        lines.append(f"response: transformed while streaming ({what}{links})")
    elif transformed:
        lines.append("response: passes through untouched (nothing to inject or rewrite)")
    else:
        why = "a HEAD request" if method == "HEAD" else \
            f"status {status}" if status != 200 else "not HTML"
        lines.append(f"response: passes through untouched ({why}; only 200 text/html is "
                     "transformed)")
    return lines


# --- rules -------------------------------------------------------------------


def _statuses(status: Sequence[StatusMatch]) -> str:
    return ", ".join(str(s.low) if s.low == s.high else f"{s.low // 100}xx" for s in status)


def _why_not(crule: CompiledRule, resp: ResponseFacts, path: str, body: bytes | None,
             body_given: bool, docs: tuple[JsonDoc | None, JsonDoc | None]) -> str | None:
    rule = crule.rule
    where = rule.location.source if rule.location is not None else ""
    if not status_matches(resp.status, rule.status):
        return f"status {resp.status} is not {_statuses(rule.status)}"
    if crule.location is not None and not crule.location(resp.location, path):
        if not resp.location:
            return f"needs a Location matching {where} (pass --location)"
        return f"Location {safe(resp.location)} does not match {where}"
    if crule.headers is not None and not crule.headers(resp.headers):
        return "header condition not met (explain assumes only Content-Type: text/html)"
    if crule.body is not None:
        if body is None:
            return ("body not read: the response is not 200 text/html" if body_given
                    else f"needs the response body for body {rule.body!r} (pass --body FILE)")
        if not crule.body(body.decode("utf-8", "replace")):
            return f"body has no {rule.body!r}"
    return why_not(rule, *docs)


def _rules(rt: Runtime, method: str, path: str, query: str, status: int,
           location: str | None, origin: str, headers: list[tuple[str, str]],
           body: bytes | None, body_given: bool, form: Mapping[str, str],
           docs: tuple[JsonDoc | None, JsonDoc | None] = (None, None),
           rewriter: OriginRewriter | None = None,
           ) -> tuple[list[Fired], list[str]]:
    candidates = rt.rules.candidates(method, path, query)
    lines = ["candidates (request side matches): "
             + (", ".join(repr(r.name) for r in candidates.rules) or "none")]
    public_location = (rewriter or rt.rewriter).url(location, origin) if location else None
    resp = ResponseFacts(status, dict(headers), public_location)
    sniffed = {k: v for k, v in form.items() if k in candidates.form_fields}
    if unread := sorted(set(form) - set(sniffed)):
        lines.append("form fields no candidate reads (not sniffed): " + ", ".join(
            safe(k, 40) for k in unread))
    if body is not None and len(body) > DEFAULT_OBSERVE:
        lines.append(f"body: only its first {DEFAULT_OBSERVE} bytes are looked at")
        body = body[:DEFAULT_OBSERVE]
    seen = body if candidates.needs_body or candidates.needs_json else None
    req_doc, resp_doc = docs
    fired = candidates.classify(RequestFacts(method, path, query, sniffed, req_doc), resp, seen,
                                resp_doc)
    by_rule = {id(f.rule): f for f in fired}
    stopped: Rule | None = None
    for rule in candidates.rules:
        f = by_rule.get(id(rule))
        if f is not None:
            lines.append(f"FIRES  {rule.name!r} → {rule.event}")
            lines.extend(INDENT * 3 + s for s in condition_lines(rule, req_doc, resp_doc, safe,
                                                                 extractors=False))
            lines.extend(INDENT * 3 + s for s in _fired_values(f, seen, body_given))
            stopped = None if rule.continue_ else rule
            continue
        why = _why_not(CompiledRule.compile(rule), resp, path, seen, body_given, docs)
        if stopped is not None:
            why = f"not tried: {stopped.name!r} fired first (no continue = true)"
        lines.append(f"no     {rule.name!r}: {why or 'could not be evaluated (see the log)'}")
        if stopped is None:
            lines.extend(INDENT * 3 + s for s in condition_lines(rule, req_doc, resp_doc, safe))
    tried = {id(r) for r in candidates.rules}
    for rule in rt.rules.rules:
        if id(rule) not in tried:
            if rule.method and rule.method.upper() != method:
                why = f"method {rule.method}"
            elif rule.path.match(path) is None:
                why = f"path is not {rule.path.source}"
            else:
                why = "query is not " + "&".join(f"{k}={v}" for k, v in rule.query)
            lines.append(f"--     {rule.name!r}: not a candidate ({why})")
    return fired, lines


def _fired_values(f: Fired, body: bytes | None, body_given: bool) -> list[str]:
    lines = [f"job_id = {safe(f.job_id or '(none)')}"]
    ex = f.rule.job_name
    if f.job_name is not None:
        lines.append(f"job_name = {safe(f.job_name)}  ({ex.source if ex else ''})")
    elif ex is None:
        lines.append("job_name: (no job_name in this rule)")
    elif ex.kind == "form":
        lines.append(f"job_name: (none: pass --form {ex.arg}=VALUE)")
    elif ex.kind in ("json", "request_json"):
        flag = "--request-json" if ex.kind == "request_json" else "--json"
        lines.append(f"job_name: (none: {ex.source} found nothing in the {flag} body)")
    elif ex.kind in BODY_KINDS and body is None:
        hint = "not read on this response" if body_given else "pass --body FILE"
        lines.append(f"job_name: (none: {ex.source} reads the response body; {hint})")
    else:
        lines.append(f"job_name: (none: {ex.source} found nothing)")
    lines += [f"{k} = {safe(v)}" for k, v in f.fields.items()]
    if f.rule.dedupe_hours:
        lines.append(f"dedupe: once per visitor, event and job within {f.rule.dedupe_hours:g} h")
    return lines


# --- sinks -------------------------------------------------------------------


def _sink_lines(rt: Runtime, f: Fired, visit: Visit, page_url: str,
                browser: str | None) -> list[str]:
    event = Event(name=f.event, links_clicked_id=visit.links_clicked_id,
                  click_ids={k: c.value for k, c in visit.click_ids.items()},
                  job_id=f.job_id, job_name=f.job_name, url=page_url, client_ip=CLIENT_IP,
                  user_agent=USER_AGENT, fbc=visit.fbc, fbp=visit.fbp, ttp=visit.ttp,
                  consent_mode=visit.consent_state.event_signals(),
                  fields=dict(f.fields), rule=f.rule.name, dedupe_hours=f.rule.dedupe_hours)
    sinks = [rt.sinks[n] for n in f.rule.send_to if n in rt.sinks]
    plan = route(event, sinks, consent=visit.consent_state)
    lines = [f"event_id {event.event_id} (new per event; the browser pixel shares it)"]
    if browser:
        lines.append(browser)
    for name in f.rule.send_to:
        sink = rt.sinks.get(name)
        if sink is None:
            lines.append(f"{name}: undefined sink")
            continue
        outcome = plan[name]
        head = f"{name} ({sink.type}): "
        if outcome == Outcome.SUPPRESSED:
            vendor = sink.tcf_vendor is not None and visit.consent
            lines.append(head + "suppressed: " + (
                f"no consent for TCF vendor {sink.tcf_vendor} (vendor consent, purposes 1 "
                "and 7)" if vendor else "no consent"))
            continue
        missing = [p.partition("|")[0] for p in missing_params(sink, event.click_ids)]
        shown = event
        cannot = uncarried(sink, event)
        if outcome == Outcome.SKIPPED and cannot:
            lines.append(head + f"skipped: {cannot}")
            continue
        if outcome == Outcome.SKIPPED:
            lines.append(head + "skipped: requires " + ", ".join(
                m.replace("|", " or ") for m in missing_params(sink, event.click_ids))
                + "; a visitor who has it would get:")
            shown = replace(event, click_ids={**event.click_ids,
                                              **{p: f"<{p}>" for p in missing}})
        elif outcome == Outcome.QUEUED:
            lines.append(head + "queued (durable outbox), then:")
        lines.extend(INDENT * 2 + s for s in _payload(sink, shown, missing))
    return lines


def _payload(sink: Sink, event: Event, placeholders: Sequence[str]) -> list[str]:
    def show(text: str) -> str:
        for p in placeholders:     # a placeholder reads as itself, not percent-encoded
            text = text.replace(quote(f"<{p}>", safe=""), f"<{p}>")
        return text

    if sink.type == "talroo":
        url = TalrooSink(sink).url_for(event)
        return [f"GET {show(mask_url(str(url)))}"]
    if sink.type == "meta":
        body = orjson.loads(request_body(sink, [event]))
        if body.get("access_token"):
            body["access_token"] = MASK
        return [f"POST {mask_url(MetaSink(sink).url)}", "Content-Type: application/json",
                *json_lines(body, EXPAND_DEPTH).splitlines()]
    prepare = getattr(build_sink(sink), "prepare", None)
    if prepare is not None:                 # indeed, google_ads, linkedin, tiktok
        return _prepared(sink, prepare([event], MASK))
    if sink.type == "http":
        try:
            url, headers, data = HttpSink(sink).build(event)
        except ValueError as e:
            return [f"not sendable: bad request template: {e}"]
        lines = [f"{sink.method.upper()} {show(mask_url(str(url)))}"]
        lines += [f"{k}: {mask_header(k, v)}" for k, v in headers.items()]
        if data is not None:
            lines.append(show(data.decode("utf-8", "replace")))
        return lines
    body = webhook_body(sink, event)
    headers = {**sink.headers, "Content-Type": "application/json",
               IDEMPOTENCY_HEADER: event.event_id}
    if sink.secret:
        headers[SIGNATURE_HEADER] = signature(sink.secret, body)
    return [f"POST {mask_url(sink.url or '')}",
            *(f"{k}: {mask_header(k, v)}" for k, v in headers.items()), body.decode()]


def _prepared(sink: Sink, req: Prepared) -> list[str]:
    lines = []
    if sink.token_url:
        lines.append(f"(access token: POST {mask_url(sink.token_url)}, cached until it expires)")
    lines.append(f"{req.method} {mask_url(req.url)}")
    lines += [f"{k}: {mask_header(k, v)}" for k, v in req.headers.items()]
    return lines + json_lines(orjson.loads(req.body), EXPAND_DEPTH).splitlines()


# --- display -----------------------------------------------------------------


def _section(out: list[str], title: str, lines: Sequence[str]) -> None:
    out.append("")
    out.append(title)
    out.extend(INDENT + line for line in lines)


def safe(text: str, limit: int | None = MAX_SHOWN) -> str:
    """Text fit for a terminal: control characters escaped, length bounded."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def json_lines(value: object, expand: int, indent: str = "") -> str:
    """JSON with objects and arrays laid out on lines down to depth `expand`, compact below."""
    if expand <= 0 or not isinstance(value, (dict, list)) or not value:
        return orjson.dumps(value).decode()
    inner = indent + INDENT
    if isinstance(value, dict):
        items = [f"{inner}{orjson.dumps(k).decode()}: {json_lines(v, expand - 1, inner)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    items = [inner + json_lines(v, expand - 1, inner) for v in value]
    return "[\n" + ",\n".join(items) + f"\n{indent}]"


def is_secret_name(name: str) -> bool:
    lname = name.lower()
    return any(word in lname for word in SECRET_NAMES) and lname != IDEMPOTENCY_HEADER.lower()


def mask_header(name: str, value: str) -> str:
    if name.lower() == SIGNATURE_HEADER.lower():
        return value        # an HMAC of the body: says nothing about the secret
    return MASK if is_secret_name(name) else value


def mask_url(url: str) -> str:
    """`url` with credentials and secret-looking query values masked, the rest byte-exact."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rpartition("@")[2]
    segments = []
    for segment in parts.query.split("&") if parts.query else ():
        name, eq, _ = segment.partition("=")
        segments.append(f"{name}={MASK}" if eq and is_secret_name(unquote(name)) else segment)
    return parts._replace(netloc=netloc, query="&".join(segments)).geturl()
