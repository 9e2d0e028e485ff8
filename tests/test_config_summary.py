"""`check`'s report: the summary of a valid file, the error list, and line finding."""

from __future__ import annotations

import string
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from test_config_load import ENV, SPEC_EXAMPLE

from proxy.config.errors import ConfigError, LineIndex, format_errors
from proxy.config.load import load_config, load_config_text
from proxy.config.summary import summary


def test_summary_of_the_spec_example(tmp_path: Path) -> None:
    warnings: list[ConfigError] = []
    env = {k: v for k, v in ENV.items() if k != "CAREERS_EDGE_SECRET"}
    path = tmp_path / "rules.toml"
    path.write_text(SPEC_EXAMPLE)
    config = load_config(path, env, warnings=warnings)
    text = summary(config, warnings)
    lines = text.splitlines()
    assert lines[0] == f"{path}: valid"
    assert any("https://acme.hosted-ats.example" in line for line in lines)
    assert "GET /jobs/{job_id}/apply 200 → ConversationStart → meta" in text
    assert ("POST /jobs/{job_id}/apply 302,303 location /jobs/*/thanks* → ApplicationCompleted"
            " → talroo, meta, appcast, ats") in text
    assert "api.appcast.example" in text and "hooks.acme.example" in text
    assert "graph.facebook.com" in text and "/v1/events" not in text   # hosts only
    assert "generated once" in text                                       # no secret set
    assert "proxy.secret" in text                                         # the warning
    assert len(lines) < 40                                                # one screen


def test_summary_hides_redis_password_and_shows_missing_upstream() -> None:
    text = summary(load_config_text(
        "[proxy]\nstate = 'redis://:hunter2@redis.internal:6379/0'\n", "r", {},
        allow_missing_upstream=True))
    assert "hunter2" not in text and "redis://redis.internal:6379/0" in text
    assert "--upstream" in text


secret_text = st.text(alphabet=string.ascii_letters + string.digits + "-_.~", min_size=8,
                      max_size=40)


@settings(max_examples=60)
@given(secret_text, secret_text, secret_text, secret_text, secret_text)
def test_summary_never_contains_a_secret(token: str, hook: str, api: str, cookie: str,
                                         query_key: str) -> None:
    env = {**ENV, "META_ACCESS_TOKEN": "T" + token, "WEBHOOK_SECRET": "W" + hook,
           "CAREERS_EDGE_API_TOKEN": "A" + api, "CAREERS_EDGE_SECRET": "C" + cookie,
           "APPCAST_EVENTS_URL": f"https://api.appcast.example/ev?key=K{query_key}"}
    text = summary(load_config_text(SPEC_EXAMPLE, "r", env))
    for value in ("T" + token, "W" + hook, "A" + api, "C" + cookie, "K" + query_key):
        assert value not in text


def test_format_errors_sorts_by_line_and_counts() -> None:
    errs = [ConfigError("a.toml", 9, "rules[0].path", "bad"),
            ConfigError("a.toml", None, "--upstream", "not a URL"),
            ConfigError("a.toml", 2, "proxy.listen", "bad listen")]
    assert format_errors(errs).splitlines() == [
        "a.toml:2: proxy.listen: bad listen",
        "a.toml:9: rules[0].path: bad",
        "a.toml: --upstream: not a URL",
        "3 errors in a.toml",
    ]
    assert format_errors(errs[:1]).splitlines()[-1] == "1 error in a.toml"


def test_line_index_tables_arrays_inline_and_multiline_strings() -> None:
    text = '''\
[proxy]
upstream = "x"
[pixels.p]
html = """
fake = "not a key"
[not.a.table]
"""
csp = { script-src = ["a"], img-src = ["b"] }
[[rules]]
name = "a"
[[rules]]
"name" = "b"
[rules.extract]
title = "css:h1"
[sinks."my sink"]
url = "u"
'''
    idx = LineIndex(text)
    assert idx.line_of(("proxy", "upstream")) == 2
    assert idx.line_of(("pixels", "p", "html")) == 4
    assert idx.line_of(("pixels", "p", "csp", "img-src")) == 8
    assert idx.line_of(("not",)) is None
    assert idx.line_of(("rules", 0, "name")) == 10
    assert idx.line_of(("rules", 1, "name")) == 12
    assert idx.line_of(("rules", 1, "extract", "title")) == 14
    assert idx.line_of(("rules", 1, "status", 0)) == 11          # falls back to the table
    assert idx.line_of(("sinks", "my sink", "url")) == 16


def test_summary_shows_allowed_paths() -> None:
    text = summary(load_config_text(
        "[proxy]\nupstream = 'https://ats.example'\nallow_paths = ['/acme', '/acme/**']\n",
        "r", {}))
    assert "/acme /acme/**  (others: 404)" in text
    assert "every path" in summary(load_config_text(
        "[proxy]\nupstream = 'https://ats.example'\n", "r", {}))
