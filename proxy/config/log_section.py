"""`[log]`: the access log's format, the app log's format and level, redaction.

`[proxy] access_log = true|false` (0.1) is still read: `false` means `[log] access =
"off"`; `check` warns that it is deprecated. `[log] access`, when given, wins.
"""

from __future__ import annotations

from typing import Any, Literal, cast

from proxy.app_log import level_problem
from proxy.config import tables
from proxy.config.model import LogSection
from proxy.config.schema import Ctx, Table, one_of

ACCESS = ("json", "combined", "off")
FORMATS = ("text", "json")


def log_section(ctx: Ctx, raw: Any, legacy_access: bool | None) -> LogSection:
    t = Table(ctx, ("log",), raw, tables.LOG.names)
    d = LogSection()
    if legacy_access is not None:
        ctx.warn(("proxy", "access_log"), 'is deprecated: write [log] access = "off" '
                 '(or "json", "combined")' + ("; [log] access wins" if t.has("access") else ""))
    default_access = d.access if legacy_access is not False else "off"
    access: str = t.get("access", str, default_access, check=one_of(*ACCESS))
    fmt: str = t.get("format", str, d.format, check=one_of(*FORMATS))
    return LogSection(
        access=cast(Literal["json", "combined", "off"], access),
        format=cast(Literal["text", "json"], fmt),
        level=t.get("level", str, d.level, check=level_problem).strip().lower(),
        redact=t.get("redact", bool, d.redact),
        health=t.get("health", bool, d.health))
