"""build_app(config): the parts wired together and their lifecycle, stated once.

`edge_runner` serves the application on the public listener, `admin_runner` the
operators' endpoints (`edge.admin`) on the admin listener.

Each background part (transport, outbox and its dispatcher, journeys, feed, access
log, rules watcher) is owned by `app.cleanup_ctx` through `background.part`: started
on startup, stopped in reverse order on shutdown.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import IO, Any

from aiohttp import web

from proxy.background import part
from proxy.config.env import Overrides
from proxy.config.model import Config
from proxy.conversions.dispatcher import Dispatcher
from proxy.conversions.outbox import OutboxRow
from proxy.conversions.tuning import dispatcher_options
from proxy.edge import EDGE, AccessLog, Edge
from proxy.endpoints.admin import admin_handler, admin_routes
from proxy.endpoints.events_api import events_api_handler
from proxy.endpoints.ops_api import OpsApi
from proxy.endpoints.router import PublicEndpoints
from proxy.feed.service import FeedService, feed_handler
from proxy.http.response import on_response_prepare
from proxy.http.server import EdgeRunner, edge_server_runner
from proxy.http.transport import UpstreamPool
from proxy.http.upstreams import Upstreams
from proxy.metrics import Metrics
from proxy.ops.live import Live
from proxy.ops.reads import open_reads
from proxy.ops.views import stream_delivery
from proxy.pipeline import handle, serve_request
from proxy.reload import RulesReloader
from proxy.runtime import compile_runtime, public_origin_of
from proxy.stores import open_stores

log = logging.getLogger("careers_edge")


def build_app(config: Config, *, access_log: AccessLog | None = None,
              dispatch: bool = True, crawl: bool | None = None,
              overrides: Overrides | None = None,
              access_stream: IO[bytes] | None = None) -> web.Application:
    """The proxy for one rules file. `dispatch=False` leaves delivery to another process.
    The access log is as `[log]` says, to `access_stream` (stdout), unless `access_log`
    is given."""
    metrics = Metrics()
    stores = open_stores(config, metrics)
    secret = stores.secret
    runtime = compile_runtime(config, secret)

    def make_pool(origin: str) -> UpstreamPool:
        return UpstreamPool(origin, max_connections=config.proxy.max_connections,
                            connect_timeout=config.proxy.connect_timeout)

    transport = make_pool(runtime.upstream_origin)
    upstreams = Upstreams(transport, runtime.upstream_origin, make_pool)
    upstreams.sync(runtime.routes.origins)
    outbox = stores.outbox
    edge = Edge(runtime=runtime, transport=transport, upstreams=upstreams, metrics=metrics,
                outbox=outbox, journeys=stores.journeys,
                access_log=access_log or AccessLog(
                    access_stream, enabled=config.log.access != "off", fmt=config.log.access,
                    health=config.log.health))
    edge.access_log.redactor = lambda: edge.runtime.redactor
    journeys = stores.journeys
    metrics.export_gauge("edge_journeys_pending", "Visitor journeys waiting to be written.",
                         lambda: journeys.pending)
    metrics.export_counts("edge_journeys_dropped", "Journeys not recorded: buffer full.",
                          "store", lambda: {"journeys": journeys.dropped})
    templates = edge.templates
    metrics.export_counts("edge_page_templates", "Whole pages transformed from a kept "
                          "template (hit) or afresh (miss).", "result",
                          lambda: {"hit": templates.hits, "miss": templates.misses})
    feed: FeedService | None = None
    if config.feed.enabled:
        edge.feed = feed = FeedService(config.feed, store_path=stores.local_path,
                                       upstream_origin=runtime.upstream_origin,
                                       public_origin=runtime.public_origin, crawl=crawl)
        metrics.export_counts("edge_feed_skipped", "Jobs left out of the feed, by reason.",
                              "reason", lambda: feed.skipped)
    lookup = edge.journeys
    edge.admin = admin_routes(edge)
    reads = open_reads(outbox)
    OpsApi(edge, reads).mount()
    edge.endpoints = PublicEndpoints(
        edge,
        events_api_handler(lambda: edge.runtime.config, outbox, lookup, live=edge.live),
        feed_handler(feed, lambda request: public_origin_of(edge.runtime, request))
        if feed is not None else None)

    app = web.Application(handler_args=HANDLER_ARGS)
    app[EDGE] = edge
    app.router.add_route("*", "/{tail:.*}", handle)
    app.on_response_prepare.append(on_response_prepare)    # under a plain web.AppRunner

    app.cleanup_ctx.append(part("upstreams", stop=upstreams.close))
    app.cleanup_ctx.append(part("outbox", start=outbox.start, stop=outbox.close))
    app.cleanup_ctx.append(part("reads", stop=reads.close))
    app.cleanup_ctx.append(part("journeys", start=edge.journeys.start, stop=edge.journeys.stop))
    if dispatch:
        dispatcher = Dispatcher(outbox, config.sinks, metrics=metrics,
                                observer=_deliveries_to(edge.live),
                                **dispatcher_options(config.sinks))
        app.cleanup_ctx.append(part("dispatcher", start=dispatcher.start, stop=dispatcher.stop))
    else:
        dispatcher = None
    if feed is not None:
        app.cleanup_ctx.append(part("feed", start=feed.start, stop=feed.stop))
    app.cleanup_ctx.append(part("access-log", run=edge.access_log.run))
    if metrics.published:       # workers: each one's tallies into the shared files
        app.cleanup_ctx.append(part("metrics", run=metrics.publishing, stop=metrics.publish))
    if config.source is not None:
        reloader = RulesReloader(edge, config.source, secret, dispatcher, overrides)
        app[RELOADER] = reloader
        app.cleanup_ctx.append(part("rules-watch", run=reloader.watch))
    app.on_shutdown.append(_drain)
    return app


RELOADER = web.AppKey("reloader", RulesReloader)
# Request bodies go upstream as sent: aiohttp must not decode a gzip upload (the
# upstream would get plain bytes labelled gzip).
HANDLER_ARGS: dict[str, Any] = {"max_field_size": 16384, "auto_decompress": False}


def edge_runner(app: web.Application, **kwargs: Any) -> EdgeRunner:
    """The runner that serves `build_app`'s application, requests straight to the
    pipeline (called with the event loop running)."""
    edge = app[EDGE]
    p = edge.runtime.config.proxy
    return edge_server_runner(app, functools.partial(serve_request, edge), **HANDLER_ARGS,
                              header_timeout=p.header_timeout, count=edge.count_code,
                              keepalive_timeout=p.keepalive_timeout, **kwargs)


def admin_runner(app: web.Application, *, access_log: logging.Logger | None = None,
                 **kwargs: Any) -> web.ServerRunner:
    """The runner of the admin listener for `build_app`'s application. It shares the
    application's parts, so start it after the application's runner and stop it first.
    `access_log` goes to the server: a `ServerRunner` ignores it."""
    return web.ServerRunner(web.Server(admin_handler(app[EDGE]), access_log=access_log,
                                       max_field_size=HANDLER_ARGS["max_field_size"]),
                            **kwargs)


def _deliveries_to(live: Live) -> Callable[[OutboxRow], None]:
    """The dispatcher's observer: each recorded delivery onto the live feed."""
    def observe(row: OutboxRow) -> None:
        if live.subscribers:
            live.publish("delivery", stream_delivery(row))
    return observe


async def _drain(app: web.Application) -> None:
    edge = app[EDGE]
    edge.draining = True
    edge.live.close()
    if edge._ws_session is not None:
        await edge._ws_session.close()
