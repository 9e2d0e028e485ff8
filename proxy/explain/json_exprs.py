"""`explain --json FILE --request-json FILE`: what each JSON expression of a rule yields.

For every candidate rule with `json` / `request_json` conditions or `json:` /
`request_json:` extractors, one line per expression: what it yields on the body
given (as the condition sees it: a string as is, anything else as compact JSON),
and for a condition whether it matches its glob. A body that was not given, or
that the proxy could not read (too large, invalid, too deep), is said so once.
"""

from __future__ import annotations

from collections.abc import Callable

from proxy.detect.extractors import REQUEST_JSON_KIND
from proxy.detect.jsonexpr import REQUEST_LIMIT, RESPONSE_LIMIT, TOO_LARGE, JsonDoc, JsonExpr
from proxy.detect.patterns import GlobPattern
from proxy.detect.spec import Rule

RESPONSE_FLAG = "--json FILE"
REQUEST_FLAG = "--request-json FILE"
SHOWN = 80                      # characters of a yielded value shown at most

Safe = Callable[[str, int], str]
Conditions = tuple[tuple[JsonExpr, str], ...]   # (expression, glob), as in `Rule`


def doc_of(raw: bytes | None, limit: int) -> JsonDoc | None:
    """The body as the proxy would see it: over its limit, not read at all."""
    if raw is None:
        return None
    return JsonDoc.unusable(TOO_LARGE) if len(raw) > limit else JsonDoc(raw)


def response_doc(raw: bytes | None) -> JsonDoc | None:
    return doc_of(raw, RESPONSE_LIMIT)


def request_doc(raw: bytes | None) -> JsonDoc | None:
    return doc_of(raw, REQUEST_LIMIT)


def _why_unusable(doc: JsonDoc | None, flag: str, what: str) -> str | None:
    if doc is None:
        return f"needs the {what} (pass {flag})"
    if not doc.ok:
        return f"the {what} given is not read: {doc.problem}"
    return None


def _yielded(expr: JsonExpr, doc: JsonDoc, safe: Safe) -> str:
    text = expr.text(doc.value)
    return "(not writable as JSON)" if text is None else safe(text, SHOWN)


def _sides(rule: Rule, req: JsonDoc | None, resp: JsonDoc | None
           ) -> list[tuple[str, Conditions, JsonDoc | None, str | None]]:
    """The sides of `rule` with JSON conditions, in the order the rule tries them: key,
    conditions, the body, and why that body cannot be used (None when it can)."""
    sides = (("request_json", rule.request_json, req, REQUEST_FLAG, "JSON request body"),
             ("json", rule.json, resp, RESPONSE_FLAG, "JSON answer"))
    return [(label, conditions, doc, _why_unusable(doc, flag, what))
            for label, conditions, doc, flag, what in sides if conditions]


def condition_lines(rule: Rule, req: JsonDoc | None, resp: JsonDoc | None,
                    safe: Safe, extractors: bool = True) -> list[str]:
    """One line per JSON condition (and extractor, with `extractors`) of `rule`, or why
    none can be shown."""
    lines: list[str] = []
    for label, conditions, doc, why in _sides(rule, req, resp):
        if why is not None or doc is None:
            lines.append(f"{label}: {why}; every condition fails")
            continue
        for expr, glob in conditions:
            text = expr.text(doc.value)
            ok = text is not None and GlobPattern.compile(glob).match(text)
            mark = "matches" if ok else "does NOT match"
            lines.append(f"{label} {safe(expr.source, SHOWN)} → {_yielded(expr, doc, safe)}  "
                         f"{mark} {safe(glob, SHOWN)}")
    named = [("job_name", rule.job_name)] if rule.job_name and extractors else []
    named += list(rule.extract.items()) if extractors else []
    for name, ex in named:
        if ex is None or ex.expr is None:
            continue
        is_request = ex.kind == REQUEST_JSON_KIND
        doc = req if is_request else resp
        if doc is None or not doc.ok:
            flag = REQUEST_FLAG if is_request else RESPONSE_FLAG
            lines.append(f"{name} from {safe(ex.source, SHOWN)}: (none: "
                         f"{_why_unusable(doc, flag, 'JSON body')})")
        else:
            lines.append(f"{name} from {safe(ex.source, SHOWN)} → "
                         f"{_yielded(ex.expr, doc, safe)}")
    return lines


def why_not(rule: Rule, req: JsonDoc | None, resp: JsonDoc | None) -> str | None:
    """Which JSON condition failed first, in the order the rule tries them."""
    for label, conditions, doc, why in _sides(rule, req, resp):
        if why is not None or doc is None:
            return f"{label}: {why}"
        for expr, glob in conditions:
            text = expr.text(doc.value)
            if text is None or not GlobPattern.compile(glob).match(text):
                return f"{label} {expr.source} is {text!r}, not {glob}"
    return None
