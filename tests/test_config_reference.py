"""The configuration reference and the JSON Schema: generated from the key tables,
committed as generated, true to what the loader does.

- docs/configuration.md and docs/rules.schema.json equal what `config-reference`
  writes now (a key added to a table without regenerating fails here);
- the schema is valid draft 2020-12 and every rules file shipped in rules/ passes it,
  as written and after `${VAR}` interpolation with placeholder values;
- every key has a meaning and an example the schema accepts; the loader accepts every
  key of a table and rejects any other; a minimal file loads to the defaults the
  tables document.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from proxy.config.env import interpolate
from proxy.config.errors import ConfigErrors
from proxy.config.json_schema import DEFS, key_schema, rules_schema
from proxy.config.keys import Described, Key, Section, default_of
from proxy.config.load import load_config_text
from proxy.config.named_tables import SINKS
from proxy.config.reference import REFERENCE, SCHEMA, generated, toml_value
from proxy.config.tables import SECTIONS
from proxy.detect.patterns import PathPattern
from tests.integration.procs import child_env
from tests.test_rules_files import ALL_FILES, env_for

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
VALIDATOR = jsonschema.Draft202012Validator(rules_schema())
UPSTREAM = "https://ats.example"


def every_key() -> list[tuple[Section, str | None, Key]]:
    out: list[tuple[Section, str | None, Key]] = []
    for section in SECTIONS:
        out += [(section, None, k) for k in section.keys]
        for kind, keys in section.variants.items():
            out += [(section, kind, k) for k in keys]
    return out


KEYS = every_key()
KEY_IDS = [f"{s.name}.{v + '.' if v else ''}{k.name}" for s, v, k in KEYS]


@pytest.mark.parametrize("name", [REFERENCE, SCHEMA])
def test_committed_files_are_what_the_tables_generate(name: str) -> None:
    committed = (DOCS / name).read_text(encoding="utf-8")
    assert committed == generated()[name], (
        f"docs/{name} is out of date: run `careers-edge config-reference` and commit it")


def test_the_command_writes_both_files_and_check_finds_a_stale_one(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "proxy", "config-reference", *args],
                              cwd=tmp_path, env=child_env(), capture_output=True, text=True)

    assert cli().returncode == 0
    for name, text in generated().items():
        assert (tmp_path / "docs" / name).read_text(encoding="utf-8") == text
    assert cli("--check").returncode == 0
    (tmp_path / "docs" / SCHEMA).write_text("{}\n")
    stale = cli("--check")
    assert stale.returncode == 1 and SCHEMA in stale.stderr
    assert (tmp_path / "docs" / SCHEMA).read_text() == "{}\n"      # --check wrote nothing


def test_the_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(rules_schema())


def interpolated(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, env)[0]
    if isinstance(value, list):
        return [interpolated(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolated(v, env) for k, v in value.items()}
    return value


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_every_shipped_rules_file_passes_the_schema(path: Path) -> None:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    for doc in (raw, interpolated(raw, env_for(path))):
        errors = [f"{e.json_path}: {e.message}" for e in VALIDATOR.iter_errors(doc)]
        assert errors == []


def test_the_schema_rejects_what_the_loader_rejects() -> None:
    bad = {
        "proxy": {"upstream": UPSTREAM, "workers": 0, "timeout": "soon", "colour": "red"},
        "pixels": {"m": {"type": "meta"}, "h": {"type": "html", "html": "x", "pixel_id": "1"},
                   "x": {"type": "gif"}},
        "sinks": {"w": {"type": "webhook", "url": "https://h.example/"}},
        "rules": [{"event": "Lead", "path": "/x", "status": [42], "dedupe": 1}],
    }
    found = {(e.json_path, e.validator) for e in VALIDATOR.iter_errors(bad)}
    assert found >= {
        ("$.proxy.workers", "anyOf"), ("$.proxy.timeout", "anyOf"),
        ("$.proxy", "additionalProperties"), ("$.pixels.m", "required"),
        ("$.pixels.h", None), ("$.pixels.x.type", "anyOf"),
        ("$.sinks.w", "required"), ("$.rules[0].status", "anyOf"),
        ("$.rules[0]", "additionalProperties")}
    # A ${VAR} stands for anything: the loader checks it when the variable is known.
    assert not list(VALIDATOR.iter_errors(
        {"proxy": {"workers": "${WORKERS}"}, "pixels": {"m": {"type": "meta",
                                                             "pixel_id": "${PIXEL}"}}}))


@pytest.mark.parametrize(("section", "variant", "key"), KEYS, ids=KEY_IDS)
def test_every_key_has_a_meaning_and_an_example_the_schema_accepts(
        section: Section, variant: str | None, key: Key) -> None:
    assert key.doc and "\n" not in key.doc
    toml_value(key.example)       # writable as TOML
    schema = {"$defs": DEFS, **key_schema(key, section, variant_names=tuple(section.variants))}
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(key.example)) == []


@pytest.mark.parametrize("section", [s for s in SECTIONS if not s.many], ids=lambda s: s.name)
def test_the_loader_takes_its_allowed_keys_from_the_table(section: Section) -> None:
    text = f'[proxy]\nupstream = "{UPSTREAM}"\n'
    text += "not_a_key = 1\n" if section.name == "proxy" else f"[{section.name}]\nnot_a_key = 1\n"
    with pytest.raises(ConfigErrors) as exc:
        load_config_text(text, env={})
    (error,) = exc.value.errors
    assert error.key == f"{section.name}.not_a_key"
    assert "allowed: " + ", ".join(sorted(section.names)) in error.message


def test_pixels_sinks_and_rules_take_their_keys_from_the_tables() -> None:
    text = f"""
[proxy]
upstream = "{UPSTREAM}"
[pixels.p]
type = "meta"
pixel_id = "1"
html = "<b></b>"
[sinks.s]
type = "talroo"
url = "https://t.example/"
secret = "x"
[[rules]]
event = "Lead"
path = "/"
send_to = "s"
then = 1
"""
    with pytest.raises(ConfigErrors) as exc:
        load_config_text(text, env={})
    by_key = {e.key: e.message for e in exc.value.errors}
    assert set(by_key) == {"pixels.p.html", "sinks.s.secret", "rules[0].then"}
    talroo = SINKS.common + SINKS.variant_names()["talroo"]
    assert by_key["sinks.s.secret"].endswith("allowed: " + ", ".join(sorted(talroo)))


# Required unless `event_names` names a conversion for every event: a minimal file has them.
REQUIRED_UNLESS_NAMED = {("google_ads", "conversion_action"), ("linkedin", "conversion")}


def minimal_file() -> str:
    """Only what is required, each table once and each pixel and sink type once, with the
    tables' own examples for the required values."""
    lines = ["[proxy]", f'upstream = "{UPSTREAM}"']
    for section in SECTIONS:
        tables = {f"[{section.name}.{kind}]": (f'type = "{kind}"',) + tuple(
            f"{k.name} = {toml_value(k.example)}" for k in keys
            if k.required or (kind, k.name) in REQUIRED_UNLESS_NAMED)
            for kind, keys in section.variants.items()}
        if section.many == "array":
            tables[f"[[{section.name}]]"] = tuple(
                f"{k.name} = {toml_value(k.example)}" for k in section.keys if k.required)
        for heading, body in tables.items():
            lines += [heading, *body]
    return "\n".join(lines) + "\n"


MINIMAL = minimal_file()
MINIMAL_ENV = dict.fromkeys(interpolate(MINIMAL, {})[1], "https://env.example")   # fits any key


def as_written(value: Any, like: Any = None) -> Any:
    """A loaded value as the TOML that gives it (patterns by their source, (name, glob)
    pairs as the table they were read from when `like` is a table)."""
    if isinstance(value, PathPattern):
        return value.source
    if isinstance(value, Mapping):
        return {k: as_written(v) for k, v in value.items()}
    if isinstance(like, dict) and isinstance(value, tuple):
        return {k: as_written(v) for k, v in value}
    if isinstance(value, (tuple, list)):
        return [as_written(v) for v in value]
    return value


def loaded_tables(config: Any, section: Section, variant: str | None) -> list[Any]:
    value = getattr(config, section.name)
    if section.many == "named":
        found = list(value.values()) if isinstance(value, Mapping) else list(value)
        return [t for t in found if variant is None or t.type == variant]
    return list(value) if section.many == "array" else [value]


@pytest.mark.parametrize(("section", "variant", "key"), KEYS, ids=KEY_IDS)
def test_the_loader_gives_the_documented_defaults(
        section: Section, variant: str | None, key: Key) -> None:
    default = default_of(key, section.model)
    if isinstance(default, Described) or key.required:
        return
    config = load_config_text(MINIMAL, env=MINIMAL_ENV)
    tables = loaded_tables(config, section, variant)
    assert tables
    for table in tables:
        assert as_written(getattr(table, key.attr or key.name), default) == default
