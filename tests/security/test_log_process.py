"""Logs of the real `careers-edge run` process: the level in any case from the flag,
the environment or the file (in that order), an unknown level as one clear line,
JSON app log lines, the access log on stdout, and the 0.1 `access_log` key."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from tests.integration.harness import start
from tests.integration.procs import POLL, run_cli, running, spawn, write_rules

LEVEL_ENV = "CAREERS_EDGE_LOG_LEVEL"
SERVING = "serving on"        # the worker's info line at start


def upstream() -> web.Application:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html><head></head><body>hi</body></html>",
                            content_type="text/html")
    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    return app


async def started_quietly(rules: Path, tmp: Path, env: dict, args: list[str]) -> str:
    """Start a proxy that logs nothing at info; its stderr once it answers healthz."""
    p = spawn(rules, tmp=tmp, env=env, args=args)
    try:
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as http:
            while True:
                assert p.proc.poll() is None, p.stderr()
                try:
                    async with http.get(f"{p.url}/_edge/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, p.stderr()
                await asyncio.sleep(POLL)
        return p.stderr()
    finally:
        p.kill()


async def test_level_in_any_case_flag_over_env_over_file(tmp_path: Path) -> None:
    rules = write_rules(tmp_path, "http://127.0.0.1:9", '[log]\naccess = "off"\nlevel = "ERROR"\n')
    # file ERROR, env Info: the env wins
    async with running(rules, tmp=tmp_path, env={LEVEL_ENV: "Info"}) as p:
        assert SERVING in p.stderr()
    # env error, flag debug (lower case: a traceback in 0.1): the flag wins
    async with running(rules, tmp=tmp_path, env={LEVEL_ENV: "error"},
                       args=["--log-level", "debug"]) as p:
        assert SERVING in p.stderr() and "Traceback" not in p.stderr()
    # env WARNING over the file's level: no info line
    text = await started_quietly(rules, tmp_path, {LEVEL_ENV: "WARNING"}, [])
    assert SERVING not in text


async def test_an_unknown_level_is_one_clear_line(tmp_path: Path) -> None:
    rules = write_rules(tmp_path, "http://127.0.0.1:9")
    done = await run_cli("run", "-c", str(rules), "--log-level", "loud", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "'loud' is not a log level" in done.stderr
    done = await run_cli("run", "-c", str(rules), cwd=tmp_path, env={LEVEL_ENV: "verbose"})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{LEVEL_ENV}: 'verbose' is not a log level" in done.stderr
    bad = write_rules(tmp_path, "http://127.0.0.1:9", '[log]\nlevel = "chatty"\n', name="bad.toml")
    done = await run_cli("check", "-c", str(bad), cwd=tmp_path, env={LEVEL_ENV: None})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    line = next(x for x in done.stderr.splitlines() if "log.level" in x)
    assert line.startswith(f"{bad}:") and "'chatty' is not a log level" in line


async def test_json_app_log_and_json_access_log_on_stdout(tmp_path: Path) -> None:
    runner, port = await start(upstream())
    try:
        rules = write_rules(tmp_path, f"http://127.0.0.1:{port}",
                            '[log]\naccess = "json"\nformat = "json"\n')
        async with running(rules, tmp=tmp_path) as p, aiohttp.ClientSession() as http:
            async with http.get(f"{p.url}/jobs/1?fbclid=IwAR-secret-click-1") as r:
                assert r.status == 200
            deadline = time.monotonic() + 10
            while "/jobs/1" not in p.stdout():
                assert time.monotonic() < deadline, p.stdout()
                await asyncio.sleep(POLL)
            access = [orjson.loads(x) for x in p.stdout().splitlines()]
            app = [orjson.loads(x) for x in p.stderr().splitlines()]
    finally:
        await runner.cleanup()
    assert [a["uri"] for a in access] == ["/jobs/1?fbclid=[redacted]"]
    assert access[0]["status"] == 200 and access[0]["upstream_ms"] > 0
    assert any(SERVING in a["message"] and a["level"] == "info" for a in app)
    assert all(set(a) >= {"time", "level", "logger", "message"} for a in app)


async def test_the_01_access_log_key_still_works_and_check_says_it_is_deprecated(
        tmp_path: Path) -> None:
    runner, port = await start(upstream())
    try:
        rules = tmp_path / "old.toml"
        rules.write_text(f'[proxy]\nupstream = "http://127.0.0.1:{port}"\n'
                         f'state = "sqlite:state.db"\naccess_log = false\n')
        done = await run_cli("check", "-c", str(rules), cwd=tmp_path)
        assert done.returncode == 0
        assert "proxy.access_log: is deprecated" in done.stdout
        assert "no access log" in done.stdout
        async with running(rules, tmp=tmp_path) as p, aiohttp.ClientSession() as http:
            async with http.get(f"{p.url}/jobs/1") as r:
                assert r.status == 200
            p.send(signal.SIGTERM)          # a drained proxy has written every line
            assert await p.wait_exit() == 0
            assert p.stdout() == ""
    finally:
        await runner.cleanup()
