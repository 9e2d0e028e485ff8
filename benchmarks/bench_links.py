"""Link rewriting per page, in microseconds: the main upstream only, and with
`[[routes]]` (none of their URLs on the page; one iframe naming a route).

The demo's job page (17 absolute links naming the upstream origin), fed in 4 KiB
chunks as a streamed response arrives. Best of 7 rounds; compare lines within one
run (and the first line across checkouts: `PYTHONPATH=<other checkout>`).

    python benchmarks/bench_links.py
"""

from __future__ import annotations

import inspect
import timeit

from proxy.demo.jobs import job_by_id
from proxy.demo.pages import job_page
from proxy.transform.links import LinkRewriter

ORIGIN = b"http://127.0.0.1:8081"
PUBLIC = b"https://careers.acme.example"
ROUTES = ((b"https://boards.greenhouse.io/embed/", b"/apply/"),
          (b"https://forms.example/v2/", b"/forms/"))
CHUNK = 4096


def page(iframe: bool) -> bytes:
    doc = job_page(ORIGIN.decode(), job_by_id("1"), "n0nce").encode()
    if iframe:
        doc = doc.replace(b"</body>", b'<iframe src="https://boards.greenhouse.io/embed/'
                                      b'job_app?for=acme&amp;token=1"></iframe></body>')
    return doc


def run(doc: bytes, routes: tuple = ()) -> bytes:
    r = LinkRewriter(ORIGIN, PUBLIC, routes) if routes else LinkRewriter(ORIGIN, PUBLIC)
    out = [r.feed(doc[i:i + CHUNK]) for i in range(0, len(doc), CHUNK)]
    out.append(r.finish())
    return b"".join(out)


def timed(name: str, fn, number: int = 2000) -> None:
    best = min(timeit.repeat(fn, number=number, repeat=7)) / number
    print(f"{name:<44}{best * 1e6:8.1f} µs")


def main() -> None:
    plain, framed = page(False), page(True)
    print(f"page: {len(plain)} bytes, {plain.count(ORIGIN)} upstream links")
    timed("main upstream only", lambda: run(plain))
    if "routes" not in inspect.signature(LinkRewriter).parameters:
        return                       # a checkout without [[routes]]
    timed("+ 2 routes, none on the page", lambda: run(plain, ROUTES))
    timed("+ 2 routes, an iframe naming one", lambda: run(framed, ROUTES))
    assert b"/apply/job_app" in run(framed, ROUTES)


if __name__ == "__main__":
    main()
