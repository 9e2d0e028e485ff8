"""Typed reading of TOML tables: every problem recorded, reading goes on.

`Ctx` collects errors (with key path and line) and the unset `${VAR}`s met; `Table`
reads one TOML table, rejecting unknown keys with a "did you mean", and returns typed
values or the default after recording what was expected. Value checks shared by
several sections (URLs, listen addresses, CIDRs) live here too.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from proxy.config.env import InterpolationError, interpolate, is_whole_reference
from proxy.config.errors import ConfigError, KeyPath, LineIndex, format_key

T = TypeVar("T")
D = TypeVar("D")
MISSING: Any = object()

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "a table"}


def describe(value: object) -> str:
    """How a TOML value reads in an error message: `a string "x"`, `an integer 5`."""
    kinds = {str: "a string", bool: "a boolean", int: "an integer", float: "a number",
             list: "a list", dict: "a table"}
    kind = next((v for k, v in kinds.items() if type(value) is k), type(value).__name__)
    if isinstance(value, (list, dict)):
        return kind
    shown = repr(value) if isinstance(value, str) else str(value).lower() \
        if isinstance(value, bool) else str(value)
    return f"{kind} {shown[:60]}"


class Ctx:
    """The state of one load: the file name, its lines, the environment, the findings."""

    def __init__(self, source: str, lines: LineIndex, env: Mapping[str, str]) -> None:
        self.source = source
        self.lines = lines
        self.env = env
        self.errors: list[ConfigError] = []
        self.warnings: list[ConfigError] = []
        self.unset: list[tuple[KeyPath, str]] = []     # (key path, variable name)

    def at(self, key: KeyPath, message: str) -> ConfigError:
        return ConfigError(self.source, self.lines.line_of(key), format_key(key), message)

    def error(self, key: KeyPath, message: str) -> None:
        self.errors.append(self.at(key, message))

    def warn(self, key: KeyPath, message: str) -> None:
        self.warnings.append(self.at(key, message))

    def text(self, key: KeyPath, value: str, unset_ok: bool = False) -> str | None:
        """Interpolate one string; None when it used an unset variable (recorded)."""
        try:
            out, unset = interpolate(value, self.env)
        except InterpolationError as e:
            self.error(key, str(e))
            return None
        if not unset:
            return out
        if unset_ok:
            self.warn(key, f"${{{unset[0]}}} is not set; left empty")
            return None
        self.unset.extend((key, name) for name in unset)
        return None


class Table:
    """One TOML table being read; unknown keys are errors."""

    def __init__(self, ctx: Ctx, key: KeyPath, raw: Any, allowed: Collection[str],
                 what: str | None = None) -> None:
        self.ctx, self.key = ctx, key
        self.ok = isinstance(raw, dict)
        self.raw: dict[str, Any] = raw if self.ok else {}
        if not self.ok:
            ctx.error(key, f"expected a table, got {describe(raw)}")
        for name in self.raw:
            if name not in allowed:
                ctx.error(key + (name,),
                          unknown_key_message(name, allowed, what or format_key(key)))

    def has(self, name: str) -> bool:
        return name in self.raw

    def get(self, name: str, kind: type[T], default: D = MISSING, *, required: bool = False,
            unset_ok: bool = False, check: Callable[[T], str | None] | None = None) -> T | D:
        """The value of `name` as `kind` (str, int, float or bool); default if absent/bad."""
        key = self.key + (name,)
        if name not in self.raw:
            if required:
                self.ctx.error(key, "is required")
            return default
        value = self.raw[name]
        if isinstance(value, str) and (kind is str or is_whole_reference(value)):
            text = self.ctx.text(key, value, unset_ok=unset_ok)
            if text is None:
                return default
            value = text if kind is str else _coerce(text, kind)
            if value is None:
                self.ctx.error(key, f"expected {_TYPE_NAMES[kind]} from ${{…}}, got {text!r}")
                return default
        if not _is(value, kind):
            self.ctx.error(key, f"expected {_TYPE_NAMES[kind]}, got {describe(value)}")
            return default
        if kind is float:
            value = float(value)
        if check is not None:
            problem = check(value)
            if problem:
                self.ctx.error(key, problem)
                return default
        return value  # type: ignore[no-any-return]

    def size(self, name: str, default: int) -> int:
        """A byte size: an integer (bytes) or a string such as "100MB", "512k" (`parse_size`)."""
        if isinstance(self.raw.get(name), int) and not isinstance(self.raw.get(name), bool):
            return self.get(name, int, default, check=at_least(0))
        text = self.get(name, str, None, check=lambda v: None if parse_size(v) is not None
                        else f"{v!r} is not a size; write bytes or a number with k, m or g "
                             'as nginx does (1024-based), e.g. "100MB", "512k"')
        if text is None:
            return default
        return parse_size(text)  # type: ignore[return-value]

    def strings(self, name: str, default: tuple[str, ...] = (), *, scalar_ok: bool = False,
                check: Callable[[str], str | None] | None = None) -> tuple[str, ...]:
        """A list of strings (each interpolated and checked); bad items are reported."""
        key = self.key + (name,)
        if name not in self.raw:
            return default
        value = self.raw[name]
        if scalar_ok and isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.ctx.error(key, f"expected a list of strings, got {describe(value)}")
            return default
        out: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.ctx.error(key + (i,), f"expected a string, got {describe(item)}")
                continue
            text = self.ctx.text(key + (i,), item)
            if text is None:
                continue
            problem = check(text) if check else None
            if problem:
                self.ctx.error(key + (i,), problem)
                continue
            out.append(text)
        return tuple(out)

    def string_map(self, name: str, *, check_key: Callable[[str], str | None] | None = None,
                   check: Callable[[str], str | None] | None = None) -> dict[str, str]:
        """A table of string -> string (values interpolated and checked)."""
        key = self.key + (name,)
        value = self.raw.get(name, {})
        if not isinstance(value, dict):
            self.ctx.error(key, f"expected a table of strings, got {describe(value)}")
            return {}
        out: dict[str, str] = {}
        for k, v in value.items():
            problem = check_key(k) if check_key else None
            if problem:
                self.ctx.error(key + (k,), problem)
                continue
            if not isinstance(v, str):
                self.ctx.error(key + (k,), f"expected a string, got {describe(v)}")
                continue
            text = self.ctx.text(key + (k,), v)
            if text is None:
                continue
            problem = check(text) if check else None
            if problem:
                self.ctx.error(key + (k,), problem)
                continue
            out[k] = text
        return out


def _is(value: object, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _coerce(text: str, kind: type) -> object | None:
    """A number or bool written as `${VAR}`: parse the variable's text."""
    text = text.strip()
    try:
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        return None
    if kind is bool:
        return {"true": True, "1": True, "yes": True,
                "false": False, "0": False, "no": False}.get(text.lower())
    return None


_SIZE = re.compile(r"\s*(\d+)\s*(?:([kmg])(?:i?b)?|b)?\s*", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def parse_size(text: str) -> int | None:
    """`"100MB"` -> 104857600; units k, m, g (optionally with B or iB) are 1024-based,
    as in nginx's `client_max_body_size`; a plain number is bytes. None when not a size."""
    m = _SIZE.fullmatch(text)
    if m is None:
        return None
    unit = m.group(2).lower() if m.group(2) else None
    return int(m.group(1)) * _SIZE_UNITS[unit]


def unknown_key_message(name: str, allowed: Collection[str], where: str) -> str:
    close = difflib.get_close_matches(name, list(allowed), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key {name!r} in [{where}]; {hint}allowed: {', '.join(sorted(allowed))}"


# --- value checks: each returns a problem or None ------------------------------------

def positive(v: float) -> str | None:
    return None if v > 0 else f"must be greater than 0, got {v}"


def nonempty(v: str) -> str | None:
    return None if v.strip() else "must not be empty"


def at_least(low: int, high: int | None = None) -> Callable[[int], str | None]:
    def check(v: int) -> str | None:
        if v < low or (high is not None and v > high):
            return f"must be {low}..{high}, got {v}" if high else f"must be ≥ {low}, got {v}"
        return None
    return check


def one_of(*choices: str) -> Callable[[str], str | None]:
    def check(v: str) -> str | None:
        return None if v in choices else f"{v!r} is not allowed; one of: {', '.join(choices)}"
    return check


def http_url(v: str, *, root_only: bool = False) -> str | None:
    """An absolute http(s) URL with a host (and, with root_only, no path/query)."""
    try:
        parts = urlsplit(v)
        parts.port   # noqa: B018 - raises on a bad port
    except ValueError as e:
        return f"{v!r} is not a URL: {e}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{v!r} must be an absolute http:// or https:// URL with a host"
    if root_only and (parts.path not in ("", "/") or parts.query or parts.fragment):
        return f"{v!r} must be an origin like https://host[:port], without path or query"
    if parts.username or parts.password:
        return f"{v!r} must not carry user:password"
    return None


def listen_address(v: str) -> str | None:
    host, sep, port = v.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        return f"{v!r} must be HOST:PORT, e.g. 0.0.0.0:8080 or [::]:8080 (port 0..65535)"
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host.strip("[]"))
        except ValueError:
            return f"{v!r}: {host} is not an IPv6 address"
    elif host and not re.fullmatch(r"[A-Za-z0-9.-]+", host):
        return f"{v!r}: {host!r} is not a host name or IPv4 address"
    return None


def parse_listen(listen: str) -> tuple[str, int]:
    """A valid listen address as (host, port); an empty host is every IPv4 address."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def cidr(v: str) -> str | None:
    try:
        ipaddress.ip_network(v, strict=False)
    except ValueError:
        return f"{v!r} is not an IP address or CIDR network (e.g. 10.0.0.0/8)"
    return None


def token(v: str) -> str | None:
    """A cookie / parameter name: visible ASCII without separators."""
    if re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", v):
        return None
    return f"{v!r} is not a valid name (letters, digits and !#$%&'*+.^_`|~-)"
