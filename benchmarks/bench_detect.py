"""Cost of detection on the request path: candidates(), classify(), form sniffing.

    python benchmarks/bench_detect.py

Prints microseconds per call. `candidates` on a page no rule matches is the number
that matters most: every proxied request pays it.
"""

from __future__ import annotations

import timeit

from proxy.config.model import frozen_map
from proxy.detect.forms import FormSniffer
from proxy.detect.patterns import PathPattern
from proxy.detect.rules import RequestFacts, ResponseFacts, RuleSet
from proxy.detect.spec import Extractor, Rule, StatusMatch


def make_rules(n_extra: int) -> list[Rule]:
    rules = [
        Rule("apply viewed", "ConversationStart", PathPattern.compile("/jobs/{job_id}/apply"),
             method="GET", status=(StatusMatch(200, 200),),
             job_name=Extractor("css", "h1", "css:h1")),
        Rule("submitted", "ApplicationCompleted", PathPattern.compile("/jobs/{job_id}/apply"),
             method="POST", status=(StatusMatch(300, 399),),
             location=PathPattern.compile("/jobs/*/thanks*", allow_query=True),
             job_name=Extractor("form", "job_title", "form:job_title")),
    ]
    for i in range(n_extra):
        rules.append(Rule(f"extra {i}", "Lead", PathPattern.compile(f"/campaign{i}/**"),
                          extract=frozen_map({"src": Extractor("query", "src", "query:src")})))
    return rules


def per_call_us(fn, number: int) -> float:  # type: ignore[no-untyped-def]
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


PAGE = (b"<html><head><title>Apply</title></head><body>" + b"<p>filler</p>" * 2000
        + b"<h1>Forklift Driver</h1></body></html>")


def bench_rules(n_extra: int) -> None:
    rs = RuleSet.compile(make_rules(n_extra))
    assert not rs.candidates("GET", "/about/team")
    hit = rs.candidates("POST", "/jobs/3/apply")
    req = RequestFacts("POST", "/jobs/3/apply", "", {"job_title": "Driver"})
    resp = ResponseFacts(302, {}, "https://careers.acme.example/jobs/3/thanks?x=1")
    get = rs.candidates("GET", "/jobs/3/apply")
    greq, gresp = RequestFacts("GET", "/jobs/3/apply"), ResponseFacts(200)
    rows = [
        ("candidates, no match", lambda: rs.candidates("GET", "/about/team"), 100_000),
        ("candidates, job page", lambda: rs.candidates("GET", "/jobs/3"), 100_000),
        ("classify redirect", lambda: hit.classify(req, resp, None), 20_000),
        (f"classify css, {len(PAGE) // 1024} KiB", lambda: get.classify(greq, gresp, PAGE), 200),
    ]
    print(f"{len(rs.rules)} rules")
    for label, fn, number in rows:
        print(f"  {label:<28}{per_call_us(fn, number):9.2f} us")


def main() -> None:
    for n_extra in (0, 20):
        bench_rules(n_extra)

    body = (b'--b\r\nContent-Disposition: form-data; name="job_title"\r\n\r\nDriver\r\n'
            b'--b\r\nContent-Disposition: form-data; name="cv"; filename="cv.pdf"\r\n\r\n')
    chunk = b"A" * 65536

    def sniff_10_mib() -> None:
        s = FormSniffer("multipart/form-data; boundary=b", frozenset({"job_title", "job_id"}))
        s.feed(body)
        for _ in range(160):
            s.feed(chunk)

    print(f"multipart sniff, 10 MiB file {per_call_us(sniff_10_mib, 3) / 1000:9.2f} ms")


if __name__ == "__main__":
    main()
