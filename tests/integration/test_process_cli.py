"""The CLI as a user runs it: `run` refuses a bad rules file or a busy port with a clear
message and status 1, never a traceback; `check` summarises a good file, lists every
error of a bad one."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from tests.integration.procs import REPO, run_cli

BROKEN = """\
[proxy]
upstream = "http://127.0.0.1:9"
listen_on = "0.0.0.0:1"
timeout = "soon"

[[rules]]
name = "bad regex"
event = "ApplicationCompleted"
path = "regex:/jobs/(?P<id"
send_to = ["nowhere", "hook"]

[sinks.hook]
type = "webhook"
url = "${CAREERS_EDGE_TEST_NEVER_SET}"
secret = "s"
"""
# (line, key) of each problem in BROKEN
EXPECTED = [
    (3, "proxy.listen_on"),
    (4, "proxy.timeout"),
    (9, "rules[0].path"),
    (10, "rules[0].send_to[0]"),
    (14, "sinks.hook.url"),
]
DEMO_ENV = {"CAREERS_EDGE_DEMO_UPSTREAM": "http://127.0.0.1:8081",
            "CAREERS_EDGE_DEMO_RECORDER": "http://127.0.0.1:8082"}


def assert_every_error(stderr: str, name: str) -> None:
    for line, key in EXPECTED:
        assert re.search(rf"^{re.escape(name)}:{line}: {re.escape(key)}: \S", stderr,
                         re.MULTILINE), f"{key} at line {line} missing:\n{stderr}"
    assert f"{len(EXPECTED)} errors" in stderr
    assert "Traceback" not in stderr


async def test_run_refuses_an_invalid_rules_file(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text(BROKEN)
    done = await run_cli("run", "-c", "broken.toml", "--listen", "127.0.0.1:0", cwd=tmp_path)
    assert done.returncode == 1
    assert_every_error(done.stderr, "broken.toml")
    assert "not started" in done.stderr


async def test_run_refuses_a_toml_syntax_error_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "syntax.toml").write_text('[proxy]\nupstream = "http://x"\ntimeout = = 3\n')
    done = await run_cli("run", "-c", "syntax.toml", cwd=tmp_path)
    assert done.returncode == 1
    assert re.search(r"^syntax\.toml:3: ", done.stderr, re.MULTILINE), done.stderr
    assert "Traceback" not in done.stderr


async def test_run_on_a_busy_port_says_so_and_exits_one(tmp_path: Path) -> None:
    (tmp_path / "ok.toml").write_text('[proxy]\nupstream = "http://127.0.0.1:9"\n'
                                      'state = "sqlite:state.db"\n')
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        listen = f"127.0.0.1:{busy.getsockname()[1]}"
        for workers in ("1", "2"):
            done = await run_cli("run", "-c", "ok.toml", "--listen", listen,
                                 "--workers", workers, cwd=tmp_path)
            assert done.returncode == 1, done.stderr
            assert f"cannot listen on {listen}" in done.stderr
            assert "Traceback" not in done.stderr


async def test_check_summarises_the_demo_rules(tmp_path: Path) -> None:
    done = await run_cli("check", "-c", str(REPO / "rules" / "demo.toml"), cwd=tmp_path,
                         env=DEMO_ENV)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "valid" in out.splitlines()[0]
    assert "http://127.0.0.1:8081" in out
    for section in ("pixels (3)", "rules (3)", "sinks (8)"):
        assert section in out
    assert len(out.splitlines()) < 40          # one screen


async def test_check_on_the_demo_rules_works_without_the_demo_env(tmp_path: Path) -> None:
    """A new user's first `check`: the demo file's addresses have defaults."""
    env: dict[str, str | None] = {name: None for name in DEMO_ENV}
    done = await run_cli("check", "-c", str(REPO / "rules" / "demo.toml"), cwd=tmp_path,
                         env=env)
    assert done.returncode == 0, done.stderr
    assert "http://127.0.0.1:8081" in done.stdout
    assert "Traceback" not in done.stderr


async def test_check_lists_every_error_of_a_broken_file(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text(BROKEN)
    done = await run_cli("check", "-c", "broken.toml", cwd=tmp_path)
    assert done.returncode == 1
    assert_every_error(done.stderr, "broken.toml")
