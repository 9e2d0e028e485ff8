"""The rules of `explain`: the candidates, which fires and what it captures, and why
each other rule does not."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from proxy.detect.extractors import BODY_KINDS
from proxy.detect.jsonexpr import JsonDoc
from proxy.detect.matchers import status_matches
from proxy.detect.rules import CompiledRule, Fired, RequestFacts, ResponseFacts
from proxy.detect.spec import Rule, StatusMatch
from proxy.explain.json_exprs import condition_lines, why_not
from proxy.explain.text import INDENT, safe
from proxy.http.headers import OriginRewriter
from proxy.runtime import Runtime
from proxy.transform.html import DEFAULT_OBSERVE


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


def rule_lines(rt: Runtime, method: str, path: str, query: str, status: int,
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
