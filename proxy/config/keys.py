"""The vocabulary of the key tables: what a key of the rules file is, declared once.

A `Key` names one key, its `Kind` (what TOML value it takes), its default, an
example and a one-line meaning; a `Section` holds the keys of one table (and, for
`[pixels.NAME]` and `[sinks.NAME]`, the keys each `type` adds). The tables themselves
are in `tables.py` and `named_tables.py`: the readers take their allowed keys from them, and
`reference.py` writes docs/configuration.md and docs/rules.schema.json from them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# A whole `${VAR}` (or `${VAR:-default}`) may stand for a number or a boolean.
ENV_WHOLE = r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}$"


@dataclass(frozen=True, slots=True)
class Kind:
    """What TOML value a key takes: its name in the reference and its JSON Schema."""

    name: str
    schema: Mapping[str, Any]
    scalar: bool = False          # a number or boolean: a whole ${VAR} may stand for it


STRING = Kind("string", {"type": "string"})
INTEGER = Kind("integer", {"type": "integer"}, scalar=True)
NUMBER = Kind("number", {"type": "number"}, scalar=True)
BOOLEAN = Kind("boolean", {"type": "boolean"}, scalar=True)
STRINGS = Kind("list of strings", {"type": "array", "items": {"type": "string"}})
STRING_TABLE = Kind("table of strings",
                    {"type": "object", "additionalProperties": {"type": "string"}})
SIZE = Kind("size: bytes, or a number with k, m or g (1024-based)", {
    "anyOf": [{"type": "integer", "minimum": 0},
              {"type": "string", "pattern": r"^\s*[0-9]+\s*(([kmgKMG])([iI]?[bB])?|[bB])?\s*$"}]},
    scalar=True)
STRING_OR_STRINGS = Kind("string or list of strings", {
    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})


@dataclass(frozen=True, slots=True)
class Described:
    """A default that is worked out rather than a value, as the reference says it."""

    text: str


class _FromModel:
    def __repr__(self) -> str:
        return "FROM_MODEL"


FROM_MODEL: Any = _FromModel()     # the default of the model field of the same name
NO_DEFAULT: Any = Described("")   # required, or absent means "not set"


@dataclass(frozen=True, slots=True)
class Key:
    """One key: what the reference says of it and what the schema checks."""

    name: str
    kind: Kind
    doc: str                              # one line: what it means
    example: Any                          # a TOML value
    default: Any = FROM_MODEL             # a TOML value, a `Described`, or FROM_MODEL
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    above: float | None = None            # an exclusive minimum: "must be greater than"
    maximum: float | None = None
    pattern: str | None = None            # a regex the (interpolated) string must match
    attr: str | None = None               # the model field, when not `name`


@dataclass(frozen=True)
class Section:
    """One table of the rules file: `[proxy]`, `[pixels.NAME]`, `[[rules]]`, …"""

    name: str                             # the top-level key: "proxy", "pixels", "rules"
    heading: str                          # how it is written: "[proxy]", "[[rules]]"
    doc: str
    keys: tuple[Key, ...]
    model: type | None = None             # the frozen dataclass it loads into
    many: Literal["", "named", "array"] = ""    # one table; [x.NAME] tables; [[x]] array
    variants: Mapping[str, tuple[Key, ...]] = field(default_factory=dict)  # by `type`

    @property
    def names(self) -> tuple[str, ...]:
        """Every key a table of this section may hold, whatever its `type`."""
        found = dict.fromkeys(k.name for k in self.keys)
        for keys in self.variants.values():
            found.update(dict.fromkeys(k.name for k in keys))
        return tuple(found)

    @property
    def common(self) -> tuple[str, ...]:
        """The keys of every table of this section, whatever its `type`."""
        return tuple(k.name for k in self.keys)

    def variant_names(self) -> dict[str, tuple[str, ...]]:
        return {kind: tuple(k.name for k in keys) for kind, keys in self.variants.items()}

    def required(self, variant: str | None = None) -> tuple[str, ...]:
        keys = self.variants.get(variant, ()) if variant else self.keys
        return tuple(k.name for k in keys if k.required)


def default_of(key: Key, model: type | None) -> Any:
    """The key's default: its own, or its model field's; NO_DEFAULT when there is none."""
    if key.default is not FROM_MODEL:
        return key.default
    fields = {f.name: f for f in dataclasses.fields(model)} if model else {}
    f = fields.get(key.attr or key.name)
    if f is None:
        return NO_DEFAULT
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return NO_DEFAULT
    return as_toml(value)


def as_toml(value: Any) -> Any:
    """A model value as the TOML value that gives it: tuples as lists, maps as tables."""
    if value is None:
        return NO_DEFAULT
    if isinstance(value, (tuple, list)):
        return [as_toml(v) for v in value]
    if isinstance(value, Mapping):
        return {k: as_toml(v) for k, v in value.items()}
    return value
