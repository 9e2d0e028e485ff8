"""`careers-edge demo`: the demo careers site, the proxy and a recorder, in one command."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

from aiohttp import web

import proxy
from proxy.app import admin_runner, build_app
from proxy.config.env import Overrides
from proxy.config.errors import ConfigErrors, format_errors
from proxy.config.load import load_config
from proxy.demo.recorder import Recorder, describe
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
        "then press 'Apply', fill in the form and send it. Each conversion the proxy",
        "delivers to an ad network is printed below as it arrives.",
        "",
        f"  metrics {admin_url}/_edge/metrics   job feed {proxy_url}/_edge/feed.xml",
        "Ctrl-C stops the demo.",
        "",
    ])


async def demo(port: int, host: str, admin_port: int = ADMIN_PORT) -> int:
    def show(req) -> None:
        if req.is_conversion:
            print(describe(req), flush=True)

    recorder = Recorder(on_request=show)
    site_runner, site_url = await serve(build_site, host=host)
    rec_runner, rec_url = await serve(lambda _url: recorder.build_app(), host=host)
    os.environ[ENV_UPSTREAM] = site_url
    os.environ[ENV_RECORDER] = rec_url
    try:
        config = load_config(demo_rules(), overrides=Overrides(
            listen=f"{host}:{port}", admin_listen=f"{host}:{admin_port}",
            origin={"listen": "--port", "admin_listen": "--admin-port"}))
    except ConfigErrors as exc:
        print(format_errors(exc.errors), file=sys.stderr)
        return 1
    app = build_app(config, access_log=AccessLog(enabled=False))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    admin = admin_runner(app, access_log=None, handle_signals=False)
    await admin.setup()
    for serving, at, flag in ((runner, port, "--port"), (admin, admin_port, "--admin-port")):
        try:
            await web.TCPSite(serving, host, at).start()
        except OSError as exc:
            print(f"careers-edge demo: cannot listen on {host}:{at}: {exc.strerror}; "
                  f"try {flag}", file=sys.stderr)
            await admin.cleanup()
            await runner.cleanup()
            return 1
    print(banner(f"http://{host}:{port}", site_url, rec_url, f"http://{host}:{admin_port}"),
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await admin.cleanup()
        await runner.cleanup()
        await rec_runner.cleanup()
        await site_runner.cleanup()
    return 0


def run_demo(port: int = 8080, host: str = "127.0.0.1", admin_port: int = ADMIN_PORT) -> int:
    install_uvloop()
    return asyncio.run(demo(port, host, admin_port))
