"""Response-side matchers of a rule: status, Location, headers, body, JSON.

Each matcher is compiled once from the rule (`compile_*`) and then only called per
response. None of them does I/O or raises on odd input: a response that cannot be
read the way a matcher wants simply does not match.

Location: the caller passes the rewritten, public Location. A relative reference
("thanks?x=1") is first resolved against the request path; then the pattern's own
`match_location` applies (see `patterns.py`): an absolute URL is reduced to its
path and query unless the pattern names an origin, and a pattern without "?"
ignores the query, so "/jobs/*/thanks*" matches both "/jobs/3/thanks?ref=x" and
"https://careers.acme.example/jobs/3/thanks?ref=x".

Header globs are `GlobPattern`s ("*" matches anything, or `regex:`), matched
against the whole value case-insensitively; names are case-insensitive. A header
sent several times matches when any of its values does; a missing header never
matches.

JSON conditions (`json`, `request_json`) are (expression, glob) pairs: every
expression's result, as `JsonExpr.text` writes it (a string as is, anything else
as compact JSON), must match its glob, case-sensitively. A body that is absent
or not usable JSON matches no condition, not even `"null"`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import parse_qsl, urljoin

from proxy.detect.jsonexpr import JsonDoc, JsonExpr
from proxy.detect.patterns import REGEX_PREFIX, GlobPattern, PathPattern
from proxy.detect.spec import StatusMatch

TextMatcher = Callable[[str], bool]


def status_matches(status: int, allowed: Sequence[StatusMatch]) -> bool:
    """Empty `allowed` means any status."""
    if not allowed:
        return True
    return any(m.low <= status <= m.high for m in allowed)


# --- Location --------------------------------------------------------------


def resolve_location(location: str, request_path: str) -> str | None:
    """The Location as an absolute URL or a path starting with "/"."""
    location = location.strip()
    if not location:
        return None
    if location.startswith("/") and not location.startswith("//"):
        return location
    try:
        return urljoin(request_path, location)
    except ValueError:
        return None


def compile_location(pattern: PathPattern) -> Callable[[str | None, str], bool]:
    """A matcher `(location, request_path) -> bool`; no Location never matches."""

    def match(location: str | None, request_path: str) -> bool:
        if not location:
            return False
        target = resolve_location(location, request_path)
        if target is None:
            return False
        try:
            return pattern.match_location(target) is not None
        except ValueError:  # an unparsable URL (bad IPv6 literal, …)
            return False

    return match


# --- Headers ---------------------------------------------------------------


def header_values(headers: Mapping[str, str], name: str) -> list[str]:
    """All values of `name`, from a CIMultiDict (fast) or any plain mapping."""
    getall = getattr(headers, "getall", None)
    if getall is not None:
        try:
            return list(getall(name, ()))
        except (TypeError, KeyError):
            pass
    lname = name.lower()
    return [v for k, v in headers.items() if k.lower() == lname]


def compile_headers(
    spec: Sequence[tuple[str, str]],
) -> Callable[[Mapping[str, str]], bool] | None:
    """Every (name, glob) must match; None when the rule has no header condition.

    Raises PatternError (a ValueError) for a bad `regex:` glob.
    """
    if not spec:
        return None
    compiled = [(name, GlobPattern.compile(glob, ignore_case=True)) for name, glob in spec]

    def match(headers: Mapping[str, str]) -> bool:
        for name, glob in compiled:
            if not any(glob.match(v) for v in header_values(headers, name)):
                return False
        return True

    return match


def compile_query(spec: Sequence[tuple[str, str]]) -> Callable[[str], bool] | None:
    """Every (param, glob) must match one value of the param in the raw query string
    (values percent-decoded, `+` as space); None when the rule has no query condition.

    Raises PatternError (a ValueError) for a bad `regex:` glob.
    """
    if not spec:
        return None
    compiled = [(name, GlobPattern.compile(glob)) for name, glob in spec]

    def match(query: str) -> bool:
        if not query:
            return False
        values: dict[str, list[str]] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            values.setdefault(name, []).append(value)
        return all(any(glob.match(v) for v in values.get(name, ())) for name, glob in compiled)

    return match


# --- JSON ------------------------------------------------------------------

JsonMatcher = Callable[[JsonDoc | None], bool]


def compile_json(spec: Sequence[tuple[JsonExpr, str]]) -> JsonMatcher | None:
    """Every (expression, glob) must match; None when the rule has no such condition.

    Raises PatternError (a ValueError) for a bad `regex:` glob.
    """
    if not spec:
        return None
    compiled = [(expr, GlobPattern.compile(glob)) for expr, glob in spec]

    def match(doc: JsonDoc | None) -> bool:
        if doc is None or not doc.ok:
            return False
        value = doc.value
        for expr, glob in compiled:
            text = expr.text(value)
            if text is None or not glob.match(text):
                return False
        return True

    return match


# --- Body ------------------------------------------------------------------


def compile_body(spec: str) -> TextMatcher:
    """A substring, or `regex:...` searched anywhere in the (bounded) body text.

    Raises ValueError for a bad regex so the rules file is refused at load time.
    """
    if spec.startswith(REGEX_PREFIX):
        try:
            rx = re.compile(spec[len(REGEX_PREFIX):])
        except re.error as e:
            raise ValueError(f"bad body regex {spec!r}: {e}") from None
        return lambda text: rx.search(text) is not None
    return lambda text: spec in text
