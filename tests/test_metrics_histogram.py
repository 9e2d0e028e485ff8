"""The request path's latency histograms and counters: without workers, a lock-free
`LoopHistogram` and `LoopCounter` that must render exactly what prometheus-client's
`Histogram` and `Counter` render for the same observations; with workers,
prometheus-client's own (samples in the shared files)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from proxy.metrics import (
    LATENCY_BUCKETS,
    MULTIPROC_ENV,
    LoopCounter,
    LoopHistogram,
    Metrics,
    latency_histogram,
    loop_counter,
)

AMOUNTS = st.lists(st.one_of(
    st.sampled_from([0.0, *LATENCY_BUCKETS]),                 # exactly on a bound
    st.floats(min_value=0, max_value=100, allow_nan=False)), max_size=60)


@settings(max_examples=200)
@given(AMOUNTS)
def test_renders_what_prometheus_histogram_renders(amounts: list[float]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopHistogram("edge_x_seconds", "Some latency.", LATENCY_BUCKETS, ours)
    reference = Histogram("edge_x_seconds", "Some latency.", registry=theirs,
                          buckets=LATENCY_BUCKETS)
    for amount in amounts:
        loop.observe(amount)
        reference.observe(amount)
    assert generate_latest(ours) == generate_latest(theirs)


def test_a_metrics_scrape_counts_requests_in_the_histograms() -> None:
    m = Metrics()
    for seconds in (0.001, 0.02, 0.02, 7.0):
        m.request_seconds.observe(seconds)
    m.upstream_seconds.observe(0.003)
    text = m.render()[0].decode()
    assert 'edge_request_duration_seconds_bucket{le="0.005"} 1.0' in text
    assert 'edge_request_duration_seconds_bucket{le="0.025"} 3.0' in text
    assert 'edge_request_duration_seconds_bucket{le="+Inf"} 4.0' in text
    assert "edge_request_duration_seconds_count 4.0" in text
    assert "edge_request_duration_seconds_sum 7.041" in text
    assert "edge_upstream_seconds_count 1.0" in text


def test_with_workers_the_shared_files_histogram_is_used(
        monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    assert isinstance(latency_histogram("edge_y_seconds", "y", CollectorRegistry()), Histogram)
    monkeypatch.delenv(MULTIPROC_ENV)
    assert isinstance(latency_histogram("edge_y_seconds", "y", CollectorRegistry()),
                      LoopHistogram)


INCREMENTS = st.lists(st.tuples(st.sampled_from(["200", "404", "502", 'a"b\\c\n']),
                                st.one_of(st.just(1.0), st.floats(0, 1e6))), max_size=40)


@settings(max_examples=200)
@given(INCREMENTS)
def test_a_loop_counter_renders_what_prometheus_counter_renders(
        increments: list[tuple[str, float]]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopCounter("edge_x", "Some count.", ["code"], registry=ours)
    reference = Counter("edge_x", "Some count.", ["code"], registry=theirs)
    plain = LoopCounter("edge_y", "No labels.", registry=ours)
    plain_reference = Counter("edge_y", "No labels.", registry=theirs)
    for code, amount in increments:
        loop.labels(code).inc(amount)
        reference.labels(code).inc(amount)
        plain.inc(amount)
        plain_reference.inc(amount)
    assert generate_latest(ours) == generate_latest(theirs)


def test_a_loop_counter_refuses_what_counter_refuses() -> None:
    counter = LoopCounter("edge_z", "z", ["code"], registry=CollectorRegistry())
    with pytest.raises(ValueError):
        counter.labels("200").inc(-1)
    with pytest.raises(ValueError):
        counter.labels("200", "extra")
    with pytest.raises(ValueError):
        counter.inc()                   # labelled: through labels() only


def test_with_workers_the_shared_files_counter_is_used(
        monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    assert isinstance(loop_counter("edge_c", "c", registry=CollectorRegistry()), Counter)
    monkeypatch.delenv(MULTIPROC_ENV)
    assert isinstance(loop_counter("edge_c", "c", registry=CollectorRegistry()), LoopCounter)
