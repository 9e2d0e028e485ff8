"""`[[routes]]` in the rules file: what is accepted, every error with its key and line,
`check`'s summary, `${VAR}`s, and `explain` naming the upstream that serves a path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from proxy.config.errors import ConfigErrors
from proxy.config.load import load_config_text
from proxy.config.model import Route
from proxy.config.summary import summary
from proxy.explain import explain

ROOT = Path(__file__).resolve().parents[1]
HEAD = '[proxy]\nupstream = "https://acme.example"\n'


def routes_of(text: str, env: dict[str, str] | None = None) -> tuple[Route, ...]:
    return load_config_text(HEAD + text, "r.toml", env=env or {}).routes


def errors_of(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigErrors) as info:
        load_config_text(HEAD + text, "r.toml", env={})
    return [(e.line, e.key, e.message) for e in info.value.errors]


def test_routes_are_read_with_their_lines() -> None:
    found = routes_of('''
[[routes]]
prefix = "/apply/"
upstream = "https://boards.greenhouse.io/embed/"

[[routes]]
prefix = "/api/"
upstream = "http://127.0.0.1:9000"
''')
    assert found == (Route("/apply/", "https://boards.greenhouse.io/embed/", 4),
                     Route("/api/", "http://127.0.0.1:9000/", 8))


def test_no_routes_by_default() -> None:
    assert routes_of("") == ()


def test_the_upstream_may_come_from_the_environment() -> None:
    found = routes_of('[[routes]]\nprefix = "/apply/"\nupstream = "${EMBED}"\n',
                      env={"EMBED": "https://job-boards.greenhouse.io/embed/"})
    assert found[0].upstream == "https://job-boards.greenhouse.io/embed/"
    errs = errors_of('[[routes]]\nprefix = "/apply/"\nupstream = "${EMBED}"\n')
    assert any(key == "routes[0].upstream" and "EMBED" in msg for _, key, msg in errs)


@pytest.mark.parametrize("key,value,words", [
    ("prefix", '"apply/"', "start and end with '/'"),
    ("prefix", '"/apply"', "start and end with '/'"),
    ("prefix", '"/"', "start and end with '/'"),
    ("prefix", '"/a//b/"', "single '/'"),
    ("prefix", '"/a b/"', "single '/'"),
    ("prefix", '"/a/../b/"', "'..'"),
    ("prefix", '"/_edge/x/"', "under the proxy's own prefix"),
    ("prefix", '"/_edge/"', "under the proxy's own prefix"),
    ("prefix", "5", "expected a string"),
    ("upstream", '"ftp://x.example/"', "http:// or https://"),
    ("upstream", '"boards.greenhouse.io/embed/"', "http:// or https://"),
    ("upstream", '"https://x.example/embed"', "must end with '/'"),
    ("upstream", '"https://x.example/a/?q=1"', "query or fragment"),
    ("upstream", '"https://u:p@x.example/a/"', "user:password"),
    ("upstream", '"https://x.example/a,b/"', "its path may hold only"),
    ("upstream", '"https://x.example/a/../b/"', "'..'"),
    ("upstream", '"https://x.example:99999/"', "not a URL"),
])
def test_bad_values_are_errors_at_their_key_and_line(key: str, value: str, words: str) -> None:
    good = {"prefix": '"/apply/"', "upstream": '"https://x.example/embed/"'}
    good[key] = value
    text = f'\n[[routes]]\nprefix = {good["prefix"]}\nupstream = {good["upstream"]}\n'
    errs = errors_of(text)
    line = 5 if key == "prefix" else 6
    assert any(ln == line and k == f"routes[0].{key}" and words in msg for ln, k, msg in errs), \
        errs


def test_missing_keys_unknown_keys_and_wrong_shapes() -> None:
    errs = errors_of('\n[[routes]]\nprefix = "/apply/"\nupstrem = "https://x.example/"\n')
    keys = {k: msg for _, k, msg in errs}
    assert "is required" in keys["routes[0].upstream"]
    assert "did you mean 'upstream'" in keys["routes[0].upstrem"]
    with pytest.raises(ConfigErrors) as info:
        load_config_text('routes = "x"\n' + HEAD, "r.toml", env={})
    assert [(e.line, e.key) for e in info.value.errors] == [(1, "routes")]
    assert "[[routes]]" in info.value.errors[0].message


def test_a_duplicate_prefix_is_an_error_naming_the_first() -> None:
    errs = errors_of('''
[[routes]]
prefix = "/apply/"
upstream = "https://a.example/x/"

[[routes]]
prefix = "/apply/"
upstream = "https://b.example/y/"
''')
    assert errs == [(9, "routes[1].prefix", "'/apply/' is already the prefix of routes[0]; "
                                            "each prefix is served by one upstream")]


def test_every_error_is_reported_at_once() -> None:
    errs = errors_of('''
[[routes]]
prefix = "apply"
upstream = "https://a.example/x"

[[routes]]
prefix = "/b/"
upstream = "gopher://b.example/"
''')
    assert [(ln, k) for ln, k, _ in errs] == [(5, "routes[0].prefix"), (6, "routes[0].upstream"),
                                              (10, "routes[1].upstream")]


def test_summary_lists_routes_longest_first() -> None:
    config = load_config_text(HEAD + '''
[[routes]]
prefix = "/apply/"
upstream = "https://boards.greenhouse.io/embed/"
[[routes]]
prefix = "/apply/forms/"
upstream = "http://forms.example:8080/v2/"
''', "r.toml", env={})
    lines = summary(config).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("routes (2"))
    assert lines[at + 1].split() == ["/apply/forms/", "→", "http://forms.example:8080/v2/"]
    assert lines[at + 2].split() == ["/apply/", "→", "https://boards.greenhouse.io/embed/"]
    assert "routes" not in summary(load_config_text(HEAD, "r.toml", env={}))


def test_check_command_prints_routes_and_refuses_bad_ones(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(HEAD + '[[routes]]\nprefix = "/apply/"\nupstream = '
                           '"https://boards.greenhouse.io/embed/"\n')
    done = subprocess.run([sys.executable, "-m", "proxy", "check", "-c", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "/apply/  → https://boards.greenhouse.io/embed/" in done.stdout
    path.write_text(HEAD + '[[routes]]\nprefix = "/apply"\nupstream = "https://b.example/e"\n')
    done = subprocess.run([sys.executable, "-m", "proxy", "check", "-c", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    out = done.stdout + done.stderr
    assert f"{path}:4: routes[0].prefix:" in out and f"{path}:5: routes[0].upstream:" in out


EXPLAINED = load_config_text(HEAD + '''
[[routes]]
prefix = "/apply/"
upstream = "https://boards.greenhouse.io/embed/"

[[rules]]
name = "embedded confirmation"
event = "ApplicationCompleted"
path = "/apply/job_app/confirmation"
status = [200]
extract = { job_id = "query:token" }

[[rules]]
name = "embedded submit"
event = "ApplicationCompleted"
method = "POST"
path = "/apply/**"
status = ["3xx"]
location = "/apply/job_app/confirmation*"
''', "r.toml", env={})


def test_explain_names_the_route_and_the_url_it_requests() -> None:
    report = explain(EXPLAINED, "GET", "https://careers.acme.example/apply/job_app/confirmation"
                     "?for=acme&token=77&gclid=abc")
    assert "[[routes]] prefix /apply/ → https://boards.greenhouse.io/embed/  " \
           "(Host: boards.greenhouse.io)" in report
    assert "forwarded upstream: https://boards.greenhouse.io/embed/job_app/confirmation" \
           "?for=acme&token=77  (captured params stripped)" in report
    assert "FIRES  'embedded confirmation' → ApplicationCompleted" in report


def test_explain_rewrites_the_routes_location_before_the_rules_see_it() -> None:
    for location in ("https://boards.greenhouse.io/embed/job_app/confirmation?for=acme",
                     "/embed/job_app/confirmation?for=acme"):
        report = explain(EXPLAINED, "POST", "https://careers.acme.example/apply/job_app",
                         status=303, location=location)
        assert "FIRES  'embedded submit'" in report, report


def test_explain_main_upstream_hostile_path_and_missing_slash() -> None:
    report = explain(EXPLAINED, "GET", "https://careers.acme.example/jobs/1")
    assert "[proxy] upstream https://acme.example  (no [[routes]] prefix matches)" in report
    assert "forwarded upstream: https://acme.example/jobs/1" in report
    report = explain(EXPLAINED, "GET", "https://careers.acme.example/apply/%2e%2e/admin")
    assert "answered 400 by the proxy, never forwarded" in report
    report = explain(EXPLAINED, "GET", "https://careers.acme.example/apply")
    assert "answered 301 to /apply/" in report
