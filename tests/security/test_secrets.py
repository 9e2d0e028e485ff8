"""Rotating the cookie key (`[proxy] secret` + `previous_secrets`): cookies a proxy with
the old key set still attribute conversions on a proxy with the new one, and are
re-signed with the new key; without the old key listed they are refused."""

from __future__ import annotations

import uuid
from pathlib import Path

import aiohttp
import pytest

from proxy.attribution.cookies import ATTR_COOKIE, AttrCodec
from proxy.config.errors import ConfigErrors
from proxy.config.load import load_config_text
from proxy.config.summary import summary
from proxy.demo.site import build_site
from tests.integration.harness import stack

OLD, NEW = "old-key-0123456789abcdef", "new-key-fedcba9876543210"
TLR = str(uuid.uuid4())
RULES = """
[[rules]]
name = "apply form viewed"
event = "ConversationStart"
method = "GET"
path = "/jobs/{job_id}/apply"
status = [200]
send_to = ["talroo"]

[sinks.talroo]
type = "talroo"
url = "{recorder}/conversion2.php"
"""


def rejected(s) -> float:
    return s.edge.metrics.registry.get_sample_value("edge_cookies_rejected_total") or 0


def attr_cookie(jar: aiohttp.CookieJar) -> str:
    return next(c.value for c in jar if c.key == ATTR_COOKIE)


async def land_with_old_key(tmp: Path, jar: aiohttp.CookieJar) -> str:
    """A visitor lands from a Talroo click on a proxy that signs with OLD."""
    tmp.mkdir()
    async with stack(build_site, RULES, tmp=tmp, proxy_extra=f'secret = "{OLD}"') as s, \
            s.session(cookie_jar=jar) as c, c.get(f"/jobs/2?tlr_sid={TLR}") as r:
        assert r.status == 200
    value = attr_cookie(jar)
    assert AttrCodec(OLD.encode()).decode(value) is not None
    return value


async def test_a_cookie_signed_with_a_previous_secret_still_attributes(tmp_path) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    old_cookie = await land_with_old_key(tmp_path / "before", jar)
    (tmp_path / "after").mkdir()
    extra = f'secret = "{NEW}"\nprevious_secrets = ["${{OLD_SECRET}}"]'
    async with stack(build_site, RULES, tmp=tmp_path / "after", proxy_extra=extra,
                     env={"OLD_SECRET": OLD}) as s:
        async with s.session(cookie_jar=jar) as c, c.get("/jobs/2/apply") as r:
            assert r.status == 200
            resigned = r.cookies[ATTR_COOKIE].value
        hit = await s.recorder.wait_for(lambda q: q.network == "talroo", timeout=15)
        assert hit.query.get("tlr_sid") == TLR
        assert rejected(s) == 0
    # Re-signed with the new key, same visitor and click ids; the old key no longer signs it.
    assert resigned != old_cookie
    assert AttrCodec(NEW.encode()).decode(resigned) == AttrCodec(OLD.encode()).decode(old_cookie)
    assert AttrCodec(OLD.encode()).decode(resigned) is None


async def test_without_previous_secrets_the_old_cookie_is_refused(tmp_path) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    await land_with_old_key(tmp_path / "before", jar)
    (tmp_path / "after").mkdir()
    async with stack(build_site, RULES, tmp=tmp_path / "after",
                     proxy_extra=f'secret = "{NEW}"') as s:
        async with s.session(cookie_jar=jar) as c, c.get("/jobs/2/apply") as r:
            assert r.status == 200
        assert rejected(s) == 1
        with pytest.raises(TimeoutError):
            await s.recorder.wait_for(lambda q: q.network == "talroo", timeout=2)


async def test_a_cookie_signed_with_the_current_secret_is_not_re_signed(tmp_path) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    extra = f'secret = "{NEW}"\nprevious_secrets = ["{OLD}"]'
    async with stack(build_site, RULES, tmp=tmp_path, proxy_extra=extra) as s, \
            s.session(cookie_jar=jar) as c:
        async with c.get(f"/jobs/2?tlr_sid={TLR}") as r:
            assert ATTR_COOKIE in r.cookies
        async with c.get("/jobs/2/apply") as r:
            assert ATTR_COOKIE not in r.cookies


def test_previous_secrets_in_the_rules_file() -> None:
    head = '[proxy]\nupstream = "http://u.example"\n'
    config = load_config_text(head + 'previous_secrets = ["a", "${OLD}"]\n', env={"OLD": "b"})
    assert config.proxy.previous_secrets == ("a", "b")
    assert "2 previous still verified" in summary(config, [])
    warnings: list = []
    config = load_config_text(head + 'previous_secrets = ["${GONE}"]\n', env={},
                              warnings=warnings)
    assert config.proxy.previous_secrets == ()
    assert any(w.key == "proxy.previous_secrets[0]" for w in warnings)
    for bad in ('"a"', '[""]', "[1]"):
        with pytest.raises(ConfigErrors) as info:
            load_config_text(head + f"previous_secrets = {bad}\n", env={})
        assert info.value.errors[0].key.startswith("proxy.previous_secrets")
