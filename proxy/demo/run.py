"""`careers-edge demo`: the demo careers site, the proxy and a recorder, in one command."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

import proxy
from proxy.app import admin_runner, build_app
from proxy.config.env import Overrides
from proxy.config.errors import ConfigErrors, format_errors
from proxy.config.load import load_config
from proxy.demo.recorder import OnRequest, Recorder, describe
from proxy.demo.site import build_site, serve
from proxy.edge import AccessLog
from proxy.serve import install_uvloop

ENV_UPSTREAM = "CAREERS_EDGE_DEMO_UPSTREAM"
ENV_RECORDER = "CAREERS_EDGE_DEMO_RECORDER"
ADMIN_PORT = 9180


def demo_rules() -> Path:
    """rules/demo.toml: inside the installed package, or at the top of a source checkout."""
    here = Path(proxy.__file__).resolve().parent
    for candidate in (here / "rules" / "demo.toml", here.parent / "rules" / "demo.toml"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("rules/demo.toml is missing from this installation")


def banner(proxy_url: str, site_url: str, recorder_url: str, admin_url: str) -> str:
    tag = uuid.uuid4().hex
    landing = (f"{proxy_url}/jobs/1?tlr_sid={uuid.uuid4()}&fbclid=IwAR-demo-{tag[:8]}"
               f"&ccuid=demo-{tag[8:14]}&ittk=demo{tag[14:22]}&gclid=Cj0demo-{tag[22:30]}"
               f"&li_fat_id=demo-{tag[:6]}-{tag[6:12]}&ttclid=E.C.P.demo-{tag[12:20]}")
    return "\n".join([
        "careers-edge demo",
        f"  careers site (the unmodified upstream)  {site_url}",
        f"  ad networks (a local recorder)          {recorder_url}",
        f"  careers-edge proxy                      {proxy_url}",
        f"  its admin listener (operators only)     {admin_url}",
        "",
        "Open this landing link, as a paid click would arrive (it carries the click ids of",
        "Talroo, Meta, Appcast, Indeed, Google Ads, LinkedIn and TikTok at once):",
        f"  {landing}",
        "then press 'Apply', fill in the form and send it. Or, on another job's page, use",
        "'Quick apply': the page sends it to the site's JSON API without leaving, and",
        "the pixel is tracked when that request completes (leave the e-mail empty and",
        "the rejected attempt counts nothing). Each conversion the proxy delivers to an",
        "ad network is printed below as it arrives.",
        "",
        f"  metrics {admin_url}/_edge/metrics   job feed {proxy_url}/_edge/feed.xml",
        "Ctrl-C stops the demo.",
        "",
    ])


class DemoError(Exception):
    """The demo cannot start; the message says why."""


@dataclass(frozen=True, slots=True)
class Demo:
    proxy_url: str
    admin_url: str
    site_url: str
    recorder_url: str
    recorder: Recorder
    app: web.Application            # the proxy's


@asynccontextmanager
async def running_demo(port: int, host: str, admin_port: int = ADMIN_PORT,
                       on_request: OnRequest | None = None) -> AsyncIterator[Demo]:
    """The demo site, the recorder and the proxy with rules/demo.toml, all serving."""
    recorder = Recorder(on_request=on_request)
    site_runner, site_url = await serve(build_site, host=host)
    rec_runner, rec_url = await serve(lambda _url: recorder.build_app(), host=host)
    runners: list[web.BaseRunner] = []
    try:
        os.environ[ENV_UPSTREAM] = site_url
        os.environ[ENV_RECORDER] = rec_url
        try:
            config = load_config(demo_rules(), overrides=Overrides(
                listen=f"{host}:{port}", admin_listen=f"{host}:{admin_port}",
                origin={"listen": "--port", "admin_listen": "--admin-port"}))
        except ConfigErrors as exc:
            raise DemoError(format_errors(exc.errors)) from None
        app = build_app(config, access_log=AccessLog(enabled=False))
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        admin = admin_runner(app, access_log=None, handle_signals=False)
        for serving, at, flag in ((runner, port, "--port"), (admin, admin_port, "--admin-port")):
            await serving.setup()
            runners.append(serving)
            try:
                await web.TCPSite(serving, host, at).start()
            except OSError as exc:
                raise DemoError(f"careers-edge demo: cannot listen on {host}:{at}: "
                                f"{exc.strerror}; try {flag}") from None
        yield Demo(f"http://{host}:{port}", f"http://{host}:{admin_port}", site_url, rec_url,
                   recorder, app)
    finally:
        for started in reversed(runners):
            await started.cleanup()
        await rec_runner.cleanup()
        await site_runner.cleanup()


async def demo(port: int, host: str, admin_port: int = ADMIN_PORT) -> int:
    def show(req) -> None:
        if req.is_conversion:
            print(describe(req), flush=True)

    try:
        async with running_demo(port, host, admin_port, on_request=show) as d:
            print(banner(d.proxy_url, d.site_url, d.recorder_url, d.admin_url), flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
    except DemoError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def run_demo(port: int = 8080, host: str = "127.0.0.1", admin_port: int = ADMIN_PORT) -> int:
    install_uvloop()
    return asyncio.run(demo(port, host, admin_port))
