"""Path, location and glob patterns from the rules file, compiled once, matched often.

Path patterns (`paths`, `path`, `location`) are matched against the raw request path,
still percent-encoded, case-sensitively; the query string is never part of a path.

    *        any run of characters within one segment (no "/"), possibly empty
    **       any number of whole segments, including none: "/a/**/b" matches "/a/b"
             and "/a/x/y/b"; a trailing "/**" also matches the bare prefix ("/jobs")
    {name}   a named, non-empty "*"; its value is returned by `match()`
    regex:…  a Python regex, full match; its named groups are the captures

Location patterns (`compile(src, allow_query=True)`, matched with `match_location`)
see the Location header after it was rewritten to the public origin:
- an absolute Location is reduced to its path and query ("https://careers.acme.example
  /jobs/3/thanks?ref=x" -> "/jobs/3/thanks?ref=x"), unless the pattern itself starts
  with "http://" or "https://", in which case scheme and host must match too
  (case-insensitively) and the rest is matched as below;
- a pattern without "?" ignores the query: "/jobs/*/thanks*" and "/jobs/*/thanks" both
  match "/jobs/3/thanks?ref=x";
- a pattern with "?" matches path and query, and after the "?" a "*" matches anything:
  "/apply?step=done*" matches "/apply?step=done&x=/y";
- a `regex:` location is tried against the path, then against path?query.

Globs (`GlobPattern`: header values, `redirect.allow`) have one wildcard, "*", matching
anything, and may be `regex:…` too. A URL glob (`url=True`) must name a scheme and a
host; the host may start with "*." (any subdomain, never the bare domain) and has no
other wildcard, so "https://*.wa.me/*" cannot match "https://evil.example/?.wa.me/" and
"https://wa.me/*" cannot match "https://wa.me.evil.example/". A `regex:` URL glob is
taken as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

REGEX_PREFIX = "regex:"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_URL_HEAD = re.compile(r"(?P<scheme>https?)://(?P<host>[^/?#]*)(?P<rest>.*)",
                       re.DOTALL | re.IGNORECASE)
_HOST_GLOB = re.compile(r"[A-Za-z0-9.*:\[\]-]+")


class PatternError(ValueError):
    """A pattern that cannot be compiled; the message says what is wrong."""


def _compile_regex(src: str) -> re.Pattern[str]:
    try:
        return re.compile(src[len(REGEX_PREFIX):])
    except re.error as e:
        raise PatternError(f"bad regex {src!r}: {e}") from None


def _glob_path_regex(src: str, star: str = "[^/]*") -> tuple[str, tuple[str, ...]]:
    """Translate a path glob into regex source; returns (regex, capture names)."""
    out: list[str] = []
    names: list[str] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("**", i):
            before_slash = i > 0 and src[i - 1] == "/"
            after = src[i + 2] if i + 2 < n else ""
            if after == "*":
                raise PatternError(f"'***' in {src!r}: use '*' (one segment) or '**' (any depth)")
            if before_slash and after == "/":
                # "/**/" may collapse to "/": the slash already emitted stays, segments optional
                out.append("(?:.*/)?")
                i += 3
            elif before_slash and after == "":
                # trailing "/**": also match the prefix itself without its slash
                out[-1] = "(?:/.*)?"
                i += 2
            else:
                out.append(".*")
                i += 2
        elif c == "*":
            out.append(star)
            i += 1
        elif c == "{":
            end = src.find("}", i)
            if end < 0:
                raise PatternError(f"unclosed '{{' in {src!r}")
            name = src[i + 1:end]
            if not _NAME.fullmatch(name):
                raise PatternError(
                    f"bad capture name {{{name}}} in {src!r}: use letters, digits and _")
            if name in names:
                raise PatternError(f"capture {{{name}}} appears twice in {src!r}")
            names.append(name)
            out.append(f"(?P<{name}>{star[:-1]}+)")
            i = end + 1
        elif c == "}":
            raise PatternError(f"'}}' without '{{' in {src!r}")
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out), tuple(names)


@dataclass(frozen=True, slots=True)
class PathPattern:
    """A compiled `path` / `paths` / `location` pattern."""

    source: str
    names: tuple[str, ...] = ()
    allow_query: bool = False
    _literal: str | None = field(default=None, repr=False, compare=False)
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)
    _origin: str | None = field(default=None, repr=False, compare=False)  # "https://host"
    _with_query: bool = field(default=False, repr=False, compare=False)
    _is_regex: bool = field(default=False, repr=False, compare=False)

    @classmethod
    def compile(cls, src: str, allow_query: bool = False) -> PathPattern:
        if not isinstance(src, str) or not src:
            raise PatternError("a pattern must be a non-empty string")
        if src.startswith(REGEX_PREFIX):
            rx = _compile_regex(src)
            names = tuple(rx.groupindex)
            return cls(src, names, allow_query, None, rx, None, False, True)
        origin = None
        body = src
        if allow_query and (m := _URL_HEAD.fullmatch(src)):
            host = m["host"]
            if not host or "*" in host or "{" in host:
                raise PatternError(f"location {src!r} needs a literal host (no wildcards)")
            origin = f"{m['scheme'].lower()}://{host.lower()}"
            body = m["rest"] or "/"
        if not body.startswith(("/", "**")):
            raise PatternError(f"{src!r} must start with '/' (a path), or be regex:…")
        if any(ch.isspace() for ch in body) or "#" in body:
            raise PatternError(f"{src!r} contains whitespace or '#', which a path never has")
        with_query = "?" in body
        if with_query and not allow_query:
            raise PatternError(
                f"{src!r} contains '?': the query string is not part of the path")
        path_src, _, query_src = body.partition("?")
        path_rx, names = _glob_path_regex(path_src)
        if with_query:
            query_rx, qnames = _glob_path_regex(query_src.replace("**", "*"), star=".*")
            dup = set(names) & set(qnames)
            if dup:
                raise PatternError(f"capture {{{dup.pop()}}} appears twice in {src!r}")
            path_rx += r"\?" + query_rx
            names += qnames
        plain = not names and not any(ch in body for ch in "*{}")
        if plain:
            return cls(src, (), allow_query, body, None, origin, with_query, False)
        return cls(src, names, allow_query, None, re.compile(path_rx, re.DOTALL), origin,
                   with_query, False)

    def match(self, path: str) -> dict[str, str] | None:
        """Captures when `path` (no query unless the pattern has one) matches, else None."""
        if self._literal is not None:
            return {} if path == self._literal else None
        assert self._regex is not None
        m = self._regex.fullmatch(path)
        if m is None:
            return None
        return {k: v for k, v in m.groupdict().items() if v is not None}

    def match_location(self, location: str) -> dict[str, str] | None:
        """Match a (rewritten) Location value, absolute or relative; see the module doc."""
        parts = urlsplit(location)
        if self._origin is not None:
            origin = f"{parts.scheme.lower()}://{parts.netloc.lower()}"
            if not parts.scheme or origin != self._origin:
                return None
        path = parts.path or "/"
        if self._is_regex:
            found = self.match(path)
            if found is None and parts.query:
                found = self.match(f"{path}?{parts.query}")
            return found
        if self._with_query:
            return self.match(f"{path}?{parts.query}")
        return self.match(path)


@dataclass(frozen=True, slots=True)
class GlobPattern:
    """A header-value or URL glob: "*" matches anything; or regex:… (full match)."""

    source: str
    _literal: str | None = field(default=None, repr=False, compare=False)
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def compile(cls, src: str, *, url: bool = False, ignore_case: bool = False) -> GlobPattern:
        if not isinstance(src, str) or not src:
            raise PatternError("a glob must be a non-empty string")
        flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
        if src.startswith(REGEX_PREFIX):
            body = src[len(REGEX_PREFIX):]
            try:
                return cls(src, None, re.compile(body, flags))
            except re.error as e:
                raise PatternError(f"bad regex {src!r}: {e}") from None
        if url:
            return cls(src, None, re.compile(_url_glob_regex(src), flags))
        if "*" not in src and not ignore_case:
            return cls(src, src, None)
        rx = ".*".join(re.escape(part) for part in src.split("*"))
        return cls(src, None, re.compile(rx, flags))

    def match(self, value: str) -> bool:
        if self._literal is not None:
            return value == self._literal
        assert self._regex is not None
        return self._regex.fullmatch(value) is not None


def _url_glob_regex(src: str) -> str:
    m = _URL_HEAD.fullmatch(src)
    if m is None:
        raise PatternError(f"{src!r} must start with http:// or https:// and name a host")
    host, rest = m["host"], m["rest"]
    if not host or not host.replace("*", "").strip(".:-"):
        raise PatternError(f"{src!r} has no host: write e.g. https://wa.me/*")
    if "@" in host or not _HOST_GLOB.fullmatch(host):
        raise PatternError(f"{src!r}: the host {host!r} is not a host name")
    if rest and rest[0] not in "/?#":
        raise PatternError(f"{src!r}: the host must be followed by '/', '?' or nothing")
    wild = host.startswith("*.")
    if "*" in (host[2:] if wild else host):
        raise PatternError(
            f"{src!r}: '*' in a host is only allowed as a leading '*.' (any subdomain)")
    host_rx = (r"(?:[^/?#@:]+\.)" if wild else "") + re.escape(host[2:] if wild else host)
    rest_rx = ".*".join(re.escape(p) for p in rest.split("*"))
    return f"(?i:{re.escape(m['scheme'])}://{host_rx}){rest_rx}"


def match_any(patterns: tuple[PathPattern, ...], path: str) -> Mapping[str, str] | None:
    """The captures of the first pattern that matches `path`, else None."""
    for p in patterns:
        found = p.match(path)
        if found is not None:
            return found
    return None
