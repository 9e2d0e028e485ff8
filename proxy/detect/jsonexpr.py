"""JSON bodies for the rules: JMESPath expressions, and the bounded, lazy parse they read.

`JsonExpr.compile` turns a rule's expression into a compiled JMESPath query once,
when the rules load; it refuses a syntax error or an unknown function with
`JsonExprError` (a ValueError) so `check` can name the key. `JsonExpr.text` runs it
and returns the text a condition's glob is matched against: a string as it is,
anything else as compact JSON (`true`, `null`, `[1,2]`).

`JsonDoc` is one body (a response's, decoded, or a request's) as the bytes seen of
it. It parses at most once, and only when a rule asks; a body over its size limit,
not UTF-8 JSON, or nested deeper than `MAX_DEPTH` has no value, and `problem` says
why so the request path can count it. Nothing here raises into the request path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

import jmespath
import orjson
from jmespath.exceptions import JMESPathError
from jmespath.functions import Functions
from jmespath.parser import ParsedResult

RESPONSE_LIMIT: Final = 1024 * 1024        # bytes of a decoded JSON response looked at
REQUEST_LIMIT: Final = 256 * 1024          # bytes of a JSON request body looked at
MAX_DEPTH: Final = 1024                    # orjson's own nesting limit
BOM: Final = b"\xef\xbb\xbf"
# Why a body has no value, as counted in edge_rule_json_skipped_total{reason}.
TOO_LARGE: Final = "too_large"
INVALID: Final = "invalid"
TOO_DEEP: Final = "too_deep"
NOT_JSON: Final = "not_json"

_FUNCTIONS: Final = frozenset(getattr(Functions, "FUNCTION_TABLE", {}))
_JSON_SUFFIX: Final = "+json"
_JSON_TYPES: Final = frozenset({"application/json", "text/json", "text/plain", ""})


class JsonExprError(ValueError):
    """An expression that does not compile; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class JsonExpr:
    source: str
    _parsed: ParsedResult = field(repr=False, compare=False)

    @classmethod
    def compile(cls, src: str) -> JsonExpr:
        if not isinstance(src, str) or not src.strip():
            raise JsonExprError("a JMESPath expression must be a non-empty string")
        try:
            parsed = jmespath.compile(src)
        except JMESPathError as e:
            raise JsonExprError(f"bad JMESPath expression {src!r}: {_why(e)}") from None
        unknown = sorted(set(_function_names(parsed.parsed)) - _FUNCTIONS) if _FUNCTIONS else []
        if unknown:
            raise JsonExprError(f"bad JMESPath expression {src!r}: unknown function "
                                f"{unknown[0]}(); e.g. contains(), length(), to_string()")
        return cls(src, parsed)

    def search(self, value: Any) -> Any:
        """The expression's result; a runtime type error yields None (JMESPath's null)."""
        try:
            return self._parsed.search(value)
        except (JMESPathError, RecursionError, TypeError, ValueError):
            return None

    def text(self, value: Any) -> str | None:
        """The result as a condition sees it; None when it cannot be written as JSON."""
        return as_text(self.search(value))


def as_text(value: Any) -> str | None:
    """A string as it is; anything else as compact JSON (`true`, `null`, `[1,2]`)."""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        pass
    try:   # orjson stops at 255 levels; the standard library goes on
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return None


def _why(e: JMESPathError) -> str:
    """One line: what is wrong and at which character (jmespath's own spans lines)."""
    if isinstance(e, jmespath.exceptions.IncompleteExpressionError):
        return "incomplete expression"
    if isinstance(e, jmespath.exceptions.LexerError):
        return f"{e.message} at character {e.lexer_position}"
    if isinstance(e, jmespath.exceptions.ParseError):
        return f"syntax error: unexpected {e.token_value!r} at character {e.lex_position}"
    return str(e).split("\n")[0]


def _function_names(node: Any) -> list[str]:
    out: list[str] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, dict):
            if n.get("type") == "function_expression":
                out.append(str(n.get("value")))
            stack.extend(n.get("children", ()))
        elif isinstance(n, list):
            stack.extend(n)
    return out


def is_json_type(content_type: str | None) -> bool:
    """application/json, any `+json`, text/plain (parsed to see), or no type at all."""
    media = (content_type or "").partition(";")[0].strip().lower()
    return media in _JSON_TYPES or media.endswith(_JSON_SUFFIX)


class JsonDoc:
    """A JSON body as far as it was seen, parsed lazily and at most once."""

    __slots__ = ("_asked", "_parsed", "_problem", "_raw", "_value")

    def __init__(self, raw: bytes | None, problem: str | None = None) -> None:
        """`problem` set: the body is known to be unusable (too large, not JSON)."""
        self._raw = raw
        self._problem = problem
        self._parsed = problem is not None
        self._asked = False
        self._value: Any = None

    @classmethod
    def unusable(cls, problem: str) -> JsonDoc:
        return cls(None, problem)

    @property
    def raw(self) -> bytes | None:
        return self._raw

    def _parse(self) -> None:
        self._parsed = True
        raw = self._raw or b""
        if raw.startswith(BOM):
            raw = raw[len(BOM):]
        try:
            self._value = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            self._problem = TOO_DEEP if "depth" in str(e) else INVALID

    @property
    def ok(self) -> bool:
        self._asked = True
        if not self._parsed:
            self._parse()
        return self._problem is None

    @property
    def value(self) -> Any:
        """The parsed body; None when it is not usable (see `ok`)."""
        return self._value if self.ok else None

    @property
    def problem(self) -> str | None:
        """Why the body has no value, once a rule asked for it (None: fine, or not asked)."""
        return self._problem if self._asked else None
