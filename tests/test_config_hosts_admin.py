"""`[proxy] hosts`, `[admin] listen/token` and `--admin-listen` through the typed reader,
and what `check` and `explain` show and warn about them."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config.env import Overrides
from proxy.config.errors import ConfigErrors
from proxy.config.load import load_config, load_config_text
from proxy.config.model import DEFAULT_ADMIN_LISTEN
from proxy.config.summary import edge_warnings, summary
from proxy.runtime import served_hosts

HEAD = '[proxy]\nupstream = "https://ats.example"\n'


def load(text: str, env: dict[str, str] | None = None, over: Overrides | None = None):
    return load_config_text(HEAD + text, "rules.toml", env or {}, over)


def errors(text: str, env: dict[str, str] | None = None,
           over: Overrides | None = None) -> dict[str, str]:
    with pytest.raises(ConfigErrors) as exc:
        load(text, env, over)
    return {e.key: e.message for e in exc.value.errors}


def test_defaults() -> None:
    c = load("")
    assert c.proxy.hosts == () and c.admin.listen == DEFAULT_ADMIN_LISTEN
    assert c.admin.token is None
    assert served_hosts(c).any
    with_url = load('public_url = "https://Careers.Acme.example:8443"\n')
    policy = served_hosts(with_url)
    assert policy.serves("careers.acme.example", "") and not policy.serves("evil.example")
    ipv6 = served_hosts(load('public_url = "http://[::1]:8080"\n'))
    assert ipv6.serves("[::1]", "8080")


def test_hosts_and_admin_read() -> None:
    c = load('hosts = ["careers.acme.example", "*.acme.example"]\n'
             '[admin]\nlisten = "0.0.0.0:9999"\ntoken = "${TOKEN}"\n', {"TOKEN": "t0k"})
    assert c.proxy.hosts == ("careers.acme.example", "*.acme.example")
    assert (c.admin.listen, c.admin.token) == ("0.0.0.0:9999", "t0k")


@pytest.mark.parametrize("off", ["off", ""])
def test_admin_listener_off(off: str) -> None:
    assert load(f'[admin]\nlisten = "{off}"\n').admin.listen is None


def test_errors_are_keyed() -> None:
    found = errors('hosts = ["careers.acme.example", "http://x/", 5]\n'
                   '[admin]\nlisten = "nowhere"\ntoken = ""\nport = 1\n')
    assert "not a host name" in found["proxy.hosts[1]"]
    assert "expected a string" in found["proxy.hosts[2]"]
    assert "HOST:PORT" in found["admin.listen"]
    assert "must not be empty" in found["admin.token"]
    assert "unknown key 'port'" in found["admin.port"]
    assert "refuse every request" in errors("hosts = []\n")["proxy.hosts"]


def test_public_url_must_be_one_of_the_hosts() -> None:
    found = errors('public_url = "https://careers.acme.example"\nhosts = ["jobs.acme.example"]\n')
    assert "careers.acme.example" in found["proxy.hosts"]
    load('public_url = "https://careers.acme.example"\nhosts = ["*.acme.example"]\n')


def test_unset_admin_token_counts_as_absent() -> None:
    warnings: list = []
    c = load_config_text(HEAD + '[admin]\ntoken = "${NOPE}"\n', "r", {}, warnings=warnings)
    assert c.admin.token is None and [w.key for w in warnings] == ["admin.token"]


def test_admin_listen_flag_wins_over_env_over_file() -> None:
    text = '[admin]\nlisten = "127.0.0.1:1111"\n'
    env = {"CAREERS_EDGE_ADMIN_LISTEN": "127.0.0.1:2222"}
    assert load(text, over=Overrides.resolve(env)).admin.listen == "127.0.0.1:2222"
    flag = Overrides.resolve(env, admin_listen="off")
    assert load(text, over=flag).admin.listen is None
    bad = errors(text, over=Overrides.resolve({"CAREERS_EDGE_ADMIN_LISTEN": "x"}))
    assert "HOST:PORT" in bad["CAREERS_EDGE_ADMIN_LISTEN"]
    assert "--admin-listen" in errors(text, over=Overrides.resolve({}, admin_listen="y"))


def test_check_shows_hosts_trust_and_admin_and_warns_without_hosts(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(HEAD + 'trusted_proxies = ["10.0.0.0/8"]\n[admin]\ntoken = "s3cr3t-admin"\n')
    c = load_config(path, env={})
    warned = edge_warnings(c)
    assert [w.key for w in warned] == ["proxy.hosts"]
    text = summary(c, warned)
    assert "any  (development only)" in text and "10.0.0.0/8" in text
    assert f"{DEFAULT_ADMIN_LISTEN}  (bearer token)" in text
    assert "s3cr3t" not in text
    path.write_text(HEAD + 'hosts = ["careers.acme.example"]\n')
    assert edge_warnings(load_config(path, env={})) == []


def test_explain_says_a_host_not_served_is_refused() -> None:
    from proxy.explain import explain
    c = load('hosts = ["careers.acme.example"]\n')
    report = explain(c, "GET", "https://evil.example/jobs?fbclid=x")
    assert "not in [proxy] hosts: answered 421" in report and "Click ids" not in report
    assert "Click ids" in explain(c, "GET", "https://Careers.acme.example:443/jobs")
    assert "Click ids" in explain(c, "GET", "/jobs")           # a path: the served origin
    assert "421" not in explain(c, "GET", "https://10.0.0.1/_edge/healthz")


def test_admin_and_public_listeners_need_two_ports() -> None:
    for public, admin in (("0.0.0.0:8080", "127.0.0.1:8080"), ("127.0.0.1:9180", "127.0.0.1:9180"),
                          ("[::]:9180", "10.0.0.1:9180")):
        found = errors(f'listen = "{public}"\n[admin]\nlisten = "{admin}"\n')
        assert "two ports" in found["admin.listen"]
    found = errors('listen = "127.0.0.1:8080"\n',
                   over=Overrides.resolve({}, admin_listen="0.0.0.0:8080"))
    assert "two ports" in found["--admin-listen"]
    load('listen = "127.0.0.1:9180"\n[admin]\nlisten = "127.0.0.1:9181"\n')
    load('listen = "127.0.0.1:0"\n[admin]\nlisten = "127.0.0.1:0"\n')     # both any free port
    load('listen = "10.0.0.1:8080"\n[admin]\nlisten = "127.0.0.1:8080"\n')
