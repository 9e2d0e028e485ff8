"""The rules-file loader: the SPEC example, every error kind, lines, ${VAR}, overrides."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from proxy.config.env import Overrides
from proxy.config.errors import ConfigError, ConfigErrors, format_errors
from proxy.config.load import apply_overrides, load_config, load_config_text
from proxy.detect.spec import StatusMatch

# SPEC section 3, verbatim.
SPEC_EXAMPLE = '''\
[proxy]
listen = "0.0.0.0:8080"
upstream = "https://acme.hosted-ats.example"   # the unmodified careers site
public_url = "https://careers.acme.example"    # optional; else from Host / X-Forwarded-Proto
prefix = "/_edge"                               # the proxy's own endpoints
state = "sqlite:///var/lib/careers-edge/state.db"
secret = "${CAREERS_EDGE_SECRET}"               # HMAC key for signed cookies
workers = 1
timeout = 30                                    # seconds to wait for upstream response headers
trusted_proxies = ["10.0.0.0/8"]                # whose X-Forwarded-For / -Proto are believed
rewrite_links = true                            # absolute upstream-origin URLs in HTML -> public

[attribution]
params = ["tlr_sid", "fbclid", "gclid", "gbraid", "wbraid", "msclkid", "ttclid", "li_fat_id", "ittk", "ccuid"]
strip = true          # remove captured params from the URL forwarded upstream
cookie_days = 90

[consent]
required = false      # true: marketing pixels and sinks need consent
cookie = "cookie_consent"
granted = ["all", "marketing"]
honor_gpc = true      # Sec-GPC: 1 counts as "no"

[pixels.meta]
type = "meta"                     # built-in Meta Pixel base code
pixel_id = "123456789012345"
paths = ["/**"]

[pixels.appcast_job]
type = "html"                     # any snippet, inserted verbatim
paths = ["/jobs/*"]
position = "head"                 # head (before the real </head>) | body (before the last </body>)
html = '<script async src="https://click.appcast.io/pixels/acme-1.js?ent=123"></script>'
csp = { script-src = ["https://click.appcast.io"] }   # hosts its CSP needs

[[rules]]
name = "apply form viewed"
event = "ConversationStart"
method = "GET"
path = "/jobs/{job_id}/apply"
status = [200]
job_name = "css:h1"
send_to = ["meta"]

[[rules]]
name = "application submitted"
event = "ApplicationCompleted"
method = "POST"
path = "/jobs/{job_id}/apply"
status = [302, 303]
location = "/jobs/*/thanks*"
job_name = "form:job_title"
send_to = ["talroo", "meta", "appcast", "ats"]

[sinks.talroo]
type = "talroo"
url = "https://www.jobs2careers.com/conversion2.php"
events = { Hire = "https://www.jobs2careers.com/conversion3.php" }   # per-event endpoint

[sinks.meta]
type = "meta"
pixel_id = "123456789012345"
access_token = "${META_ACCESS_TOKEN}"
api = "https://graph.facebook.com/v21.0"
test_event_code = ""
event_names = { ApplicationCompleted = "SubmitApplication" }

[sinks.appcast]
type = "http"                     # templated request
method = "GET"
url = "${APPCAST_EVENTS_URL}?e={event}&click={click.ccuid}&job={job_id}&t={event_time_ms}"
requires = ["ccuid"]

[sinks.ats]
type = "webhook"
url = "https://hooks.acme.example/conversions"
secret = "${WEBHOOK_SECRET}"

[api]
token = "${CAREERS_EDGE_API_TOKEN}"   # bearer token for POST {prefix}/api/events

[redirect]
allow = ["https://wa.me/*", "https://m.me/*", "https://www.instagram.com/*"]

[feed]
enabled = true
publisher = "Acme GmbH"
'''

ENV = {
    "CAREERS_EDGE_SECRET": "s3cr3t-cookie-key-0123456789",
    "META_ACCESS_TOKEN": "EAAB-meta-token-xyz",
    "APPCAST_EVENTS_URL": "https://api.appcast.example/v1/events",
    "WEBHOOK_SECRET": "whsec-abcdef",
    "CAREERS_EDGE_API_TOKEN": "api-token-123456",
}
MINIMAL = '[proxy]\nupstream = "https://ats.example"\n'
REPO = Path(__file__).resolve().parent.parent


def errors_of(text: str, env: dict[str, str] | None = None, **kw: object) -> list[ConfigError]:
    with pytest.raises(ConfigErrors) as info:
        load_config_text(textwrap.dedent(text), "rules.toml", env if env is not None else {}, **kw)
    return info.value.errors


def one_error(text: str, **kw: object) -> ConfigError:
    errs = errors_of(text, **kw)
    assert len(errs) == 1, format_errors(errs)
    return errs[0]


def test_spec_example_parses(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(SPEC_EXAMPLE)
    config = load_config(path, ENV)
    assert config.source == path
    p = config.proxy
    assert (p.upstream, p.listen, p.public_url, p.prefix) == (
        "https://acme.hosted-ats.example", "0.0.0.0:8080", "https://careers.acme.example", "/_edge")
    assert p.secret == ENV["CAREERS_EDGE_SECRET"] and p.timeout == 30.0
    assert p.trusted_proxies == ("10.0.0.0/8",)
    assert config.attribution.params[0] == "tlr_sid" and config.attribution.cookie_days == 90
    meta, appcast = config.pixels
    assert meta.type == "meta" and meta.pixel_id == "123456789012345"
    assert meta.paths[0].match("/any/where") == {}
    assert appcast.position == "head" and appcast.csp["script-src"] == ("https://click.appcast.io",)
    viewed, submitted = config.rules
    assert viewed.method == "GET" and viewed.path.match("/jobs/9/apply") == {"job_id": "9"}
    assert viewed.job_name is not None and (viewed.job_name.kind, viewed.job_name.arg) == ("css", "h1")
    assert submitted.status == (StatusMatch(302, 302), StatusMatch(303, 303))
    assert submitted.location is not None
    assert submitted.location.match_location("/jobs/3/thanks?ref=x") == {}
    assert submitted.send_to == ("talroo", "meta", "appcast", "ats")
    assert submitted.line == SPEC_EXAMPLE.splitlines().index("[[rules]]", viewed.line or 0) + 1
    sinks = config.sinks
    assert sinks["talroo"].requires == ("tlr_sid",)          # Talroo needs its click id
    assert sinks["talroo"].events["Hire"].endswith("conversion3.php")
    assert sinks["meta"].access_token == ENV["META_ACCESS_TOKEN"]
    assert sinks["meta"].event_name("ApplicationCompleted") == "SubmitApplication"
    assert sinks["appcast"].url.startswith("https://api.appcast.example/v1/events?e={event}")
    assert sinks["ats"].secret == ENV["WEBHOOK_SECRET"] and not sinks["ats"].marketing
    assert config.api.token == ENV["CAREERS_EDGE_API_TOKEN"]
    assert config.redirect.allow[0] == "https://wa.me/*"
    assert config.feed.enabled and config.feed.publisher == "Acme GmbH"


@pytest.mark.parametrize("name", ["example.toml", "demo.toml"])
def test_shipped_rules_files_load(name: str) -> None:
    env = {**ENV, "CAREERS_EDGE_DEMO_UPSTREAM": "http://127.0.0.1:9001",
           "CAREERS_EDGE_DEMO_RECORDER": "http://127.0.0.1:9002"}
    config = load_config(REPO / "rules" / name, env)
    assert config.rules and config.sinks


def test_defaults_for_a_minimal_file() -> None:
    config = load_config_text(MINIMAL, "r.toml", {})
    assert config.proxy.listen == "127.0.0.1:8080" and config.proxy.workers == 1
    assert config.pixels == () and config.rules == () and not config.sinks
    assert config.api.token is None and not config.feed.enabled


def test_toml_syntax_error_has_its_line() -> None:
    err = one_error('[proxy]\nupstream = "https://a.example"\nlisten = \n')
    assert err.line == 3 and "TOML syntax" in err.message


def test_toml_syntax_error_at_the_end_of_the_file_is_on_its_last_line() -> None:
    err = one_error('[proxy]\nupstream = "https://a.example"\nallow_paths = [\n')
    assert err.line == 3 and err.message == "TOML syntax: Invalid value", err


def test_duplicate_toml_key_and_table_are_syntax_errors() -> None:
    err = one_error('[proxy]\nupstream = "https://a.example"\nupstream = "https://b.example"\n')
    assert err.line == 3
    err = one_error(MINIMAL + '[sinks.a]\ntype = "talroo"\nurl = "https://t.example"\n'
                    '[sinks.a]\ntype = "talroo"\n')
    assert err.line == 6


def test_every_error_is_reported_with_key_and_line() -> None:
    text = '''\
        [proxy]
        upstream = "https://ats.example"
        timout = 5
        workers = "two"

        [[rules]]
        name = "r"
        event = "ApplicationCompleted"
        path = "/jobs/{id}/apply"
        status = [200, "9xx"]
        send_to = ["nowhere"]
        job_name = "path:job_id"

        [redirect]
        allow = ["wa.me/*"]
        '''
    errs = errors_of(text)
    got = {(e.key, e.line) for e in errs}
    assert got == {("proxy.timout", 3), ("proxy.workers", 4), ("rules[0].status[1]", 10),
                   ("rules[0].send_to[0]", 11), ("rules[0].job_name", 12),
                   ("redirect.allow[0]", 15)}
    report = format_errors(errs).splitlines()
    assert report[0].startswith("rules.toml:3: proxy.timout: unknown key 'timout'")
    assert "did you mean 'timeout'" in report[0]
    assert [int(line.split(":")[1]) for line in report[:-1]] == [3, 4, 10, 11, 12, 15]
    assert report[-1] == "6 errors in rules.toml"


@pytest.mark.parametrize(("snippet", "key", "fragment"), [
    # unknown keys, with a suggestion
    ("[proxy]\nupstream = 'https://a.example'\nrewrite_link = true\n", "proxy.rewrite_link",
     "did you mean 'rewrite_links'"),
    ("[attribuion]\n", "attribuion", "did you mean 'attribution'"),
    # wrong types
    ("[attribution]\nstrip = 'yes'\n", "attribution.strip", "expected true or false"),
    ("[attribution]\ncookie_days = 1.5\n", "attribution.cookie_days", "expected an integer"),
    ("[attribution]\nparams = 'gclid'\n", "attribution.params", "expected a list of strings"),
    ("[consent]\ngranted = [1]\n", "consent.granted[0]", "expected a string"),
    # [proxy]
    ("[proxy]\nupstream = 'ftp://a.example'\n", "proxy.upstream", "http:// or https://"),
    ("[proxy]\nupstream = 'https://a.example/careers'\n", "proxy.upstream", "without path"),
    ("[proxy]\nupstream = 'https://a.example'\nlisten = 'localhost'\n", "proxy.listen",
     "HOST:PORT"),
    ("[proxy]\nupstream = 'https://a.example'\nlisten = 'h:99999'\n", "proxy.listen", "HOST:PORT"),
    ("[proxy]\nupstream = 'https://a.example'\nprefix = '/_edge/'\n", "proxy.prefix",
     "not end with '/'"),
    ("[proxy]\nupstream = 'https://a.example'\nprefix = '_edge'\n", "proxy.prefix",
     "start with '/'"),
    ("[proxy]\nupstream = 'https://a.example'\nstate = 'mysql://db'\n", "proxy.state",
     "sqlite:///ABS/PATH"),
    ("[proxy]\nupstream = 'https://a.example'\ntrusted_proxies = ['10.0.0.0/40']\n",
     "proxy.trusted_proxies[0]", "CIDR"),
    ("[proxy]\nupstream = 'https://a.example'\nworkers = 0\n", "proxy.workers", "1..256"),
    ("[proxy]\nupstream = 'https://a.example'\ntimeout = -1\n", "proxy.timeout", "greater than 0"),
    ("[proxy]\nupstream = 'https://a.example'\npublic_url = 'careers.example'\n",
     "proxy.public_url", "absolute"),
    # pixels
    ("[pixels.p]\ntype = 'gif'\n", "pixels.p.type", "one of: meta, html"),
    ("[pixels.p]\ntype = 'meta'\n", "pixels.p.pixel_id", "is required"),
    ("[pixels.p]\ntype = 'meta'\npixel_id = 'abc'\n", "pixels.p.pixel_id", "numeric"),
    ("[pixels.p]\ntype = 'html'\n", "pixels.p.html", "is required"),
    ("[pixels.p]\ntype = 'html'\nhtml = 'x'\nposition = 'top'\n", "pixels.p.position",
     "one of: head, body"),
    ("[pixels.p]\ntype = 'html'\nhtml = 'x'\npaths = ['jobs']\n", "pixels.p.paths[0]",
     "must start with '/'"),
    ("[pixels.p]\ntype = 'html'\nhtml = 'x'\ncsp = { script-src = \"x.example\" }\n",
     "pixels.p.csp.script-src", "expected a list"),
    ("[pixels.p]\ntype = 'html'\nhtml = 'x'\ncsp = { script-src = [\"'unsafe-inline'\"] }\n",
     "pixels.p.csp.script-src[0]", "not a host source"),
    ("[pixels.p]\ntype = 'html'\nhtml = 'x'\ncsp = { scrip-src = [\"a.example\"] }\n",
     "pixels.p.csp.scrip-src", "did you mean 'script-src'"),
    ("[pixels.p]\ntype = 'meta'\npixel_id = '1'\nhtml = 'x'\n", "pixels.p.html", "unknown key"),
    # sinks
    ("[sinks.s]\ntype = 'fax'\n", "sinks.s.type", "one of: talroo, meta, http, webhook"),
    ("[sinks.s]\ntype = 'talroo'\n", "sinks.s.url", "required for a talroo sink"),
    ("[sinks.s]\ntype = 'meta'\npixel_id = '1'\n", "sinks.s.access_token", "required for a meta"),
    ("[sinks.s]\ntype = 'http'\n", "sinks.s.url", "required for a http sink"),
    ("[sinks.s]\ntype = 'webhook'\nurl = 'https://h.example'\n", "sinks.s.secret",
     "required for a webhook"),
    ("[sinks.s]\ntype = 'http'\nurl = 'https://h.example/?x={evnt}'\n", "sinks.s.url",
     "unknown placeholder {evnt}"),
    ("[sinks.s]\ntype = 'http'\nurl = 'https://h.example/?c={click.nope}'\n", "sinks.s.url",
     "unknown placeholder {click.nope}"),
    ("[sinks.s]\ntype = 'http'\nurl = 'https://h.example'\nmethod = 'BREW'\n", "sinks.s.method",
     "one of: GET"),
    ("[sinks.s]\ntype = 'http'\nurl = 'https://h.example'\nrequires = ['zzclid']\n",
     "sinks.s.requires[0]", "never captured"),
    ("[sinks.s]\ntype = 'talroo'\nurl = 'https://t.example'\nsecret = 'x'\n", "sinks.s.secret",
     "unknown key"),
    # proxy.allow_paths
    ("[proxy]\nupstream = 'https://ats.example'\nallow_paths = ['acme/**']\n",
     "proxy.allow_paths[0]", "must start with '/'"),
    ("[proxy]\nupstream = 'https://ats.example'\nallow_paths = []\n",
     "proxy.allow_paths", "would refuse every path"),
    ("[proxy]\nupstream = 'https://ats.example'\nallow_paths = '/acme/**'\n",
     "proxy.allow_paths", "expected a list"),
    # redirect, feed
    ("[redirect]\nallow = ['https://*/x']\n", "redirect.allow[0]", "no host"),
    ("[feed]\nexpire_days = 0\n", "feed.expire_days", "≥ 1"),
    ("[feed]\npublisher_url = 'nope'\n", "feed.publisher_url", "absolute"),
    ("[feed]\nenable = true\n", "feed.enable", "did you mean 'enabled'"),
])
def test_error_kinds(snippet: str, key: str, fragment: str) -> None:
    text = snippet if snippet.startswith("[proxy]") else MINIMAL + snippet
    err = one_error(text)
    assert err.key == key
    assert fragment in err.message
    assert err.line is not None


RULE = MINIMAL + '''\
[sinks.s]
type = "webhook"
url = "https://h.example"
secret = "x"
[[rules]]
name = "r"
event = "ApplicationCompleted"
path = "/jobs/{job_id}/apply"
'''


@pytest.mark.parametrize(("extra", "key", "fragment"), [
    ("method = 'FETCH'", "rules[0].method", "one of: GET"),
    ("event = 'Apply Now'", None, None),                    # duplicate key: TOML syntax
    ("status = [700]", "rules[0].status[0]", "100..599"),
    ("status = ['6xx']", "rules[0].status[0]", '"1xx".."5xx"'),
    ("status = [true]", "rules[0].status[0]", "not a status"),
    ("location = '/x/{'", "rules[0].location", "unclosed"),
    ("header = { Content-Type = 'regex:(' }", "rules[0].header.Content-Type", "bad regex"),
    ("body = 'regex:[a'", "rules[0].body", "bad regex"),
    ("send_to = ['ss']", "rules[0].send_to[0]", "did you mean 's'"),
    ("job_name = 'path:id'", "rules[0].job_name", "has no {id}"),
    ("job_name = 'css:h1['", "rules[0].job_name", "not a valid CSS selector"),
    ("job_name = 'regex:no group'", "rules[0].job_name", "needs a (group)"),
    ("job_name = 'jsonld:salary'", "rules[0].job_name", "not a JobPosting field"),
    ("job_name = 'xpath://h1'", "rules[0].job_name", "must be one of path:"),
    ("job_name = 'query:'", "rules[0].job_name", "needs something after"),
    ("extract = { title = 'form:a b' }", "rules[0].extract.title", "not a parameter name"),
    ("continue = 1", "rules[0].continue", "expected true or false"),
    ("dedupe_hours = -1", "rules[0].dedupe_hours", "≥ 0"),
    ("when = 'now'", "rules[0].when", "unknown key"),
])
def test_rule_errors(extra: str, key: str | None, fragment: str | None) -> None:
    err = one_error(RULE + extra + "\n")
    if key is None:
        assert "TOML syntax" in err.message
        return
    assert (err.key, err.line) == (key, RULE.count("\n") + 1)
    assert fragment in err.message


def test_rule_query_condition() -> None:
    text = RULE + """\
[[rules]]
name = "submit"
event = "ApplicationCompleted"
path = "/api/graphql"
query = { op = "ApiSubmit*" }
"""
    config = load_config_text(text, "rules.toml", {})
    assert config.rules[-1].query == (("op", "ApiSubmit*"),)
    err = one_error(text.replace('"ApiSubmit*"', '"regex:(unclosed"'))
    assert err.key == "rules[1].query.op" and err.line is not None
    err = one_error(text.replace('{ op = "ApiSubmit*" }', '"op=ApiSubmit"'))
    assert err.key == "rules[1].query" and "expected a table" in err.message


def test_rule_event_name_and_missing_keys() -> None:
    errs = errors_of(MINIMAL + "[[rules]]\nname = 'r'\nevent = 'Apply Now'\n")
    assert {(e.key, e.line) for e in errs} == {("rules[0].event", 5), ("rules[0].path", 3)}


def test_rule_extractors_that_are_fine() -> None:
    config = load_config_text(RULE + textwrap.dedent('''\
        job_name = "path:job_id"
        extract = { title = "jsonld:title", q = "query:utm_source", r = "regex:<h1>(.*?)</h1>" }
        status = ["3xx", 200]
        continue = true
        header = { Content-Type = "text/html*" }
        body = "Thank you"
        send_to = "s"
        '''), "r.toml", {})
    rule = config.rules[0]
    assert rule.job_name is not None and rule.job_name.arg == "job_id"
    assert set(rule.extract) == {"title", "q", "r"}
    assert 302 in rule.status[0] and 200 in rule.status[1] and 404 not in rule.status[0]
    assert rule.continue_ and rule.send_to == ("s",)
    assert rule.header == (("Content-Type", "text/html*"),)


def test_duplicate_rule_names() -> None:
    text = RULE + "[[rules]]\nname = 'r'\nevent = 'Hire'\npath = '/x'\n"
    err = one_error(text)
    assert err.key == "rules[1].name" and "already the name of rules[0]" in err.message
    assert err.line == text.splitlines().index("[[rules]]", 8) + 2


# --- ${VAR} -------------------------------------------------------------------------

SINKS_WITH_VARS = MINIMAL + '''\
[sinks.used]
type = "webhook"
url = "${HOOK_BASE}/conversions"
secret = "${HOOK_SECRET}"

[sinks.unused]
type = "meta"
pixel_id = "1"
access_token = "${UNUSED_TOKEN}"

[[rules]]
name = "done"
event = "ApplicationCompleted"
path = "/done"
send_to = ["used"]
'''


def test_env_interpolation_inside_longer_strings_and_escape() -> None:
    env = {"HOOK_BASE": "https://h.example", "HOOK_SECRET": "k", "X": "y"}
    config = load_config_text(SINKS_WITH_VARS.replace(
        "[sinks.unused]", "[feed]\npublisher = 'c_${X}_$${X} $5'\n[sinks.unused]"), "r", env)
    assert config.sinks["used"].url == "https://h.example/conversions"
    assert config.feed.publisher == "c_y_${X} $5"


def test_unset_var_in_used_sink_is_an_error_unused_sink_left_out() -> None:
    errs = errors_of(SINKS_WITH_VARS, {"HOOK_BASE": "https://h.example"})
    assert [(e.key, e.line) for e in errs] == [("sinks.used.secret", 6)]
    assert "${HOOK_SECRET} is not set" in errs[0].message and "'done'" in errs[0].message

    warnings: list[ConfigError] = []
    config = load_config_text(SINKS_WITH_VARS, "r",
                              {"HOOK_BASE": "https://h.example", "HOOK_SECRET": "k"},
                              warnings=warnings)
    assert set(config.sinks) == {"used"}
    assert [w.key for w in warnings] == ["sinks.unused"]
    assert "UNUSED_TOKEN" in warnings[0].message


def test_unset_var_outside_sinks() -> None:
    text = MINIMAL + "[consent]\ncookie = '${NOPE}'\n[api]\ntoken = '${NO_TOKEN}'\n"
    err = one_error(text)
    assert (err.key, err.line) == ("consent.cookie", 4) and "${NOPE}" in err.message
    warnings: list[ConfigError] = []
    config = load_config_text(MINIMAL + "[api]\ntoken = '${NO_TOKEN}'\n", "r", {},
                              warnings=warnings)
    assert config.api.token is None and warnings[0].key == "api.token"


def test_env_numbers_and_bools_and_bad_references() -> None:
    text = MINIMAL + "workers = '${W}'\nrewrite_links = '${R}'\n"
    config = load_config_text(text, "r", {"W": "3", "R": "false"})
    assert config.proxy.workers == 3 and config.proxy.rewrite_links is False
    err = one_error(text, env={"W": "lots", "R": "true"})
    assert err.key == "proxy.workers" and "from ${…}" in err.message
    err = one_error(MINIMAL + "[consent]\ncookie = '${bad name}'\n")
    assert err.key == "consent.cookie" and "not a variable name" in err.message


# --- upstream from flag / env, overrides ---------------------------------------------

NO_UPSTREAM = "[proxy]\nlisten = '127.0.0.1:9000'\n"


def test_missing_upstream_is_an_error_that_names_the_flag() -> None:
    err = one_error(NO_UPSTREAM)
    assert err.key == "proxy.upstream" and "--upstream" in err.message
    assert "CAREERS_EDGE_UPSTREAM" in err.message


def test_check_accepts_missing_upstream_with_a_warning() -> None:
    warnings: list[ConfigError] = []
    config = load_config_text(NO_UPSTREAM, "r", {}, allow_missing_upstream=True,
                              warnings=warnings)
    assert config.proxy.upstream == ""
    assert warnings[0].key == "proxy.upstream" and "--upstream" in warnings[0].message


def test_overrides_flags_win_over_env_over_file() -> None:
    env = {"CAREERS_EDGE_UPSTREAM": "https://env.example", "CAREERS_EDGE_WORKERS": "4",
           "CAREERS_EDGE_LISTEN": "0.0.0.0:7000"}
    over = Overrides.resolve(env, upstream="https://flag.example")
    config = load_config_text(NO_UPSTREAM + "workers = 2\n", "r", {}, over)
    assert config.proxy.upstream == "https://flag.example"
    assert config.proxy.workers == 4 and config.proxy.listen == "0.0.0.0:7000"
    with pytest.raises(ConfigErrors):
        load_config_text(NO_UPSTREAM, "r", {}, Overrides.resolve({}))


def test_bad_overrides_are_keyed_by_their_origin() -> None:
    over = Overrides.resolve({"CAREERS_EDGE_WORKERS": "many"}, upstream="ftp://x")
    errs = errors_of(MINIMAL, overrides=over)
    assert {e.key for e in errs} == {"--upstream", "CAREERS_EDGE_WORKERS"}
    assert all(e.line is None for e in errs)


def test_apply_overrides() -> None:
    config = load_config_text(MINIMAL, "r", {})
    changed = apply_overrides(config, listen="[::1]:8443", workers="3")
    assert changed.proxy.listen == "[::1]:8443" and changed.proxy.workers == 3
    assert changed.proxy.upstream == config.proxy.upstream
    with pytest.raises(ConfigErrors) as info:
        apply_overrides(config, upstream="not a url", listen="x")
    assert {e.key for e in info.value.errors} == {"--upstream", "--listen"}


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as info:
        load_config(tmp_path / "missing.toml", {})
    assert "cannot read" in info.value.errors[0].message
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b"[proxy]\nupstream = '\xff'\n")
    with pytest.raises(ConfigErrors):
        load_config(bad, {})


def test_env_default_applies_when_unset_or_empty() -> None:
    from proxy.config.env import interpolate, is_whole_reference
    assert interpolate("${A:-http://x:1}/p", {}) == ("http://x:1/p", [])
    assert interpolate("${A:-http://x:1}/p", {"A": ""}) == ("http://x:1/p", [])
    assert interpolate("${A:-d}", {"A": "v"}) == ("v", [])
    assert interpolate("${A}", {}) == ("", ["A"])
    assert is_whole_reference("${WORKERS:-2}")
    config = load_config_text(
        '[proxy]\nupstream = "${UP:-https://ats.example}"\nworkers = "${W:-3}"\n', env={})
    assert config.proxy.upstream == "https://ats.example"
    assert config.proxy.workers == 3
