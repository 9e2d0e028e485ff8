"""The report of `explain`: each stage of the request path in turn, as one text."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

from proxy.config.model import Config
from proxy.explain.json_exprs import request_doc, response_doc
from proxy.explain.pixels import pixel_lines
from proxy.explain.request import (
    NEW_VISITOR,
    URL_SHOWN,
    access_line,
    click_lines,
    consent_line,
    cookie_lines,
    host_refused,
    public_target,
    upstream_lines,
)
from proxy.explain.rules import rule_lines
from proxy.explain.sinks import sink_lines
from proxy.explain.text import safe, section
from proxy.handoff import CARRY_COOKIE
from proxy.http.headers import EVENTS_HEADER
from proxy.http.route_table import PathEscapes
from proxy.http.target import BadTarget, split_target
from proxy.runtime import compile_runtime
from proxy.transform.headers import should_transform

HTML_TYPE = "text/html; charset=utf-8"
JSON_TYPE = "application/json"


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
        origin, target = public_target(url, config)
    except BadTarget as e:
        return f"careers-edge explain: {e}"
    out.append(f"{method} {safe(origin + target, URL_SHOWN)}  →  assumed response {status}"
               + (" (JSON, the --json body)" if json_body is not None else "")
               + (f", Location {safe(location)}" if location else ""))
    refused = host_refused(rt, origin, target) if "://" in url else None
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
    section(out, "Upstream", upstream_lines(rt, route))
    section(out, "Click ids", click_lines(rt, visit, path, query, route))
    section(out, "Cookies set", cookie_lines(visit) or ["(none)"])
    section(out, "Access log", [access_line(config, rt, method, target)])
    section(out, "Consent", [consent_line(config, visit)])
    ctype = JSON_TYPE if json_body is not None else HTML_TYPE
    headers = [("Content-Type", ctype)] + ([("Location", location)] if location else [])
    transformed = should_transform(method, status, headers)
    section(out, f"Pixels on {safe(path)}", pixel_lines(rt, visit, path, method, status,
                                                          transformed))
    docs = (request_doc(request_json), response_doc(json_body))
    transformed_body: bytes | None
    if json_body is not None:
        body, transformed_body = json_body, json_body
    else:
        transformed_body = body if transformed else None
    fired, lines = rule_lines(rt, method, path, query, status, location, origin, headers,
                          transformed_body, body is not None, form, docs,
                          route.rewriter if route is not None else rt.rewriter)
    section(out, "Rules", lines)
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
        section(out, f"Sinks for {f.rule.name!r} ({f.event})",
                 sink_lines(rt, f, visit, page_url, browser))
    return "\n".join(safe(line, limit=None) for line in out)
