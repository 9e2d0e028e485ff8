"""The proxy as a real process: `python -m proxy run` in a subprocess, for tests.

`ProxyProcess` starts the real CLI with this interpreter on free loopback ports
(the public one and the admin one),
in its own session (so a teardown kill reaches every worker), with stdout and
stderr captured to files, and waits until `{prefix}/healthz` answers. `run_cli`
runs a short command (`check`, a `run` that must refuse to start) to completion.
The upstream and the recorder are served by the test process itself.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.integration.harness import free_port

START_TIMEOUT = 30.0        # seconds for a fresh interpreter to import, bind and answer
EXIT_TIMEOUT = 30.0
POLL = 0.05
PORT_ATTEMPTS = 3
REPO = Path(__file__).resolve().parents[2]
PR_SET_PDEATHSIG = 1        # prctl(2)


RULES_HEAD = """
[proxy]
upstream = "{upstream}"
state = "sqlite:///{state}"
timeout = 10
"""
NO_ACCESS_LOG = '\n[log]\naccess = "off"\n'      # unless the test's rules have a [log]
# The rule the process tests fire on: the demo site's application form, answered 303.
APPLY_RULE = """
[[rules]]
name = "application submitted"
event = "ApplicationCompleted"
method = "POST"
path = "/jobs/{job_id}/apply"
status = [303]
job_name = "form:job_title"
"""


def metric_value(text: str, name: str, **labels: str) -> float:
    """One sample from Prometheus text (label order free); 0 when the series is absent."""
    for line in text.splitlines():
        m = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if m is None or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if found == labels:
            return float(m.group(3))
    return 0.0


def write_rules(tmp: Path, upstream: str, body: str = "", *, recorder: str = "",
                name: str = "rules.toml", state: str = "state.db") -> Path:
    """A rules file for `upstream`; `{recorder}` in `body` becomes the recorder's URL."""
    path = tmp / name
    text = RULES_HEAD.format(upstream=upstream, state=tmp / state)
    text += textwrap.dedent(body).replace("{recorder}", recorder)
    path.write_text(text if "[log]" in body else text + NO_ACCESS_LOG)
    return path


def apply_rule(*send_to: str) -> str:
    """`APPLY_RULE`, sending what it detects to the named sinks."""
    names = ", ".join(f'"{name}"' for name in send_to)
    return f"{APPLY_RULE}send_to = [{names}]\n"


def child_env(extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """This environment plus `extra`; a None value removes the variable."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    # The checkout, not whatever else is on the path, is what runs.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@dataclass
class ProxyProcess:
    """One `careers-edge run` process (its workers included) and its captured output."""

    proc: subprocess.Popen[bytes]
    port: int
    stdout_path: Path
    stderr_path: Path
    prefix: str = "/_edge"
    admin_port: int = 0
    _files: list = field(default_factory=list, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        """The admin listener: healthz, readyz, metrics."""
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def metrics_url(self) -> str:
        """Where the process serves its metrics: the one place tests take it from."""
        return f"{self.admin_url}{self.prefix}/metrics"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL the whole session (parent and workers) and reap the parent."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:   # pragma: no cover - SIGKILL is not ignorable
            pass
        for f in self._files:
            f.close()

    async def wait_exit(self, timeout: float = EXIT_TIMEOUT) -> int:
        deadline = time.monotonic() + timeout
        while (code := self.proc.poll()) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"proxy still running after {timeout} s:\n{self.stderr()}")
            await asyncio.sleep(POLL)
        return code

    async def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"proxy exited with {self.proc.returncode}:\n"
                                       f"{self.stderr()}")
                try:
                    async with session.get(f"{self.url}{self.prefix}/healthz",
                                           timeout=aiohttp.ClientTimeout(total=2)) as r:
                        # Our own log line proves the answer is ours, not another
                        # server's that took the port before this process bound it.
                        if r.status == 200 and f":{self.port} " in self.stderr():
                            return
                except (TimeoutError, aiohttp.ClientError):
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"proxy not healthy after {timeout} s:\n{self.stderr()}")
                await asyncio.sleep(POLL * 2)

    async def wait_log(self, predicate: Callable[[str], bool] | str,
                       timeout: float = 10.0) -> str:
        """The stderr text once it satisfies `predicate` (or contains the string)."""
        test = (lambda t: predicate in t) if isinstance(predicate, str) else predicate
        deadline = time.monotonic() + timeout
        while not test(text := self.stderr()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"log condition not met after {timeout} s:\n{text}")
            await asyncio.sleep(POLL)
        return text

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as session, \
                session.get(self.metrics_url) as r:
            assert r.status == 200
            return await r.text()


def stop_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, so a run that is
    killed (a timeout) leaves no proxy behind; teardown does the rest (Linux only)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(rules: Path, *, tmp: Path, port: int | None = None, workers: int | None = None,
          env: Mapping[str, str | None] | None = None, args: Sequence[str] = (),
          name: str = "proxy") -> ProxyProcess:
    """Start `python -m proxy run -c RULES --listen 127.0.0.1:PORT --admin-listen
    127.0.0.1:ADMIN_PORT` with cwd `tmp` (`args` may give its own --admin-listen)."""
    port = port or free_port()
    admin_port = 0 if "--admin-listen" in args else free_port()
    cmd = [sys.executable, "-m", "proxy", "run", "-c", str(rules),
           "--listen", f"127.0.0.1:{port}", *args]
    if admin_port:
        cmd += ["--admin-listen", f"127.0.0.1:{admin_port}"]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    n = len(list(tmp.glob(f"{name}-*.stderr")))
    out_path, err_path = tmp / f"{name}-{n}.stdout", tmp / f"{name}-{n}.stderr"
    out, err = out_path.open("wb"), err_path.open("wb")
    proc = subprocess.Popen(cmd, cwd=tmp, env=child_env(env), stdin=subprocess.DEVNULL,
                            stdout=out, stderr=err, start_new_session=True,
                            preexec_fn=stop_with_parent)
    return ProxyProcess(proc, port, out_path, err_path, admin_port=admin_port,
                        _files=[out, err])


@asynccontextmanager
async def running(rules: Path, *, tmp: Path, **kw) -> AsyncIterator[ProxyProcess]:
    """A healthy proxy process for the block; killed (with its workers) afterwards."""
    for attempt in range(PORT_ATTEMPTS):
        p = spawn(rules, tmp=tmp, **kw)
        try:
            await p.wait_healthy()
            break
        except RuntimeError:
            p.kill()
            # The free port was taken between choosing it and binding it: choose again.
            if "cannot listen on" not in p.stderr() or attempt == PORT_ATTEMPTS - 1:
                raise
        except BaseException:
            p.kill()
            raise
    try:
        yield p
    finally:
        p.kill()


async def run_cli(*args: str, cwd: Path, env: Mapping[str, str | None] | None = None,
                  timeout: float = EXIT_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """`python -m proxy ARGS` to completion, off the event loop (servers keep serving)."""
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "proxy", *args], cwd=cwd, env=child_env(env),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
