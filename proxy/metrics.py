"""Every metric the proxy exports, named once (SPEC section 5).

Each app owns a private registry so tests and several apps in one process do not
collide; `/_edge/metrics` renders it with prometheus-client. With `--workers N` the
supervisor calls `enable_multiprocess` before forking: every worker then writes its
samples to a shared directory and any worker's scrape adds them all up.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

# `*_created` series double the output and no dashboard reads them.
disable_created_metrics()

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def enable_multiprocess(directory: str) -> None:
    """Samples from here on go to files in `directory`, shared by forked workers."""
    os.environ[MULTIPROC_ENV] = directory
    values.ValueClass = values.MultiProcessValue()


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters keep counting in the sum)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)


class _TallyCollector(Collector):
    def __init__(self, name: str, doc: str, label: str,
                 counts: Callable[[], Mapping[str, int]]) -> None:
        self.name, self.doc, self.label, self.counts = name, doc, label, counts

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.doc, labels=[self.label])
        for value, n in sorted(self.counts().items()):
            family.add_metric([value], n)
        yield family


class _GaugeCollector(Collector):
    def __init__(self, name: str, doc: str, value: Callable[[], float]) -> None:
        self.name, self.doc, self.value = name, doc, value

    def collect(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.name, self.doc, value=self.value())


CONVERSION_OUTCOMES = (
    "queued", "sent", "retried", "dead", "deduped", "skipped", "suppressed", "error")


class Metrics:
    """The proxy's instruments; one instance per app."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.tallies = CollectorRegistry()    # read from components at scrape time
        self.requests = Counter(
            "edge_requests", "Responses sent to visitors, by status code.", ["code"], registry=r)
        self.upstream_seconds = Histogram(
            "edge_upstream_seconds", "Time to the upstream's response headers.", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.upstream_errors = Counter(
            "edge_upstream_errors", "Upstream failures, by kind.", ["kind"], registry=r)
        self.injections = Counter(
            "edge_injections", "HTML responses that received pixels.", registry=r)
        self.links_kept = Counter(
            "edge_links_kept", "HTML pages whose upstream links were left as they are: the "
            "page's CSP allows inline scripts by hash.", registry=r)
        self.clicks_captured = Counter(
            "edge_clicks_captured", "Click ids captured from landing URLs.", ["param"], registry=r)
        self.clicks_rejected = Counter(
            "edge_clicks_rejected", "Click ids ignored as invalid.", ["param"], registry=r)
        self.cookies_rejected = Counter(
            "edge_cookies_rejected", "Attribution cookies ignored as tampered or foreign.",
            registry=r)
        self.tcf_invalid = Counter(
            "edge_tcf_invalid", "TC strings (euconsent-v2 cookie) that could not be decoded: "
            "treated as no consent.", registry=r)
        self.conversions = Counter(
            "edge_conversions", "Conversions by sink and outcome.", ["sink", "outcome"],
            registry=r)
        self.outbox_pending = Gauge(
            "edge_outbox_pending", "Conversions waiting in the outbox.", registry=r,
            multiprocess_mode="livemax")   # every worker sees the same shared outbox
        self.rules_reload = Counter(
            "edge_rules_reload", "Rules file reloads, by result.", ["result"], registry=r)
        self.rules_fired = Counter(
            "edge_rules_fired", "Rule matches, by rule name.", ["rule"], registry=r)

    def export_counts(self, name: str, doc: str, label: str,
                      counts: Callable[[], Mapping[str, int]]) -> None:
        """A counter family read from a component's own tally at scrape time."""
        self.tallies.register(_TallyCollector(name, doc, label, counts))

    def export_gauge(self, name: str, doc: str, value: Callable[[], float]) -> None:
        """A gauge read from a component at scrape time."""
        self.tallies.register(_GaugeCollector(name, doc, value))

    def render(self) -> tuple[bytes, str]:
        if os.environ.get(MULTIPROC_ENV):
            every = CollectorRegistry()
            multiprocess.MultiProcessCollector(every)
            body = generate_latest(every)
        else:
            body = generate_latest(self.registry)
        return body + generate_latest(self.tallies), CONTENT_TYPE_LATEST
