"""Injector throughput against the naive `bytes.replace` nginx-sub_filter-style baseline.

Run: python benchmarks/bench_inject.py [--size-kb 100] [--chunk-kb 16] [--seconds 1]

Prints MB/s of decoded HTML for: the baseline (whole body in memory, one
`replace`), `Injector` alone, and `HtmlTransform` (identity, and gzip:
decode + inject + re-encode, with and without link rewriting), all in one run so
the ratios are comparable on a noisy machine.
"""

from __future__ import annotations

import argparse
import gzip
import time
from collections.abc import Callable

from proxy.transform.html import HtmlTransform
from proxy.transform.inject import Injector

SNIPPET = b"<script>!function(){/* pixel base code */}();</script>"
REWRITE = (b"https://ats.example", b"https://careers.acme.example")


def make_page(size: int) -> bytes:
    head = (b"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Jobs</title>"
            b"<link rel=stylesheet href='https://ats.example/app.css'>"
            b"<script>window.cfg={api:'https://ats.example/api'}</script>"
            + b"<style>.job{margin:0}</style>" * 20 + b"</head><body>")
    row = (b"<div class=job><a href=\"https://ats.example/jobs/1234\">Senior Engineer</a>"
           b"<span class=loc>Berlin</span><p>Build things with people who care.</p></div>\n")
    return head + row * ((size - len(head)) // len(row)) + b"</body></html>"


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def rate(fn: Callable[[], object], nbytes: int, seconds: float) -> float:
    fn()
    runs, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        runs += 1
    return nbytes * runs / elapsed / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-kb", type=int, default=100)
    ap.add_argument("--chunk-kb", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=1.0)
    a = ap.parse_args()
    page = make_page(a.size_kb * 1024)
    plain = chunks(page, a.chunk_kb * 1024)
    gz = chunks(gzip.compress(page), a.chunk_kb * 1024)

    def baseline() -> bytes:
        return b"".join(plain).replace(b"</head>", SNIPPET + b"</head>")

    def baseline_gzip() -> bytes:
        body = gzip.decompress(b"".join(gz)).replace(b"</head>", SNIPPET + b"</head>")
        return gzip.compress(body, 6)

    def injector() -> None:
        inj = Injector(SNIPPET)
        for c in plain:
            inj.feed(c)
        inj.finish()

    def transform(coding: str, data: list[bytes], rewrite: bool, body: bytes = b"") -> Callable:
        def run() -> None:
            t = HtmlTransform(coding, SNIPPET, body, rewrite=REWRITE if rewrite else None)
            for c in data:
                t.feed(c)
            t.finish()
        return run

    rows = [
        ("baseline bytes.replace", "identity", baseline),
        ("Injector", "identity", injector),
        ("HtmlTransform", "identity", transform("identity", plain, False)),
        ("HtmlTransform + body snippet", "identity", transform("identity", plain, False, SNIPPET)),
        ("HtmlTransform + links", "identity", transform("identity", plain, True)),
        ("baseline decompress+replace+compress", "gzip", baseline_gzip),
        ("HtmlTransform", "gzip", transform("gzip", gz, False)),
        ("HtmlTransform + links", "gzip", transform("gzip", gz, True)),
    ]
    print(f"page {len(page) / 1024:.0f} KiB in {len(plain)} chunks of {a.chunk_kb} KiB")
    print(f"{'variant':40} {'coding':9} {'MB/s':>9}")
    for name, coding, fn in rows:
        print(f"{name:40} {coding:9} {rate(fn, len(page), a.seconds):9.1f}")


if __name__ == "__main__":
    main()
