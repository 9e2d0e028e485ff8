"""`careers-edge demo` as a real process: both ways to apply, each conversion printed.

The demo is started as a user starts it, on a free port in a scratch directory; an
application is sent with the job's form (a multipart POST answered 303) and another
with a job page's quick apply (JSON over fetch); the printed lines name both, each
with the page it came from. SIGINT stops the demo cleanly.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time

import aiohttp

from tests.integration.harness import free_port
from tests.integration.procs import EXIT_TIMEOUT, START_TIMEOUT, ProxyProcess, child_env

POLL = 0.05


async def wait_stdout(proc: ProxyProcess, pattern: str, count: int = 1,
                      timeout: float = START_TIMEOUT) -> list[str]:
    """The first `count` stdout lines matching `pattern`, waiting up to `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in proc.stdout().splitlines() if re.search(pattern, line)]
        if len(found) >= count:
            return found[:count]
        if proc.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no {pattern!r} in the demo's output:\n{proc.stdout()}\n"
                                 f"{proc.stderr()}")
        await asyncio.sleep(POLL)


async def test_the_demo_prints_the_form_post_and_the_quick_apply(tmp_path) -> None:
    port = free_port()
    out, err = tmp_path / "demo.stdout", tmp_path / "demo.stderr"
    files = [out.open("wb"), err.open("wb")]
    popen = subprocess.Popen([sys.executable, "-m", "proxy", "demo", "--port", str(port),
                              "--admin-port", str(free_port())],
                             cwd=tmp_path, env=child_env(), stdin=subprocess.DEVNULL,
                             stdout=files[0], stderr=files[1], start_new_session=True)
    demo = ProxyProcess(popen, port, out, err, _files=files)
    try:
        await wait_stdout(demo, r"Ctrl-C stops the demo")
        assert "Quick apply" in demo.stdout()
        async with aiohttp.ClientSession(demo.url) as http:
            form = aiohttp.FormData({"job_title": "Warehouse Associate", "name": "Ann",
                                     "email": "ann@example.com"})
            form.add_field("resume", b"%PDF-1.4", filename="cv.pdf",
                           content_type="application/pdf")
            async with http.post("/jobs/1/apply", data=form, allow_redirects=False,
                                 headers={"Referer": f"{demo.url}/jobs/1/apply"}) as r:
                assert r.status == 303
            async with http.post("/api/jobs/2/applications",
                                 json={"name": "Bo", "email": "bo@example.com"},
                                 headers={"Referer": f"{demo.url}/jobs/2"}) as r:
                assert (await r.json())["ok"] is True
        lines = await wait_stdout(demo, r"→ meta +SubmitApplication", count=2)
        assert sorted(line.rsplit(" on ", 1)[1] for line in lines) == ["/jobs/1/apply",
                                                                         "/jobs/2"]
        await wait_stdout(demo, r"→ webhook .*ApplicationCompleted", count=2)
        demo.send(signal.SIGINT)
        assert await demo.wait_exit(EXIT_TIMEOUT) == 0
    finally:
        demo.kill()
