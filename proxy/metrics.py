"""Every metric the proxy exports, named once (SPEC section 5).

Each app owns a private registry so tests and several apps in one process do not
collide; `/_edge/metrics` renders it with prometheus-client. With `--workers N` the
supervisor calls `enable_multiprocess` before forking: every worker then writes its
samples to a shared directory and any worker's scrape adds them all up. Process
metrics (`process_*`, prometheus-client's collector) cannot be added up that way:
with workers, a scrape reports each live worker's, labelled `pid`.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import platform
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from itertools import accumulate
from typing import Protocol

import aiohttp
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
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from proxy import __version__

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


PUBLISH_SECONDS = 1.0


class _PublishedCounts:
    """A component's running counts as a multiprocess `Counter`: each publish adds
    what was counted since the last (a worker's counts only grow)."""

    __slots__ = ("counter", "counts", "sent")

    def __init__(self, counter: Counter, counts: Callable[[], Mapping[str, int]]) -> None:
        self.counter, self.counts = counter, counts
        self.sent: dict[str, int] = {}

    def publish(self) -> None:
        for value, n in self.counts().items():
            sent = self.sent.get(value)
            if sent is None:            # the series is there from the start, at 0 too
                self.counter.labels(value)
                sent = self.sent[value] = 0
            if n > sent:
                self.counter.labels(value).inc(n - sent)
                self.sent[value] = n


class _PublishedGauge:
    __slots__ = ("gauge", "value")

    def __init__(self, gauge: Gauge, value: Callable[[], float]) -> None:
        self.gauge, self.value = gauge, value

    def publish(self) -> None:
        self.gauge.set(self.value())


class _BuildInfo(Collector):
    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("edge_build_info", "The running version (always 1).",
                                   labels=["version", "python", "aiohttp"])
        family.add_metric([__version__, platform.python_version(), aiohttp.__version__], 1)
        yield family


# The files a live worker's gauges write to; `multiprocess.mark_process_dead` removes
# them when the supervisor reaps the worker.
_LIVE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def live_workers(directory: str) -> list[int]:
    """The pids of the workers writing samples to the multiprocess `directory`."""
    found = (_LIVE_FILE.fullmatch(name) for name in os.listdir(directory))
    return sorted({int(m.group(1)) for m in found if m})


class _Processes(Collector):
    def collect(self) -> Iterable[Metric]:
        directory = os.environ.get(MULTIPROC_ENV)
        if not directory:
            yield from ProcessCollector(registry=None).collect()
            return
        families: dict[str, Metric] = {}
        for pid in live_workers(directory):
            one = ProcessCollector(pid=functools.partial(int, pid), registry=None)
            for metric in one.collect():
                family = families.setdefault(
                    metric.name, Metric(metric.name, metric.documentation, metric.type))
                for sample in metric.samples:
                    family.add_sample(sample.name, {**sample.labels, "pid": str(pid)},
                                      sample.value)
        yield from families.values()


LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Observer(Protocol):
    def observe(self, amount: float) -> None: ...


class LoopHistogram(Collector):
    """A histogram observed from the event loop's thread only, in one process: plain
    counts, no lock, a binary search for the bucket (prometheus-client's `Histogram`
    takes a lock twice and walks the buckets on every observation, twice per request).
    Rendered as `Histogram` renders: `_bucket` (cumulative, `le`), `_count`, `_sum`."""

    def __init__(self, name: str, documentation: str, buckets: Iterable[float],
                 registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self._bounds = (*sorted(float(b) for b in buckets if b != math.inf), math.inf)
        self._les = tuple(floatToGoString(b) for b in self._bounds)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        registry.register(self)

    def observe(self, amount: float) -> None:
        self._counts[bisect_left(self._bounds, amount)] += 1    # the first bound >= amount
        self._sum += amount

    def collect(self) -> Iterable[HistogramMetricFamily]:
        yield HistogramMetricFamily(
            self.name, self.documentation, sum_value=self._sum,
            buckets=list(zip(self._les, map(float, accumulate(self._counts)))))


def latency_histogram(name: str, documentation: str, registry: CollectorRegistry) -> Observer:
    """A request-path histogram: `LoopHistogram`, or prometheus-client's own when the
    samples go to the workers' shared files (`enable_multiprocess`)."""
    if os.environ.get(MULTIPROC_ENV):
        return Histogram(name, documentation, registry=registry, buckets=LATENCY_BUCKETS)
    return LoopHistogram(name, documentation, LATENCY_BUCKETS, registry)


class Increment(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class LoopCounterChild:
    """One label set's count of a `LoopCounter`."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.value += amount


class LoopCounter(Collector):
    """A counter incremented from the event loop's thread only, in one process: a plain
    float per label set (prometheus-client's `Counter` takes a lock on every
    increment, on the request path once or twice a request). Rendered as `Counter`
    renders (`_total`; `_created` is off for every metric here)."""

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = (),
                 *, registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], LoopCounterChild] = {}
        self._own = None if self.labelnames else self.labels()
        registry.register(self)

    def labels(self, *values: str) -> LoopCounterChild:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}")
        key = tuple(map(str, values))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = LoopCounterChild()
        return child

    def inc(self, amount: float = 1) -> None:
        if self._own is None:
            raise ValueError(f"{self.name} has labels: count through labels()")
        self._own.inc(amount)

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, child in self._children.items():
            family.add_metric(list(key), child.value)
        yield family


def loop_counter(name: str, documentation: str, labelnames: Iterable[str] = (), *,
                 registry: CollectorRegistry) -> LoopCounter | Counter:
    """A request-path counter: `LoopCounter`, or prometheus-client's own when the
    samples go to the workers' shared files (`enable_multiprocess`)."""
    if os.environ.get(MULTIPROC_ENV):
        return Counter(name, documentation, labelnames, registry=registry)
    return LoopCounter(name, documentation, labelnames, registry=registry)


class Metrics:
    """The proxy's instruments; one instance per app."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.tallies = CollectorRegistry()    # read from components at scrape time
        self.published: list[_PublishedCounts | _PublishedGauge] = []   # with workers
        self.tallies.register(_BuildInfo())
        self.tallies.register(_Processes())
        # Counted on every request, from the event loop.
        self.requests = loop_counter(
            "edge_requests", "Responses sent to visitors, by status code.", ["code"], registry=r)
        # Observed on every request, from the event loop.
        self.request_seconds = latency_histogram(
            "edge_request_duration_seconds", "Whole requests: from the request head read to "
            "the response's last byte written.", r)
        self.upstream_seconds = latency_histogram(
            "edge_upstream_seconds", "Time to the upstream's response headers.", r)
        self.upstream_errors = Counter(
            "edge_upstream_errors", "Upstream failures, by kind.", ["kind"], registry=r)
        self.injections = loop_counter(
            "edge_injections", "HTML responses that received pixels.", registry=r)
        self.injections_skipped = Counter(
            "edge_injections_skipped", "HTML responses that were to receive pixels and did "
            "not, by reason: charset (not an encoding snippets can go into), undecodable "
            "(a corrupt compressed body), cut (the upstream broke off first).", ["reason"],
            registry=r)
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
        self.outbox_oldest = Gauge(
            "edge_outbox_oldest_seconds", "Age of the oldest conversion waiting in the outbox "
            "(0 when none waits).", registry=r, multiprocess_mode="livemax")
        self.rules_reload = Counter(
            "edge_rules_reload", "Rules file reloads, by result.", ["result"], registry=r)
        self.rules_fired = Counter(
            "edge_rules_fired", "Rule matches, by rule name.", ["rule"], registry=r)
        self.rule_json_skipped = Counter(
            "edge_rule_json_skipped", "JSON bodies a rule asked for but could not read "
            "(too_large, invalid, too_deep, not_json), by body (request, response).",
            ["body", "reason"], registry=r)

    def export_counts(self, name: str, doc: str, label: str,
                      counts: Callable[[], Mapping[str, int]]) -> None:
        """A counter family read from a component's own tally: at scrape time, or with
        workers, published to the shared files (`publish`) so a scrape adds up all."""
        if os.environ.get(MULTIPROC_ENV):
            self.published.append(_PublishedCounts(
                Counter(name, doc, [label], registry=self.registry), counts))
        else:
            self.tallies.register(_TallyCollector(name, doc, label, counts))

    def export_gauge(self, name: str, doc: str, value: Callable[[], float]) -> None:
        """A gauge read from a component: at scrape time, or with workers, published
        (the live workers' values summed; an exited worker's leaves with it)."""
        if os.environ.get(MULTIPROC_ENV):
            self.published.append(_PublishedGauge(
                Gauge(name, doc, registry=self.registry, multiprocess_mode="livesum"), value))
        else:
            self.tallies.register(_GaugeCollector(name, doc, value))

    def publish(self) -> None:
        """This worker's tallies into the shared files: every `PUBLISH_SECONDS` (a
        scrape may reach any worker), before a scrape this worker serves, and when it
        stops. Nothing to do without workers."""
        for tally in self.published:
            tally.publish()

    async def publishing(self) -> None:
        while True:
            await asyncio.sleep(PUBLISH_SECONDS)
            self.publish()

    def render(self) -> tuple[bytes, str]:
        if os.environ.get(MULTIPROC_ENV):
            self.publish()
            every = CollectorRegistry()
            multiprocess.MultiProcessCollector(every)
            body = generate_latest(every)
        else:
            body = generate_latest(self.registry)
        return body + generate_latest(self.tallies), CONTENT_TYPE_LATEST
