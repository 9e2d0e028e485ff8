"""Extractors: `path:` `query:` `form:` `css:` `regex:` `jsonld:` `json:` `request_json:`.

An `Extractor` from the rules file is compiled once (`compile_extractor`, which
refuses a bad regex or CSS selector with ValueError) and then run against one
`Page` per response: the page decodes the body and parses the HTML at most once,
however many extractors ask. Running an extractor never raises: anything that
cannot be read yields None. Values are cleaned (control characters removed,
whitespace collapsed, capped at MAX_VALUE_CHARS); an empty result is None.

jsonld:KEY reads the first schema.org JobPosting in the page's JSON-LD, whether
the script holds an object, an array or an `@graph`; KEY may be dotted
(`hiringOrganization.name`). A value that is an object yields its `name`, a list
its first usable item.

json:EXPR and request_json:EXPR run a JMESPath expression (compiled when the rules
load) on the JSON response body and the JSON request body (`jsonexpr.JsonDoc`,
parsed at most once however many ask). A string is the value as it is, a number
its digits, anything else (a list, an object, true) its compact JSON; null, or a
body that is not usable JSON, yields None.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from selectolax.lexbor import LexborHTMLParser, SelectolaxError

from proxy.detect.jsonexpr import JsonDoc, JsonExpr, as_text
from proxy.detect.spec import Extractor

log = logging.getLogger(__name__)

MAX_VALUE_CHARS = 512
MAX_JSONLD_DEPTH = 8
BODY_KINDS = frozenset({"css", "regex", "jsonld"})
JSON_KIND = "json"
REQUEST_JSON_KIND = "request_json"
KINDS = frozenset({"path", "query", "form", JSON_KIND, REQUEST_JSON_KIND}) | BODY_KINDS

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_SPACE = re.compile(r"\s+")
_JSONLD_SELECTOR = "script[type]"


def clean(value: object) -> str | None:
    """Text fit for an event field: no control chars, single spaces, capped."""
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, str):
        if not isinstance(value, (int, float)):
            return None
        value = str(value)
    text = _SPACE.sub(" ", _CONTROL.sub(" ", value)).strip()
    return text[:MAX_VALUE_CHARS].rstrip() or None


class Page:
    """One response body, decoded and parsed lazily and at most once."""

    __slots__ = ("_posting", "_posting_done", "_raw", "_text", "_tree", "_tree_done", "json")

    def __init__(self, body: bytes | None, json: JsonDoc | None = None) -> None:
        self._raw = body
        self.json = json
        self._text: str | None = None
        self._tree: LexborHTMLParser | None = None
        self._tree_done = False
        self._posting: dict[str, Any] | None = None
        self._posting_done = False

    @property
    def present(self) -> bool:
        return self._raw is not None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self._raw.decode("utf-8", "replace") if self._raw else ""
        return self._text

    @property
    def tree(self) -> LexborHTMLParser | None:
        if not self._tree_done:
            self._tree_done = True
            if self._raw:
                try:
                    self._tree = LexborHTMLParser(self.text)
                except Exception:  # a parser failure must not reach the request path
                    log.debug("HTML parse failed", exc_info=True)
        return self._tree

    @property
    def job_posting(self) -> dict[str, Any] | None:
        if not self._posting_done:
            self._posting_done = True
            self._posting = first_job_posting(self.tree)
        return self._posting


@dataclass(frozen=True, slots=True)
class Facts:
    """What the request side offers to `path:`, `query:`, `form:` and `request_json:`."""

    path_params: Mapping[str, str]
    query: str
    form: Mapping[str, str]
    json: JsonDoc | None = None


Run = Callable[[Facts, Page], str | None]


@dataclass(frozen=True, slots=True)
class CompiledExtractor:
    source: Extractor
    needs_body: bool
    form_field: str | None
    run: Run
    needs_json: bool = False          # reads the JSON response body
    request_json: bool = False        # reads the JSON request body

    def __call__(self, facts: Facts, page: Page) -> str | None:
        try:
            return clean(self.run(facts, page))
        except Exception:  # best effort: the event fires without the value
            log.debug("extractor %r failed", self.source.source, exc_info=True)
            return None


def compile_extractor(ex: Extractor) -> CompiledExtractor:
    """Raises ValueError for an unknown kind, a bad regex or a bad CSS selector."""
    kind, arg = ex.kind, ex.arg
    if kind not in KINDS:
        raise ValueError(f"unknown extractor kind {kind!r} in {ex.source!r}")
    if not arg:
        raise ValueError(f"extractor {ex.source!r} needs an argument after '{kind}:'")
    run: Run
    if kind in (JSON_KIND, REQUEST_JSON_KIND):
        expr = ex.expr or JsonExpr.compile(arg)   # raises JsonExprError, a ValueError
        if kind == JSON_KIND:
            run = lambda facts, page: json_value(expr, page.json)
        else:
            run = lambda facts, page: json_value(expr, facts.json)
        return CompiledExtractor(ex, False, None, run, needs_json=kind == JSON_KIND,
                                 request_json=kind == REQUEST_JSON_KIND)
    if kind == "path":
        run = lambda facts, page: facts.path_params.get(arg)
    elif kind == "query":
        run = lambda facts, page: first_query_value(facts.query, arg)
    elif kind == "form":
        run = lambda facts, page: facts.form.get(arg)
    elif kind == "css":
        _check_selector(arg, ex.source)
        run = lambda facts, page: css_text(page.tree, arg)
    elif kind == "regex":
        try:
            rx = re.compile(arg)
        except re.error as e:
            raise ValueError(f"bad regex in {ex.source!r}: {e}") from None
        run = lambda facts, page: regex_group(rx, page.text) if page.present else None
    else:
        keys = tuple(arg.split("."))
        if not all(keys):
            raise ValueError(f"bad JSON-LD key path in {ex.source!r}")
        run = lambda facts, page: dig(page.job_posting, keys)
    return CompiledExtractor(ex, kind in BODY_KINDS, arg if kind == "form" else None, run)


def _check_selector(selector: str, source: str) -> None:
    try:
        LexborHTMLParser("<p></p>").css_first(selector)
    except (SelectolaxError, ValueError) as e:
        raise ValueError(f"bad CSS selector in {source!r}: {e}") from None


# --- the individual kinds ----------------------------------------------------


def json_value(expr: JsonExpr, doc: JsonDoc | None) -> str | None:
    if doc is None or not doc.ok:
        return None
    found = expr.search(doc.value)
    return None if found is None else as_text(found)


def first_query_value(query: str, name: str) -> str | None:
    if not query:
        return None
    for key, value in parse_qsl(query, keep_blank_values=True, errors="replace"):
        if key == name:
            return value
    return None


def css_text(tree: LexborHTMLParser | None, selector: str) -> str | None:
    if tree is None:
        return None
    node = tree.css_first(selector)
    return None if node is None else node.text(deep=True)


def regex_group(rx: re.Pattern[str], text: str) -> str | None:
    m = rx.search(text)
    if m is None:
        return None
    return m.group(1) if rx.groups else m.group(0)


def first_job_posting(tree: LexborHTMLParser | None) -> dict[str, Any] | None:
    """The first JobPosting object in the page's JSON-LD scripts, if any."""
    if tree is None:
        return None
    for script in tree.css(_JSONLD_SELECTOR):
        kind = (script.attributes.get("type") or "").split(";")[0].strip().lower()
        if kind != "application/ld+json":
            continue
        try:
            data = json.loads(_unwrap(script.text(deep=True)), strict=False)
        except (ValueError, RecursionError):
            continue
        for obj in _objects(data, 0):
            if _is_job_posting(obj):
                return obj
    return None


def _unwrap(text: str) -> str:
    """Drop the HTML-comment / CDATA guards some sites put around JSON-LD."""
    text = text.strip()
    for start, end in (("<!--", "-->"), ("//<![CDATA[", "//]]>"), ("<![CDATA[", "]]>")):
        if text.startswith(start) and text.endswith(end):
            text = text[len(start):-len(end)].strip()
    return text


def _objects(data: Any, depth: int) -> Iterator[dict[str, Any]]:
    """Objects at the top level, in arrays, and in `@graph`, breadth before depth."""
    if depth > MAX_JSONLD_DEPTH:
        return
    if isinstance(data, list):
        for item in data:
            yield from _objects(item, depth + 1)
    elif isinstance(data, dict):
        yield data
        graph = data.get("@graph")
        if isinstance(graph, (list, dict)):
            yield from _objects(graph, depth + 1)


def _is_job_posting(obj: dict[str, Any]) -> bool:
    kind = obj.get("@type")
    kinds = kind if isinstance(kind, list) else [kind]
    return any(isinstance(k, str) and k.rsplit("/", 1)[-1] == "JobPosting" for k in kinds)


def dig(obj: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        obj = _scalar_parent(obj)
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return _leaf(obj)


def _scalar_parent(obj: Any) -> Any:
    """Step into the first object of a list, so `hiringOrganization.name` works on either."""
    if isinstance(obj, list):
        return next((x for x in obj if isinstance(x, dict)), None)
    return obj


def _leaf(obj: Any) -> Any:
    if isinstance(obj, list):
        return next((v for v in map(_leaf, obj) if clean(v)), None)
    if isinstance(obj, dict):
        return obj.get("name") if isinstance(obj.get("name"), str) else obj.get("@value")
    return obj
