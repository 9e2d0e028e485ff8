"""The environment's say in the config: `${VAR}` interpolation and run-time overrides.

Interpolation: `${NAME}` anywhere in a string value is replaced by the variable's
value (also inside a longer string: "${BASE}/events?e={event}"); `${NAME:-default}`
gives `default` when NAME is unset or empty, as in a shell; `$${` is a literal
`${`; a lone `$` stays as it is. An unset variable is reported to the caller, which
decides whether it matters (see load.py). A set but empty variable is the empty string.

Overrides: `run --listen/--upstream/--workers/--admin-listen` win over
`CAREERS_EDGE_LISTEN`, `CAREERS_EDGE_UPSTREAM`, `CAREERS_EDGE_WORKERS`,
`CAREERS_EDGE_ADMIN_LISTEN`, which win over the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

ENV_LISTEN = "CAREERS_EDGE_LISTEN"
ENV_UPSTREAM = "CAREERS_EDGE_UPSTREAM"
ENV_WORKERS = "CAREERS_EDGE_WORKERS"
ENV_ADMIN_LISTEN = "CAREERS_EDGE_ADMIN_LISTEN"

_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class InterpolationError(ValueError):
    """A malformed `${...}` reference."""


def interpolate(value: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """`value` with every `${NAME}` replaced; also the names that were unset.

    An unset variable is replaced by the empty string in the returned text; callers
    that care look at the second item.
    """
    if "$" not in value:
        return value, []
    unset: list[str] = []

    def sub(m: re.Match[str]) -> str:
        whole = m.group(0)
        if whole == "$${":
            return "${"
        name = m.group(1)
        default = None
        if name is not None and ":-" in name:
            name, default = name.split(":-", 1)
        if name is None:
            raise InterpolationError(
                f"'${{' without a closing '}}' in {value!r} (write $${{ for a literal ${{)")
        if not _NAME.fullmatch(name):
            raise InterpolationError(
                f"${{{name}}} is not a variable name: use letters, digits and _ "
                f"(write $${{ for a literal ${{)")
        if default is not None and not env.get(name):
            return default
        if name not in env:
            unset.append(name)
            return ""
        return env[name]

    return _REF.sub(sub, value), unset


def is_whole_reference(value: str) -> bool:
    """True for a string that is exactly one `${NAME}` or `${NAME:-default}` (usable
    for a number or bool)."""
    m = _REF.fullmatch(value)
    return bool(m and m.group(1) is not None
                and _NAME.fullmatch(m.group(1).split(":-", 1)[0]))


@dataclass(frozen=True, slots=True)
class Overrides:
    """Values from flags or the environment that replace the file's `[proxy]` ones.

    `origin` names where each came from ("--upstream" or "CAREERS_EDGE_UPSTREAM"), so
    an error about it points at the right place.
    """

    listen: str | None = None
    upstream: str | None = None
    workers: str | int | None = None
    origin: Mapping[str, str] | None = None
    admin_listen: str | None = None      # [admin] listen; "off" turns the listener off

    @classmethod
    def resolve(cls, env: Mapping[str, str], listen: str | None = None,
                upstream: str | None = None, workers: str | int | None = None,
                admin_listen: str | None = None) -> Overrides:
        """Flags (the arguments) first, then the environment."""
        origin: dict[str, str] = {}
        values: dict[str, str | int | None] = {}
        for key, flag, var in (("listen", listen, ENV_LISTEN), ("upstream", upstream, ENV_UPSTREAM),
                               ("workers", workers, ENV_WORKERS),
                               ("admin_listen", admin_listen, ENV_ADMIN_LISTEN)):
            if flag is not None:
                values[key], origin[key] = flag, f"--{key.replace('_', '-')}"
            elif env.get(var):
                values[key], origin[key] = env[var], var
            else:
                values[key] = None
        return cls(values["listen"], values["upstream"], values["workers"],  # type: ignore[arg-type]
                   origin, values["admin_listen"])  # type: ignore[arg-type]

    def origin_of(self, key: str) -> str:
        return (self.origin or {}).get(key, f"--{key.replace('_', '-')}")
