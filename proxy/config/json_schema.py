"""The JSON Schema (draft 2020-12) of the rules file, built from the key tables.

It describes the TOML as written: editors (taplo, Even Better TOML) complete and
check keys with it. A string may carry a `${VAR}`, so a constrained string (a choice,
a pattern) also accepts any string with a `${` in it, and a number or boolean a whole
`${VAR}`; the loader checks those once the variables are known.
"""

from __future__ import annotations

from typing import Any

from proxy.config.keys import ENV_WHOLE, Described, Key, Section, default_of
from proxy.config.tables import SECTIONS

DRAFT = "https://json-schema.org/draft/2020-12/schema"
DEFS: dict[str, Any] = {
    "env": {"type": "string", "pattern": ENV_WHOLE,
            "description": "a whole ${VAR} (or ${VAR:-default}), read when the file is loaded"},
    "env_string": {"type": "string", "pattern": r"\$\{",
                   "description": "a string with a ${VAR} in it, checked when the file is "
                                  "loaded"},
    "status": {"anyOf": [{"type": "integer", "minimum": 100, "maximum": 599},
                         {"type": "string", "pattern": "^[1-5][xX][xX]$"}]},
}


def rules_schema() -> dict[str, Any]:
    defs = dict(DEFS)
    properties: dict[str, Any] = {}
    for section in SECTIONS:
        if section.many:
            defs[section.name] = table_schema(section)
            ref = {"$ref": f"#/$defs/{section.name}"}
            properties[section.name] = (
                {"type": "array", "items": ref} if section.many == "array"
                else {"type": "object", "additionalProperties": ref})
            properties[section.name]["description"] = f"{section.heading}: {section.doc}"
        else:
            properties[section.name] = table_schema(section)
    return {
        "$schema": DRAFT,
        "title": "careers-edge rules file",
        "description": "The TOML rules file of careers-edge; see docs/configuration.md.",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "$defs": defs,
    }


def table_schema(section: Section) -> dict[str, Any]:
    variants = section.variants
    properties = {k.name: key_schema(k, section, variant_names=tuple(variants))
                  for k in section.keys}
    for keys in variants.values():        # every key, for completion; its type says more
        for k in keys:
            properties.setdefault(k.name, key_schema(k, section))
    out: dict[str, Any] = {
        "type": "object",
        "description": f"{section.heading}: {section.doc}",
        "properties": properties,
        "additionalProperties": False,
    }
    if required := section.required():
        out["required"] = list(required)
    if variants:
        out["allOf"] = [_variant(section, kind) for kind in variants]
    return out


def _variant(section: Section, kind: str) -> dict[str, Any]:
    own = section.variants[kind]
    names = {k.name for k in own}
    others = [n for n in section.names if n not in names and n not in section.common]
    then: dict[str, Any] = {"properties": {
        **{k.name: key_schema(k, section) for k in own}, **dict.fromkeys(others, False)}}
    if required := section.required(kind):
        then["required"] = list(required)
    return {"if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
            "then": then}


def key_schema(key: Key, section: Section, *, variant_names: tuple[str, ...] = ()
               ) -> dict[str, Any]:
    value: dict[str, Any] = dict(key.kind.schema)
    choices = key.choices or (variant_names if key.name == "type" else ())
    if choices:
        value["enum"] = list(choices)
    if key.pattern:
        value["pattern"] = key.pattern
    for word, bound in (("minimum", key.minimum), ("exclusiveMinimum", key.above),
                        ("maximum", key.maximum)):
        if bound is not None:
            value[word] = bound
    if key.kind.scalar:
        value = {"anyOf": [value, {"$ref": "#/$defs/env"}]}
    elif choices or key.pattern:
        value = {"anyOf": [value, {"$ref": "#/$defs/env_string"}]}
    out: dict[str, Any] = {"description": key.doc, **value}
    default = default_of(key, section.model)
    if not isinstance(default, Described):
        out["default"] = default
    out["examples"] = [key.example]
    return out
