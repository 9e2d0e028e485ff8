"""`careers-edge` commands: run, check, explain, demo, bench, outbox (SPEC section 2),
and for operators: healthcheck, config-reference."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from proxy import __version__
from proxy.config.env import Overrides
from proxy.config.errors import ConfigErrors, format_errors
from proxy.config.load import load_config


def _load(path: str, overrides: Overrides | None = None, *, for_run: bool = False,
          warnings: list | None = None):
    """The config, or None after printing every error (exit 1 follows)."""
    try:
        return load_config(path, overrides=overrides, allow_missing_upstream=not for_run,
                           warnings=warnings)
    except ConfigErrors as exc:
        print(format_errors(exc.errors), file=sys.stderr)
        return None


def cmd_check(args: argparse.Namespace) -> int:
    from proxy.config.summary import edge_warnings, summary
    warnings: list = []
    config = _load(args.config, warnings=warnings)
    if config is None:
        return 1
    print(summary(config, warnings + edge_warnings(config)))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    # A SIGHUP before the workers handle it (while starting) must not kill the proxy.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from proxy.app_log import LevelError, configure_logging, resolve_level
    from proxy.redact import Redactor
    from proxy.serve import run
    try:
        level = resolve_level(args.log_level, os.environ)   # until the file says more
    except LevelError as e:
        print(f"careers-edge: not started: {e}", file=sys.stderr)
        return 1
    configure_logging(level)
    overrides = Overrides.resolve(os.environ, args.listen, args.upstream, args.workers,
                                  args.admin_listen)
    config = _load(args.config, overrides, for_run=True)
    if config is None:
        print("careers-edge: not started: the rules file is invalid", file=sys.stderr)
        return 1
    configure_logging(resolve_level(args.log_level, os.environ, config.log.level),
                      config.log.format,
                      Redactor(config.attribution.params, config.log.redact))
    return run(config, overrides)


def cmd_explain(args: argparse.Namespace) -> int:
    from proxy.explain import explain
    config = _load(args.config)
    if config is None:
        return 1
    files: dict[str, bytes | None] = {}
    for flag, name in (("--body", args.body), ("--json", args.json),
                       ("--request-json", args.request_json)):
        try:
            files[flag] = Path(name).read_bytes() if name else None
        except OSError as e:
            print(f"careers-edge explain: cannot read {flag} {name}: {e.strerror or e}",
                  file=sys.stderr)
            return 1
    body, json_body, request_json = files["--body"], files["--json"], files["--request-json"]
    print(explain(config, args.method, args.url, status=args.status, location=args.location,
                  body=body, form=dict(args.form or []), cookie=args.cookie,
                  json_body=json_body, request_json=request_json))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from proxy.demo.run import run_demo
    return run_demo(port=args.port, host=args.host, admin_port=args.admin_port)


def cmd_bench(args: argparse.Namespace) -> int:
    from proxy.bench import run_bench
    return run_bench(duration=args.duration, connections=args.connections)


def cmd_outbox(args: argparse.Namespace) -> int:
    from proxy.conversions.cli_outbox import outbox_command
    path = args.config or os.environ.get("CAREERS_EDGE_CONFIG")
    if not path:
        print("careers-edge outbox: which rules file? Pass -c RULES.toml or set "
              "CAREERS_EDGE_CONFIG", file=sys.stderr)
        return 2
    config = _load(path)
    if config is None:
        return 1
    return asyncio.run(outbox_command(config, dead=args.dead, retry_dead=args.retry_dead))


def cmd_healthcheck(args: argparse.Namespace) -> int:
    from proxy.healthcheck import healthcheck
    config = _load(args.config, Overrides.resolve(os.environ))
    if config is None:
        return 1
    return healthcheck(config, args.timeout)


def cmd_config_reference(args: argparse.Namespace) -> int:
    from proxy.config.reference import run
    return run(args)


def _log_level(text: str) -> str:
    from proxy.app_log import level_problem
    problem = level_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def _form_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError("use NAME=VALUE")
    return name, value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="careers-edge",
        description="A reverse proxy in front of a hosted careers site: click ids, pixels, "
                    "server-side conversions.")
    p.add_argument("--version", action="version", version=f"careers-edge {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the proxy")
    run.add_argument("-c", "--config", required=True, metavar="RULES.toml")
    run.add_argument("--listen", metavar="HOST:PORT", help="env CAREERS_EDGE_LISTEN")
    run.add_argument("--upstream", metavar="URL", help="env CAREERS_EDGE_UPSTREAM")
    run.add_argument("--workers", metavar="N", help="env CAREERS_EDGE_WORKERS")
    run.add_argument("--admin-listen", metavar="HOST:PORT|off",
                     help="the operators' listener; env CAREERS_EDGE_ADMIN_LISTEN")
    run.add_argument("--log-level", type=_log_level, metavar="LEVEL",
                     help="debug, info, warning, error or critical (any case); wins over "
                          "env CAREERS_EDGE_LOG_LEVEL, which wins over [log] level")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check", help="validate a rules file")
    check.add_argument("-c", "--config", required=True, metavar="RULES.toml")
    check.set_defaults(func=cmd_check)

    ex = sub.add_parser("explain", help="dry run: what a request would capture, inject, fire")
    ex.add_argument("-c", "--config", required=True, metavar="RULES.toml")
    ex.add_argument("method")
    ex.add_argument("url")
    ex.add_argument("--status", type=int, default=200)
    ex.add_argument("--location", metavar="URL")
    ex.add_argument("--body", metavar="FILE", help="the HTML response body to match against")
    ex.add_argument("--form", action="append", type=_form_pair, metavar="NAME=VALUE",
                    help="a form field of the request body (repeatable)")
    ex.add_argument("--cookie", metavar="HEADER",
                    help="the visitor's Cookie header, e.g. 'euconsent-v2=CP...'")
    ex.add_argument("--json", metavar="FILE",
                    help="the JSON response body (the response is then JSON, not HTML)")
    ex.add_argument("--request-json", metavar="FILE", help="the JSON request body")
    ex.set_defaults(func=cmd_explain)

    demo = sub.add_parser("demo", help="demo careers site + proxy + ad-network recorder")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--admin-port", type=int, default=9180,
                      help="the admin listener (metrics, readyz)")
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="load test through the proxy locally")
    bench.add_argument("--duration", type=float, default=10.0, metavar="S")
    bench.add_argument("--connections", type=int, default=50, metavar="N")
    bench.set_defaults(func=cmd_bench)

    ob = sub.add_parser("outbox", help="inspect the durable conversion queue")
    ob.add_argument("-c", "--config", metavar="RULES.toml", help="env CAREERS_EDGE_CONFIG")
    ob.add_argument("--dead", action="store_true", help="list dead letters")
    ob.add_argument("--retry-dead", action="store_true", help="re-queue dead letters")
    ob.set_defaults(func=cmd_outbox)

    hc = sub.add_parser("healthcheck", help="exit 0 when the proxy on this host answers healthz")
    hc.add_argument("-c", "--config", required=True, metavar="RULES.toml")
    hc.add_argument("--timeout", type=float, default=3.0, metavar="S")
    hc.set_defaults(func=cmd_healthcheck)

    from proxy.config.reference import add_arguments
    ref = sub.add_parser("config-reference",
                         help="write docs/configuration.md and docs/rules.schema.json")
    add_arguments(ref)
    ref.set_defaults(func=cmd_config_reference)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
