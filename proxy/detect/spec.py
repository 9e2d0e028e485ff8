"""What a rule declares: the frozen values the rules file's `[[rules]]` become.

`config/rules_section.py` builds them (patterns and JSON expressions compiled
once); `detect/rules.py` compiles a set of them into what the request path matches.
They live here, beside the code that gives them meaning, so the rules engine
needs nothing from the config package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from proxy.detect.jsonexpr import JsonExpr
from proxy.detect.patterns import PathPattern

__all__ = ["Extractor", "Rule", "StatusMatch"]


@dataclass(frozen=True, slots=True)
class Extractor:
    """`kind:arg` from the rules file, e.g. css:h1 -> Extractor("css", "h1")."""

    kind: Literal["path", "query", "form", "css", "regex", "jsonld", "json", "request_json"]
    arg: str
    source: str
    expr: JsonExpr | None = field(default=None, compare=False)   # json:, request_json:


@dataclass(frozen=True, slots=True)
class StatusMatch:
    """One entry of `status`: an exact code, or a class ("3xx" -> low=300, high=399)."""

    low: int
    high: int

    def __contains__(self, status: int) -> bool:
        return self.low <= status <= self.high


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    event: str
    path: PathPattern
    method: str | None = None                          # None: any method
    status: tuple[StatusMatch, ...] = ()               # empty: any status
    location: PathPattern | None = None
    header: tuple[tuple[str, str], ...] = ()           # (name, glob)
    query: tuple[tuple[str, str], ...] = ()            # (param, glob) on the request URL
    body: str | None = None                            # substring or "regex:..."
    json: tuple[tuple[JsonExpr, str], ...] = ()         # (expression, glob) on the JSON answer
    request_json: tuple[tuple[JsonExpr, str], ...] = ()  # ... on the JSON request body
    job_name: Extractor | None = None
    extract: Mapping[str, Extractor] = field(default_factory=lambda: MappingProxyType({}))
    send_to: tuple[str, ...] = ()
    continue_: bool = False
    dedupe_hours: float = 720.0
    line: int | None = None
