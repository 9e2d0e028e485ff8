"""Request bodies at the edge: max_body (413, never forwarded), buffering through a
temporary file (byte-exact, the file gone afterwards), form sniffing while buffering,
and the rules-file keys that set them."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import aiohttp
import pytest

from proxy.config.errors import ConfigErrors
from proxy.config.load import load_config_text
from proxy.config.schema import parse_size
from proxy.demo.site import build_site
from tests.integration.harness import stack, start
from tests.integration.procs import running, write_rules
from tests.integration.upstreams import echo_app
from tests.security.edge_http import (
    PATIENCE,
    RawConnection,
    Recording,
    eventually,
    recording_app,
)

MINIMAL = "[proxy]\nupstream = 'https://ats.example'\n"


# --- the keys ----------------------------------------------------------------------

def test_defaults_are_nginx_like() -> None:
    p = load_config_text(MINIMAL, "r.toml", {}).proxy
    assert (p.header_timeout, p.body_timeout, p.keepalive_timeout, p.pool_timeout) == \
        (10, 60, 75, 5)
    assert p.request_buffering is True and p.max_body == 100 * 1024 * 1024


@pytest.mark.parametrize("written, size", [
    ('"100MB"', 100 * 1024 ** 2), ('"512k"', 512 * 1024), ("1024", 1024), ('"1g"', 1024 ** 3),
    ('"2 MiB"', 2 * 1024 ** 2), ('"64kb"', 64 * 1024), ('"7"', 7), ("0", 0),
    ('"${BODY}"', 3 * 1024 ** 2),
])
def test_max_body_sizes(written: str, size: int) -> None:
    config = load_config_text(MINIMAL + f"max_body = {written}\n", "r.toml", {"BODY": "3m"})
    assert config.proxy.max_body == size


@pytest.mark.parametrize("line, key, fragment", [
    ('max_body = "lots"', "proxy.max_body", "is not a size"),
    ('max_body = "1.5MB"', "proxy.max_body", "is not a size"),
    ("max_body = -1", "proxy.max_body", "≥ 0"),
    ("max_body = true", "proxy.max_body", "expected a string"),
    ("header_timeout = 0", "proxy.header_timeout", "greater than 0"),
    ('body_timeout = "soon"', "proxy.body_timeout", "expected a number"),
    ("keepalive_timeout = -5", "proxy.keepalive_timeout", "greater than 0"),
    ("pool_timeout = 0", "proxy.pool_timeout", "greater than 0"),
    ('request_buffering = "on"', "proxy.request_buffering", "true or false"),
    ("header_timeuot = 3", "proxy.header_timeuot", "did you mean 'header_timeout'"),
])
def test_bad_values_are_errors_with_their_key(line: str, key: str, fragment: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        load_config_text(MINIMAL + line + "\n", "r.toml", {})
    [err] = info.value.errors
    assert err.key == key and fragment in err.message and err.line == 3


def test_parse_size_refuses_what_is_not_a_size() -> None:
    assert [parse_size(t) for t in ("", "MB", "1 0k", "-1", "1t", "0x10")] == [None] * 6


# --- max_body ------------------------------------------------------------------------

async def test_a_declared_length_over_max_body_gets_413_and_is_never_forwarded(
        tmp_path: Path) -> None:
    rec = Recording()
    async with stack(recording_app(rec), tmp=tmp_path, proxy_extra='max_body = "1k"') as s:
        conn = await RawConnection.open(s.proxy_url)
        await conn.send(b"POST /echo HTTP/1.1\r\nHost: careers.test\r\n"
                        b"Content-Length: 1025\r\n\r\n" + b"x" * 1025)
        resp = await conn.response()
        assert resp.status == 413 and resp.header("Connection") == "close"
        conn.close()
        async with aiohttp.ClientSession() as c:    # exactly the limit passes
            async with c.post(s.proxy_url + "/echo", data=b"x" * 1024) as r:
                assert r.status == 200 and (await r.json())["body_len"] == 1024
        assert [e.body_len for e in rec.seen] == [1024]


@pytest.mark.parametrize("buffering", ["true", "false"])
async def test_a_chunked_body_over_max_body_gets_413_and_never_arrives_whole(
        tmp_path: Path, buffering: str) -> None:
    rec = Recording()
    async with stack(recording_app(rec), tmp=tmp_path,
                     proxy_extra=f'max_body = "64k"\nrequest_buffering = {buffering}') as s:
        conn = await RawConnection.open(s.proxy_url)
        await conn.send(b"POST /echo HTTP/1.1\r\nHost: careers.test\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):
            await conn.send(b"8000\r\n" + b"y" * 0x8000 + b"\r\n")     # 3 x 32 KiB
        await conn.send(b"0\r\n\r\n")
        assert (await conn.response()).status == 413
        conn.close()
        assert rec.seen == []
        if buffering == "true":
            assert rec.entered == []        # buffered: the upstream never heard of it


# --- buffering through a temporary file ----------------------------------------------

def open_in(pid: int, directory: Path) -> list[str]:
    """Files of process `pid` open under `directory` (an unnamed temporary file shows
    as "DIR/#NNN (deleted)")."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory)):
            found.append(target)
    return found


async def test_a_20mb_body_goes_through_a_temporary_file_byte_exact_and_is_removed(
        tmp_path: Path) -> None:
    bodies = tmp_path / "bodies"
    bodies.mkdir()
    proxy_pid: list[int] = []
    rec = Recording()
    runner, port = await start(
        recording_app(rec, probe=lambda: open_in(proxy_pid[0], bodies)))
    try:
        rules = write_rules(tmp_path, f"http://127.0.0.1:{port}")
        body = os.urandom(20 * 1024 * 1024)
        async with running(rules, tmp=tmp_path, env={"TMPDIR": str(bodies)}) as p:
            proxy_pid.append(p.pid)
            async with aiohttp.ClientSession() as c:
                async with c.post(p.url + "/echo/upload", data=body,
                                  timeout=aiohttp.ClientTimeout(total=PATIENCE * 4)) as r:
                    answer = await r.json()
            assert r.status == 200
            assert answer == {"body_len": len(body), "sha256": hashlib.sha256(body).hexdigest()}
            # While the upstream read it, the body sat in a file in TMPDIR ...
            assert len(rec.during[0]) == 1 and "(deleted)" in rec.during[0][0]
            # ... which is closed, and was never a name in the directory.
            assert open_in(p.pid, bodies) == [] and os.listdir(bodies) == []
    finally:
        await runner.cleanup()


async def test_a_body_cut_short_while_buffering_leaves_no_file_behind(
        tmp_path: Path) -> None:
    bodies = tmp_path / "bodies"
    bodies.mkdir()
    rec = Recording()
    runner, port = await start(recording_app(rec))
    try:
        rules = write_rules(tmp_path, f"http://127.0.0.1:{port}")
        async with running(rules, tmp=tmp_path, env={"TMPDIR": str(bodies)}) as p:
            conn = await RawConnection.open(p.url)
            await conn.send(b"POST /echo HTTP/1.1\r\nHost: careers.test\r\n"
                            b"Content-Length: 5000000\r\n\r\n" + b"z" * 3_000_000)
            await eventually(lambda: open_in(p.pid, bodies))    # past 1 MiB: in the file
            conn.close()                             # the visitor goes away
            async with aiohttp.ClientSession() as c, c.get(
                    p.url + "/echo", timeout=aiohttp.ClientTimeout(total=PATIENCE)) as r:
                assert r.status == 200
            await eventually(lambda: not open_in(p.pid, bodies))
            assert rec.entered == ["/echo"] and "Traceback" not in p.stderr()
    finally:
        await runner.cleanup()


async def test_form_fields_are_sniffed_while_buffering_past_memory(tmp_path: Path) -> None:
    """The job title comes after a 3 MB resume: the sniffer saw every chunk once,
    on its way into the temporary file, and the event names the job."""
    rules = """
    [[rules]]
    name = "application submitted"
    event = "ApplicationCompleted"
    method = "POST"
    path = "/jobs/{job_id}/apply"
    status = [303]
    job_name = "form:job_title"
    send_to = ["ats"]

    [sinks.ats]
    type = "webhook"
    url = "{recorder}/hooks/ats"
    secret = "whsec-1"
    """
    async with stack(build_site, rules, tmp=tmp_path) as s:
        form = aiohttp.FormData()
        form.add_field("name", "Ada Lovelace")
        form.add_field("email", "ada@example.com")
        form.add_field("resume", b"%PDF-" + os.urandom(3 * 1024 * 1024), filename="cv.pdf",
                       content_type="application/pdf")
        form.add_field("job_title", "Backend Engineer")
        async with s.session() as c, c.post("/jobs/2/apply", data=form,
                                            allow_redirects=False) as r:
            assert r.status == 303
        hook = await s.recorder.wait_for(lambda r: r.network == "webhook", timeout=15)
        assert json.loads(hook.text)["jobName"] == "Backend Engineer"


@pytest.mark.parametrize("buffering", ["true", "false"])
async def test_a_gzip_body_goes_upstream_as_sent(tmp_path: Path, buffering: str) -> None:
    body = gzip.compress(os.urandom(2000) * 1000)           # 2 MB of it, not decoded
    async with stack(echo_app(), tmp=tmp_path,
                     proxy_extra=f"request_buffering = {buffering}") as s:
        async with aiohttp.ClientSession(auto_decompress=False) as c, c.post(
                s.proxy_url + "/echo/raw", data=body,
                headers={"Content-Encoding": "gzip"}) as r:
            assert r.status == 200
            answer = await r.json()
    assert ["Content-Encoding", "gzip"] in answer["headers"]
    assert answer["body_len"] == 2_000_000                  # the upstream decoded it whole


async def test_bodies_stream_unbuffered_when_request_buffering_is_off(tmp_path: Path) -> None:
    async with stack(echo_app(), tmp=tmp_path, proxy_extra="request_buffering = false") as s:
        async with aiohttp.ClientSession() as c:
            async def chunks():
                for _ in range(4):
                    yield b"q" * 100_000
            async with c.post(s.proxy_url + "/echo", data=chunks()) as r:
                assert r.status == 200
                answer = await r.json()
        assert answer["body_len"] == 400_000
        # streamed: forwarded chunked, as the visitor sent it
        assert ["Transfer-Encoding", "chunked"] in answer["headers"]
