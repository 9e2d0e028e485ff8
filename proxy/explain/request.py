"""The request side of `explain`: the URL, the host, click ids, cookies, consent, the
access log line and the upstream the request goes to."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from proxy.attribution.clickids import MAX_VALUE_LEN, valid_value
from proxy.attribution.cookies import ATTR_COOKIE, VISITOR_COOKIE
from proxy.attribution.visit import Visit
from proxy.config.model import Config
from proxy.explain.text import safe
from proxy.hosts import split_host
from proxy.http.route_table import UpstreamRoute
from proxy.http.target import BadTarget, origin_form
from proxy.runtime import Runtime

NEW_VISITOR = "<new>"
URL_SHOWN = 400
PLAIN_PARAM = "gclid"           # a param with the plain "URL-safe text" shape


def access_line(config: Config, rt: Runtime, method: str, target: str) -> str:
    """How the request appears in the access log (`[log]`)."""
    if config.log.access == "off":
        return "not logged ([log] access = \"off\")"
    how = "redacted" if config.log.redact else "NOT redacted: [log] redact = false"
    return f"{method} {rt.redactor.url(target)}  ({config.log.access}, {how})"


def public_target(url: str, config: Config) -> tuple[str, str]:
    """(public origin, path-and-query) of an absolute URL or a path."""
    url = url.partition("#")[0]
    if url.startswith("/") or "://" not in url:
        origin = (config.proxy.public_url or f"http://{config.proxy.listen}").rstrip("/")
        return origin, url if url.startswith("/") else "/" + url
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise BadTarget(f"not an http(s) URL or a path: {safe(url)}")
    return f"{parts.scheme.lower()}://{parts.netloc}", origin_form(url, parts.netloc)


def host_refused(rt: Runtime, origin: str, target: str) -> str | None:
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


def upstream_lines(rt: Runtime, route: UpstreamRoute | None) -> list[str]:
    if route is None:
        upstream = rt.upstream_origin if rt.config.proxy.upstream else "<upstream>"
        why = f"[proxy] upstream {upstream}" + ("  (no [[routes]] prefix matches)"
                                                if rt.routes else "")
        return [why]
    return [f"[[routes]] prefix {route.prefix} → {route.upstream}  (Host: {route.host})",
            "links to it in pages, Location and cookies are rewritten to the prefix"]


def click_lines(rt: Runtime, visit: Visit, path: str, query: str,
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


def cookie_lines(visit: Visit) -> list[str]:
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


def consent_line(config: Config, visit: Visit) -> str:
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
