"""The CLI on a user's mistakes: a missing `--body` file, a stopped Redis, a mistyped
SQLite path. Each is one clear line on stderr and status 1, never a traceback, and a
mistyped path never leaves an empty database behind."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import need_binary

from tests.integration.procs import run_cli

pytest_plugins = ["redis_server"]

RULES = """\
[proxy]
upstream = "http://127.0.0.1:9"
state = "{state}"
"""


def one_clear_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


async def test_explain_with_a_missing_body_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text(RULES.format(state="sqlite:state.db"))
    done = await run_cli("explain", "-c", "r.toml", "GET", "http://careers.example/jobs/1",
                         "--body", "no-such-page.html", cwd=tmp_path)
    assert done.returncode == 1
    line = one_clear_line(done.stderr)
    assert "no-such-page.html" in line and "No such file" in line


async def test_outbox_against_a_stopped_redis_says_it_cannot_reach_it(tmp_path: Path) -> None:
    from redis_server import RedisServer
    server = RedisServer(need_binary("redis-server"), tmp_path)
    server.wait_ready()
    server.stop()
    (tmp_path / "r.toml").write_text(RULES.format(state=server.url))
    done = await run_cli("outbox", "-c", "r.toml", cwd=tmp_path)
    assert done.returncode == 1
    line = one_clear_line(done.stderr)
    assert server.url in line and "connect" in line.lower()


async def test_outbox_password_in_a_redis_url_is_not_printed(tmp_path: Path) -> None:
    from redis_server import RedisServer
    server = RedisServer(need_binary("redis-server"), tmp_path)
    server.wait_ready()
    server.stop()
    url = server.url.replace("redis://", "redis://:hunter2secret@")
    (tmp_path / "r.toml").write_text(RULES.format(state=url))
    done = await run_cli("outbox", "-c", "r.toml", cwd=tmp_path)
    assert done.returncode == 1
    assert "hunter2secret" not in one_clear_line(done.stderr)


async def test_outbox_on_a_mistyped_sqlite_path_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text(RULES.format(state="sqlite:stat/state.db"))
    for args in ((), ("--dead",), ("--retry-dead",)):
        done = await run_cli("outbox", "-c", "r.toml", *args, cwd=tmp_path)
        assert done.returncode == 1
        assert "no database at" in one_clear_line(done.stderr)
    assert not (tmp_path / "stat").exists()


async def test_outbox_on_a_database_that_is_not_a_state_leaves_it_alone(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    before = other.read_bytes()
    (tmp_path / "r.toml").write_text(RULES.format(state=f"sqlite:///{other}"))
    done = await run_cli("outbox", "-c", "r.toml", "--retry-dead", cwd=tmp_path)
    assert done.returncode == 1
    assert "no careers-edge outbox" in one_clear_line(done.stderr)
    assert other.read_bytes() == before


async def test_outbox_on_an_existing_state_still_works(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text(RULES.format(state="sqlite:state.db"))
    done = await run_cli("check", "-c", "r.toml", cwd=tmp_path)    # check creates nothing
    assert done.returncode == 0
    assert not (tmp_path / "state.db").exists()
    from proxy.conversions.sqlite_outbox import SqliteOutbox
    box = SqliteOutbox(str(tmp_path / "state.db"))
    await box.close()
    done = await run_cli("outbox", "-c", "r.toml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "(empty)" in done.stdout


async def test_outbox_without_a_rules_file_says_so_and_touches_nothing(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()           # a checkout: its demo rules are not the operator's
    (tmp_path / "rules" / "demo.toml").write_text(RULES.format(state="sqlite:demo.db"))
    done = await run_cli("outbox", "--dead", cwd=tmp_path, env={"CAREERS_EDGE_CONFIG": None})
    assert done.returncode == 2
    line = one_clear_line(done.stderr)
    assert "-c RULES.toml" in line and "CAREERS_EDGE_CONFIG" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rules"]


async def test_outbox_takes_its_rules_file_from_careers_edge_config(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text(RULES.format(state="sqlite:state.db"))
    from proxy.conversions.sqlite_outbox import SqliteOutbox
    await SqliteOutbox(str(tmp_path / "state.db")).close()
    done = await run_cli("outbox", cwd=tmp_path, env={"CAREERS_EDGE_CONFIG": "r.toml"})
    assert done.returncode == 0, done.stderr
    assert "(empty)" in done.stdout
    (tmp_path / "other.toml").write_text(RULES.format(state="sqlite:nowhere/state.db"))
    done = await run_cli("outbox", "-c", "r.toml", cwd=tmp_path,
                         env={"CAREERS_EDGE_CONFIG": "other.toml"})
    assert done.returncode == 0, done.stderr      # -c wins over the variable
