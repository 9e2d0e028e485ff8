"""`json` / `request_json` conditions and `json:` / `request_json:` extractors in the rules file."""

from __future__ import annotations

import textwrap

import pytest
from test_config_load import MINIMAL, errors_of, one_error

from proxy.config.load import load_config_text
from proxy.config.summary import summary
from proxy.detect.jsonexpr import JsonExpr

RULE = MINIMAL + '''\
[sinks.s]
type = "webhook"
url = "https://h.example"
secret = "x"
[[rules]]
name = "submit"
event = "ApplicationCompleted"
method = "POST"
path = "/api/non-user-graphql"
'''
LINE = RULE.count("\n") + 1


def test_conditions_and_extractors_load_compiled() -> None:
    text = RULE + textwrap.dedent('''\
        json = { errors = "null", "data.submit.success" = "true" }
        request_json = { operationName = "ApiSubmit*" }
        job_name = "json:data.submit.job.title"
        extract = { posting = "request_json:variables.jobPostingId" }
        ''')
    rule = load_config_text(text, "rules.toml", {}).rules[0]
    assert [(e.source, g) for e, g in rule.json] == [("errors", "null"),
                                                     ("data.submit.success", "true")]
    assert all(isinstance(e, JsonExpr) for e, _ in rule.json + rule.request_json)
    assert rule.job_name is not None and rule.job_name.kind == "json"
    assert rule.job_name.expr is not None and rule.job_name.expr.source == "data.submit.job.title"
    assert rule.extract["posting"].expr is not None


def test_tables_on_their_own_lines_and_env_globs() -> None:
    text = RULE + textwrap.dedent('''\
        [rules.json]
        "errors" = "null"
        'data."weird key"' = "${OK}"
        ''')
    rule = load_config_text(text, "rules.toml", {"OK": "true"}).rules[0]
    assert [(e.source, g) for e, g in rule.json] == [("errors", "null"),
                                                     ('data."weird key"', "true")]


@pytest.mark.parametrize(("extra", "key", "fragment"), [
    ('json = { "data.[" = "x" }', 'rules[0].json."data.["', "bad JMESPath expression"),
    ('json = { "nosuch(@)" = "x" }', 'rules[0].json."nosuch(@)"', "unknown function"),
    ('json = { "a" = "regex:(" }', "rules[0].json.a", "bad regex"),
    ('json = { "a" = 1 }', "rules[0].json.a", "expected a string"),
    ('json = "errors"', "rules[0].json", "expected a table"),
    ('request_json = { "a b" = "x" }', 'rules[0].request_json."a b"', "bad JMESPath"),
    ('job_name = "json:a["', "rules[0].job_name", "incomplete expression"),
    ('job_name = "json:"', "rules[0].job_name", "needs something after"),
    ('extract = { x = "request_json:`1" }', "rules[0].extract.x", "bad JMESPath"),
    ('jsn = { a = "b" }', "rules[0].jsn", "unknown key"),
])
def test_errors_name_line_and_key(extra: str, key: str, fragment: str) -> None:
    err = one_error(RULE + extra + "\n")
    assert (err.key, err.line) == (key, LINE)
    assert fragment in err.message


def test_every_bad_expression_is_reported() -> None:
    errs = errors_of(RULE + 'json = { "a[" = "x", "b" = "y", "c(" = "z" }\n'
                     'request_json = { "d[" = "x" }\n')
    assert sorted(e.key for e in errs) == ['rules[0].json."a["', 'rules[0].json."c("',
                                           'rules[0].request_json."d["']
    assert {e.line for e in errs} == {LINE, LINE + 1}


def test_summary_shows_json_conditions() -> None:
    text = RULE + textwrap.dedent('''\
        query = { op = "ApiSubmit*" }
        json = { errors = "null" }
        request_json = { operationName = "ApiSubmit*" }
        job_name = "json:data.title"
        ''')
    out = summary(load_config_text(text, "rules.toml", {}))
    line = next(ln for ln in out.splitlines() if "/api/non-user-graphql" in ln)
    assert "POST /api/non-user-graphql?op=ApiSubmit* any" in line
    assert "request_json operationName = ApiSubmit*" in line
    assert "json errors = null" in line
    assert "jobName json:data.title" in line
