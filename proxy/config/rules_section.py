"""The `[[rules]]` section: matchers, extractors and sink references, checked.

Every problem is recorded in the `Ctx` (never raised), so one `check` lists them all.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

from proxy.config.model import frozen_map
from proxy.config.schema import Ctx, Table, describe, nonempty, one_of, token
from proxy.config.tables import RULES
from proxy.detect.jsonexpr import JsonExpr, JsonExprError
from proxy.detect.patterns import GlobPattern, PathPattern, PatternError
from proxy.detect.spec import Extractor, Rule, StatusMatch

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
EXTRACTOR_KINDS = ("path", "query", "form", "css", "regex", "jsonld", "json", "request_json")
JSON_KINDS = ("json", "request_json")
# schema.org JobPosting properties a `jsonld:` extractor may name (dotted below them)
JSONLD_FIELDS = (
    "title", "identifier", "description", "datePosted", "validThrough", "employmentType",
    "hiringOrganization", "jobLocation", "baseSalary", "industry", "occupationalCategory",
    "url", "directApply", "jobLocationType", "educationRequirements",
    "experienceRequirements", "skills", "qualifications", "workHours", "totalJobOpenings",
)
RULE_KEYS = RULES.names

_EVENT = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,49}")
_STATUS_CLASS = re.compile(r"[1-5][xX][xX]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def event_name(v: str) -> str | None:
    if _EVENT.fullmatch(v):
        return None
    return f"{v!r} is not an event name: a letter, then letters, digits or _ (≤ 50)"


def pattern_problem(src: str, allow_query: bool = False) -> str | None:
    try:
        PathPattern.compile(src, allow_query=allow_query)
    except PatternError as e:
        return str(e)
    return None


def rules(ctx: Ctx, raw: Any, sink_names: Sequence[str]) -> tuple[Rule, ...]:
    if not isinstance(raw, list):
        ctx.error(("rules",), f"expected [[rules]] tables, got {describe(raw)}")
        return ()
    out: list[Rule] = []
    seen: dict[str, int] = {}
    for i, body in enumerate(raw):
        name, rule = _rule(ctx, ("rules", i), body, sink_names)
        if name in seen:
            ctx.error(("rules", i, "name"),
                      f"{name!r} is already the name of rules[{seen[name]}]; names must differ")
        seen.setdefault(name, i)
        if rule is not None:
            out.append(rule)
    return tuple(out)


def _rule(ctx: Ctx, key: tuple, body: Any, sink_names: Sequence[str]
          ) -> tuple[str, Rule | None]:
    t = Table(ctx, key, body, RULE_KEYS)
    default_name = f"rules[{key[1]}]"
    if not t.ok:
        return default_name, None
    name = t.get("name", str, default_name, check=nonempty)
    event = t.get("event", str, None, required=True, check=event_name)
    method = t.get("method", str, None, check=lambda v: one_of(*METHODS)(v.upper()))
    path_src = t.get("path", str, None, required=True, check=pattern_problem)
    path = PathPattern.compile(path_src) if path_src else None
    loc_src = t.get("location", str, None, check=lambda v: pattern_problem(v, allow_query=True))
    # captures unknown when the path is bad: then path: extractors are not judged
    captures = path.names if path else None
    job_name = _extractor(ctx, key + ("job_name",), t.raw["job_name"], captures) \
        if t.has("job_name") else None
    extract = _extract_table(ctx, key + ("extract",), t.raw.get("extract", {}), captures)
    rule = {
        "name": name, "event": event, "path": path,
        "method": method.upper() if method else None,
        "status": _status(ctx, key + ("status",), t.raw.get("status")),
        "location": PathPattern.compile(loc_src, allow_query=True) if loc_src else None,
        "header": tuple(t.string_map("header", check_key=token, check=_header_glob).items()),
        "query": tuple(t.string_map("query", check_key=nonempty,
                                    check=_query_glob).items()),
        "body": t.get("body", str, None, check=_body),
        "json": _json_conditions(t, "json"),
        "request_json": _json_conditions(t, "request_json"),
        "job_name": job_name,
        "extract": frozen_map(extract),
        "send_to": t.strings("send_to", scalar_ok=True,
                             check=lambda s: _sink_ref(s, sink_names)),
        "continue_": t.get("continue", bool, False),
        "dedupe_hours": t.get("dedupe_hours", float, 720.0,
                              check=lambda v: None if v >= 0 else "must be ≥ 0"),
        "line": ctx.lines.line_of(key)}
    if event is None or path is None:
        return name, None
    return name, Rule(**rule)  # type: ignore[arg-type]


def _extract_table(ctx: Ctx, key: tuple, raw: Any, captures: Sequence[str] | None
                   ) -> dict[str, Extractor]:
    if not isinstance(raw, dict):
        ctx.error(key, f'expected a table NAME = "kind:arg", got {describe(raw)}')
        return {}
    out = {}
    for name, src in raw.items():
        if not _NAME.fullmatch(name):
            ctx.error(key + (name,), f"{name!r} is not a name: use letters, digits and _")
            continue
        found = _extractor(ctx, key + (name,), src, captures)
        if found:
            out[name] = found
    return out


def _sink_ref(name: str, sink_names: Sequence[str]) -> str | None:
    if name in sink_names:
        return None
    close = difflib.get_close_matches(name, list(sink_names), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    defined = ", ".join(sink_names) or "none"
    return f"no sink named {name!r} (defined: {defined}){hint}"


def _header_glob(v: str) -> str | None:
    try:
        GlobPattern.compile(v, ignore_case=True)
    except PatternError as e:
        return str(e)
    return None


def _query_glob(v: str) -> str | None:
    try:
        GlobPattern.compile(v)
    except PatternError as e:
        return str(e)
    return None


def _json_conditions(t: Table, name: str) -> tuple[tuple[JsonExpr, str], ...]:
    """`name = { "EXPR" = "glob" }`: each expression compiled once, here."""
    compiled: dict[str, JsonExpr] = {}

    def check_key(src: str) -> str | None:
        try:
            compiled[src] = JsonExpr.compile(src)
        except JsonExprError as e:
            return str(e)
        return None

    spec = t.string_map(name, check_key=check_key, check=_query_glob)
    return tuple((compiled[expr], glob) for expr, glob in spec.items())


def _body(v: str) -> str | None:
    if not v:
        return "must not be empty"
    if v.startswith("regex:"):
        try:
            re.compile(v[len("regex:"):])
        except re.error as e:
            return f"bad regex {v!r}: {e}"
    return None


def _status(ctx: Ctx, key: tuple, raw: Any) -> tuple[StatusMatch, ...]:
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for i, item in enumerate(items):
        k = key + (i,) if isinstance(raw, list) else key
        if isinstance(item, int) and not isinstance(item, bool) and 100 <= item <= 599:
            out.append(StatusMatch(item, item))
        elif isinstance(item, str) and _STATUS_CLASS.fullmatch(item):
            low = int(item[0]) * 100
            out.append(StatusMatch(low, low + 99))
        else:
            ctx.error(k, f"{describe(item)} is not a status: use 100..599 or \"1xx\"..\"5xx\"")
    return tuple(out)


def _extractor(ctx: Ctx, key: tuple, src: Any, captures: Sequence[str] | None
               ) -> Extractor | None:
    if not isinstance(src, str):
        ctx.error(key, f"expected a string \"kind:arg\", got {describe(src)}")
        return None
    kind, sep, arg = src.partition(":")
    problem = None
    if not sep or kind not in EXTRACTOR_KINDS:
        problem = f"{src!r} must be one of {', '.join(k + ':…' for k in EXTRACTOR_KINDS)}"
    elif not arg:
        problem = f"{src!r} needs something after '{kind}:'"
    elif kind == "path" and captures is not None and arg not in captures:
        names = ", ".join("{" + c + "}" for c in captures) or "none"
        problem = f"{src!r}: the rule's path has no {{{arg}}} (its captures: {names})"
    elif kind in ("query", "form") and token(arg):
        problem = f"{src!r}: {arg!r} is not a parameter name"
    elif kind == "css":
        problem = _css(arg)
    elif kind == "regex":
        try:
            if re.compile(arg).groups < 1:
                problem = f"{src!r} needs a (group): its group 1 is the value"
        except re.error as e:
            problem = f"bad regex {src!r}: {e}"
    elif kind == "jsonld" and arg.split(".")[0] not in JSONLD_FIELDS:
        problem = f"{src!r}: {arg!r} is not a JobPosting field; e.g. {', '.join(JSONLD_FIELDS[:6])}"
    expr = None
    if kind in JSON_KINDS and not problem:
        try:
            expr = JsonExpr.compile(arg)
        except JsonExprError as e:
            problem = str(e)
    if problem:
        ctx.error(key, problem)
        return None
    return Extractor(kind, arg, src, expr)  # type: ignore[arg-type]


def _css(selector: str) -> str | None:
    from selectolax.lexbor import LexborHTMLParser, SelectolaxError  # only when css: is used
    try:
        LexborHTMLParser("<p></p>").css_first(selector)
    except (SelectolaxError, ValueError):
        return f"{selector!r} is not a valid CSS selector"
    return None
