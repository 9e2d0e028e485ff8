"""What is wrong with a rules file, and where: errors, their report, and line lookup.

tomllib reports no positions for values, so `LineIndex` scans the text once for
table headers (`[x]`, `[[rules]]`) and `key =` lines and maps each key path to its
line; a key it cannot place falls back to its table's header line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

KeyPath = tuple["str | int", ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_KEY_PART = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|([A-Za-z0-9_-]+))\s*')
_KEY_LINE = re.compile(
    r'^\s*((?:"(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_-]+)'
    r'(?:\s*\.\s*(?:"(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_-]+))*)\s*=(.*)$')
_INLINE_KEY = re.compile(r'[{,]\s*("[^"]*"|\'[^\']*\'|[A-Za-z0-9_-]+)\s*=')
_TOML_POS = re.compile(r"\s*\(at line (\d+), column \d+\)\s*$")
_TOML_END = " (at end of document)"


def format_key(path: Iterable[str | int]) -> str:
    """("rules", 1, "path") -> "rules[1].path"; odd key names are quoted as in TOML."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if _BARE_KEY.fullmatch(part) else f'"{part}"'
            out += f".{text}" if out else text
    return out


@dataclass(frozen=True, slots=True)
class ConfigError:
    """One problem: the file, its line when known, the key path, what is wrong."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigErrors(ValueError):
    """Every problem found in a rules file (never only the first)."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        self.errors = list(errors)
        super().__init__(format_errors(self.errors))


def format_errors(errors: Sequence[ConfigError]) -> str:
    """One `FILE:LINE: KEY: MESSAGE` line per error, by line, then a count line."""
    ordered = sorted(errors, key=lambda e: (e.line is None, e.line or 0, e.key))
    lines = [str(e) for e in ordered]
    n = len(ordered)
    files = sorted({e.file for e in ordered})
    lines.append(f"{n} error{'s' if n != 1 else ''}" + (f" in {', '.join(files)}" if files else ""))
    return "\n".join(lines)


def toml_syntax_error(file: str, exc: Exception, text: str = "") -> ConfigError:
    """A tomllib.TOMLDecodeError as one ConfigError with its line (an error at the end
    of the document, such as an unclosed array, is on the file's last line)."""
    msg = str(exc)
    m = _TOML_POS.search(msg)
    line = int(m.group(1)) if m else None
    if m:
        msg = msg[: m.start()]
    elif msg.endswith(_TOML_END):
        msg, line = msg[: -len(_TOML_END)], max(1, len(text.splitlines()))
    return ConfigError(file, line, "", f"TOML syntax: {msg}")


def _split_key(text: str) -> list[str]:
    parts: list[str] = []
    pos = 0
    while pos < len(text):
        m = _KEY_PART.match(text, pos)
        if not m:
            break
        parts.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
        if pos < len(text) and text[pos] == ".":
            pos += 1
    return parts


class LineIndex:
    """Key path -> line number, found by a light scan of the TOML text."""

    def __init__(self, text: str) -> None:
        self._lines: dict[KeyPath, int] = {}
        self._arrays: dict[KeyPath, int] = {}
        self._scan(text)

    def _resolve(self, parts: Sequence[str]) -> KeyPath:
        path: list[str | int] = []
        for part in parts:
            path.append(part)
            count = self._arrays.get(tuple(path))
            if count:
                path.append(count - 1)     # [a.b] after [[a]] belongs to the last a
        return tuple(path)

    def _record(self, path: KeyPath, line: int) -> None:
        self._lines.setdefault(path, line)

    def _scan(self, text: str) -> None:
        table: KeyPath = ()
        in_string: str | None = None     # the delimiter of an open multi-line string
        for number, line in enumerate(text.splitlines(), start=1):
            if in_string:
                if line.count(in_string) % 2 == 1:
                    in_string = None
                continue
            stripped = line.strip()
            if stripped.startswith("[["):
                parts = _split_key(stripped[2:stripped.find("]]")])
                if parts:
                    base = self._resolve(parts[:-1]) + (parts[-1],)
                    self._arrays[base] = self._arrays.get(base, 0) + 1
                    table = base + (self._arrays[base] - 1,)
                    self._record(table, number)
                continue
            if stripped.startswith("["):
                table = self._resolve(_split_key(stripped[1:stripped.find("]")]))
                self._record(table, number)
                continue
            m = _KEY_LINE.match(line)
            if not m:
                continue
            key = table + tuple(_split_key(m.group(1)))
            self._record(key, number)
            value = m.group(2)
            if value.lstrip().startswith("{"):
                for inner in _INLINE_KEY.finditer(value):
                    self._record(key + tuple(_split_key(inner.group(1))), number)
            for delim in ('"""', "'''"):
                if value.count(delim) % 2 == 1:
                    in_string = delim
                    break

    def line_of(self, path: KeyPath) -> int | None:
        """The line of `path`, else of its nearest enclosing key or table."""
        for end in range(len(path), 0, -1):
            line = self._lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None
