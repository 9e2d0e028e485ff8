"""Compiled `[[rules]]`: which application events a response fires.

Two steps, both pure:

1. `RuleSet.candidates(method, path, query)` at request time, before the upstream
   is called: the rules whose request side (method, path, `query` condition)
   matches, with their path captures. It
   tells the request path whether to sniff form fields or JSON from the request
   body (`form_fields`, `request_json`) and whether the response body will be
   wanted, as HTML (`needs_body`) or as JSON (`needs_json`).
   Most pages match no rule, so this is made cheap: rules are grouped by method
   and one alternation of the rules' literal path prefixes rejects most paths
   before any pattern runs.
2. `Candidates.classify(request, response, body)` once the response is known:
   rules are tried in file order, the first match fires, and `continue = true`
   lets later rules fire too. `body` is a bounded prefix of the decoded HTML (or
   the JSON text seen), or None when there is none; `json` the response's JSON
   document, parsed only if a rule asks. It never raises into the request path.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from proxy.detect.extractors import CompiledExtractor, Facts, Page, compile_extractor
from proxy.detect.jsonexpr import JsonDoc
from proxy.detect.matchers import (
    REGEX_PREFIX,
    JsonMatcher,
    TextMatcher,
    compile_body,
    compile_headers,
    compile_json,
    compile_location,
    compile_query,
    status_matches,
)
from proxy.detect.spec import Rule

log = logging.getLogger(__name__)

JOB_ID = "job_id"
# Characters after which a path pattern stops being literal text.
_PATTERN_SPECIALS = re.compile(r"[*?{}\[\]\\]")


@dataclass(frozen=True, slots=True)
class RequestFacts:
    method: str
    path: str
    query: str = ""                                   # raw, as sent
    form: Mapping[str, str] = field(default_factory=dict)   # sniffed from the body
    json: JsonDoc | None = None                       # a JSON body, sniffed likewise


@dataclass(frozen=True, slots=True)
class ResponseFacts:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)  # CIMultiDict is fine
    location: str | None = None                       # rewritten, public Location


@dataclass(frozen=True, slots=True)
class Fired:
    rule: Rule
    event: str
    job_id: str | None
    job_name: str | None
    fields: dict[str, str]
    path_params: dict[str, str]


def literal_prefix(source: str) -> str:
    """Text every path matching the pattern `source` starts with ("" when unknown).

    Patterns match case-sensitively against the raw path, so the text before the
    first wildcard is literal, except that "/**" also matches without its slash
    ("/jobs/**" matches "/jobs"): the prefix then stops before that slash.
    """
    if source.startswith(REGEX_PREFIX):
        return ""
    m = _PATTERN_SPECIALS.search(source)
    if m is None:
        return source
    prefix = source[: m.start()]
    if source.startswith("**", m.start()) and prefix.endswith("/"):
        prefix = prefix[:-1]
    return prefix


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: Rule
    prefix: str
    location: Callable[[str | None, str], bool] | None
    headers: Callable[[Mapping[str, str]], bool] | None
    query: Callable[[str], bool] | None
    body: TextMatcher | None
    json: JsonMatcher | None
    request_json: JsonMatcher | None
    job_name: CompiledExtractor | None
    extract: tuple[tuple[str, CompiledExtractor], ...]
    form_fields: frozenset[str]
    extract_needs_body: bool
    needs_json: bool                  # the JSON response body: a condition or extractor
    wants_request_json: bool          # the JSON request body, likewise

    @classmethod
    def compile(cls, rule: Rule) -> CompiledRule:
        """Raises ValueError naming the rule when a regex or selector is bad."""
        try:
            job_name = compile_extractor(rule.job_name) if rule.job_name else None
            extract = tuple((k, compile_extractor(v)) for k, v in rule.extract.items())
            body = compile_body(rule.body) if rule.body is not None else None
            headers = compile_headers(rule.header)
            query = compile_query(rule.query)
            json = compile_json(rule.json)
            request_json = compile_json(rule.request_json)
        except ValueError as e:
            raise ValueError(f"rule {rule.name!r}: {e}") from None
        extractors = [x for _, x in extract] + ([job_name] if job_name else [])
        return cls(
            rule=rule,
            prefix=literal_prefix(rule.path.source),
            location=compile_location(rule.location) if rule.location is not None else None,
            headers=headers,
            query=query,
            body=body,
            json=json,
            request_json=request_json,
            job_name=job_name,
            extract=extract,
            form_fields=frozenset(x.form_field for x in extractors if x.form_field),
            extract_needs_body=any(x.needs_body for x in extractors),
            needs_json=json is not None or any(x.needs_json for x in extractors),
            wants_request_json=request_json is not None
            or any(x.request_json for x in extractors),
        )

    @property
    def needs_body(self) -> bool:
        return self.body is not None or self.extract_needs_body

    def matches_head(self, resp: ResponseFacts, request_path: str) -> bool:
        """Everything but the response body's conditions (method and path already matched)."""
        rule = self.rule
        if not status_matches(resp.status, rule.status):
            return False
        if self.location is not None and not self.location(resp.location, request_path):
            return False
        return self.headers is None or self.headers(resp.headers)

    def matches_body(self, req: RequestFacts, page: Page) -> bool:
        """The `body`, `json` and `request_json` conditions."""
        if self.request_json is not None and not self.request_json(req.json):
            return False
        if self.body is not None and (not page.present or not self.body(page.text)):
            return False
        return self.json is None or self.json(page.json)

    def fire(self, req: RequestFacts, params: dict[str, str], page: Page) -> Fired:
        facts = Facts(params, req.query, req.form, req.json)
        fields: dict[str, str] = {}
        for name, extractor in self.extract:
            value = extractor(facts, page)
            if value is not None:
                fields[name] = value
        job_name = self.job_name(facts, page) if self.job_name else None
        job_id = params.get(JOB_ID) or fields.get(JOB_ID)
        return Fired(self.rule, self.rule.event, job_id, job_name, fields, dict(params))


class Candidates:
    """The rules whose method and path match one request, in file order."""

    __slots__ = ("_items", "_path", "form_fields", "needs_body", "needs_json", "request_json")

    def __init__(self, items: tuple[tuple[CompiledRule, dict[str, str]], ...], path: str):
        self._items = items
        self._path = path
        self.form_fields = frozenset().union(*(c.form_fields for c, _ in items))
        self.needs_body = any(c.needs_body for c, _ in items)
        self.needs_json = any(c.needs_json for c, _ in items)
        self.request_json = any(c.wants_request_json for c, _ in items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Candidates({[c.rule.name for c, _ in self._items]!r})"

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(c.rule for c, _ in self._items)

    @property
    def path_params(self) -> tuple[dict[str, str], ...]:
        return tuple(dict(p) for _, p in self._items)

    def classify(
        self, req: RequestFacts, resp: ResponseFacts, body: bytes | None,
        json: JsonDoc | None = None,
    ) -> list[Fired]:
        fired: list[Fired] = []
        if not self._items:
            return fired
        page = Page(body, json)
        for crule, params in self._items:
            try:
                if not crule.matches_head(resp, req.path) or not crule.matches_body(req, page):
                    continue
                fired.append(crule.fire(req, params, page))
            except Exception:  # a rule that cannot be evaluated does not fire
                log.warning("rule %r could not be evaluated", crule.rule.name, exc_info=True)
                continue
            if not crule.rule.continue_:
                break
        return fired

    def decidable_without_body(self, resp: ResponseFacts) -> bool:
        """True when the body can change neither which rules fire nor their values.

        Then the caller need not hold back any of the response body for detection.
        """
        for crule, _ in self._items:
            try:
                if not crule.matches_head(resp, self._path):
                    continue
            except Exception:  # classify() skips and reports this rule
                log.debug("rule %r could not be evaluated", crule.rule.name, exc_info=True)
                continue
            if crule.needs_body or crule.needs_json:
                return False
            if not crule.rule.continue_:
                return True
        return True


NO_CANDIDATES = Candidates((), "")


class RuleSet:
    """Rules compiled once per (re)load; `candidates` is called once per request."""

    __slots__ = ("_any", "_by_method", "_gates", "rules")

    def __init__(self, compiled: Sequence[CompiledRule]) -> None:
        self.rules: tuple[Rule, ...] = tuple(c.rule for c in compiled)
        methods = {c.rule.method.upper() for c in compiled if c.rule.method}
        self._any = tuple(c for c in compiled if c.rule.method is None)
        self._by_method = {
            m: tuple(c for c in compiled if c.rule.method is None or c.rule.method.upper() == m)
            for m in methods
        }
        self._gates: dict[str | None, re.Pattern[str] | None] = {
            m: _gate(rs) for m, rs in self._by_method.items()
        }
        self._gates[None] = _gate(self._any)

    @classmethod
    def compile(cls, rules: Sequence[Rule]) -> RuleSet:
        return cls([CompiledRule.compile(r) for r in rules])

    def candidates(self, method: str, path: str, query: str = "") -> Candidates:
        """The rules that may fire for this request: method, path and query match."""
        compiled = self._by_method.get(method)
        gate = self._gates[method if compiled is not None else None]
        if compiled is None:
            compiled = self._any
        if not compiled or (gate is not None and gate.match(path) is None):
            return NO_CANDIDATES
        items = []
        for crule in compiled:
            if not path.startswith(crule.prefix):
                continue
            params = crule.rule.path.match(path)
            if params is not None and (crule.query is None or crule.query(query)):
                items.append((crule, params))
        return Candidates(tuple(items), path) if items else NO_CANDIDATES


def _gate(compiled: Sequence[CompiledRule]) -> re.Pattern[str] | None:
    """One regex that matches any path some rule's literal prefix allows.

    None when a rule has no literal prefix (every path must be tried).
    """
    prefixes = {c.prefix for c in compiled}
    if not compiled or "" in prefixes:
        return None
    return re.compile("|".join(re.escape(p) for p in sorted(prefixes, key=len)))
