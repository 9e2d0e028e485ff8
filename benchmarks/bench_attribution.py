"""Per-request cost of the attribution stage (`Attribution.on_request`), in µs.

    python benchmarks/bench_attribution.py [--n 20000]

Cases: a repeat visitor (all cookies present, no click id), a landing with an
fbclid (new visitor: id, signed cookie, _fbc and _fbp minted), a landing with a
tlr_sid, and a cookieless hit without click ids. Best of 5 runs.
"""

from __future__ import annotations

import argparse
import timeit

from proxy.attribution.visit import Attribution
from proxy.config.model import AttributionSection, ConsentSection

HOST = "careers.acme.example"
UUID = "123e4567-e89b-12d3-a456-426614174000"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    n = parser.parse_args().n
    a = Attribution(AttributionSection(), ConsentSection(), b"k" * 32)

    def hit(query: str, cookie: str | None):
        return a.on_request(raw_query=query, cookie_header=cookie, host=HOST, secure=True,
                            gpc=False, referer=f"https://{HOST}/jobs")

    first = hit(f"utm_source=fb&fbclid=IwAR0abcDEF_ghi-123&tlr_sid={UUID}", None)
    jar = "; ".join(h.partition(";")[0] for h in first.set_cookies)
    jar += "; _ga=GA1.2.123.456; cookie_consent=all"
    cases = {
        "repeat visitor (cookies, no click id)": ("page=2&q=nurse", jar),
        "landing with fbclid (new visitor)": ("utm_source=fb&fbclid=IwAR0abcDEF_ghi-123", None),
        "landing with tlr_sid (new visitor)": (f"tlr_sid={UUID}&utm=x", None),
        "cookieless hit, no click id": ("", None),
    }
    for name, (query, cookie) in cases.items():
        def run(query: str = query, cookie: str | None = cookie) -> None:
            hit(query, cookie)
        best = min(timeit.repeat(run, number=n, repeat=5)) / n
        print(f"{name:40s} {best * 1e6:7.1f} µs")


if __name__ == "__main__":
    main()
