"""FormSniffer: small fields out of streamed urlencoded and multipart bodies."""

from __future__ import annotations

import io
import tracemalloc
from itertools import pairwise
from urllib.parse import quote_plus, urlencode

import aiohttp
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.detect.forms import MAX_PART_HEADER_BYTES, FormSniffer

URLENC = "application/x-www-form-urlencoded"
WANTED = frozenset({"job_title", "job_id", "email"})


def sniff(content_type: str | None, body: bytes, cuts: list[int] | None = None,
          wanted: frozenset[str] = WANTED, **kw: int) -> dict[str, str]:
    sniffer = FormSniffer(content_type, wanted, **kw)
    for piece in split(body, cuts or []):
        sniffer.feed(piece)
    return sniffer.fields


def split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(max(c, 0), len(body)) for c in cuts})
    edges = [0, *points, len(body)]
    return [body[a:b] for a, b in pairwise(edges)]


def multipart(parts: list[tuple[str, bytes, str | None]], boundary: str = "XyZ123boundary",
              preamble: bytes = b"") -> bytes:
    b = boundary.encode()
    out = [preamble]
    for name, value, filename in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None
                                               else "")
        out.append(b"--" + b + b"\r\nContent-Disposition: " + disp.encode() + b"\r\n")
        if filename is not None:
            out.append(b"Content-Type: application/octet-stream\r\n")
        out.append(b"\r\n" + value + b"\r\n")
    out.append(b"--" + b + b"--\r\n")
    return b"".join(out)


def mp_type(boundary: str = "XyZ123boundary") -> str:
    return f"multipart/form-data; boundary={boundary}"


# --- urlencoded ----------------------------------------------------------------


def test_urlencoded_basics() -> None:
    body = b"x=1&job_title=Forklift+Driver+%28CE%29&job_id=42&job_title=second&email=a%40b.example"
    assert sniff(URLENC + "; charset=UTF-8", body) == {
        "job_title": "Forklift Driver (CE)", "job_id": "42", "email": "a@b.example"}


def test_urlencoded_odd_pairs() -> None:
    body = b"job_id&=x&%6Aob_title=encoded+name&email=&&job_id=7"
    assert sniff(URLENC, body) == {"job_title": "encoded name", "email": "", "job_id": "7"}


def test_urlencoded_last_field_ends_with_the_body() -> None:
    sniffer = FormSniffer(URLENC, WANTED)
    sniffer.feed(b"a=1&job_id=4")
    assert sniffer.fields == {"job_id": "4"}
    sniffer.feed(b"2&email=x")
    assert sniffer.fields == {"job_id": "42", "email": "x"}


def test_urlencoded_caps() -> None:
    body = ("job_title=" + "\u00e9" * 100 + "&" + "j" * 10_000 + "=1&job_id=" + "9" * 50).encode()
    got = sniff(URLENC, body, max_field_bytes=11)
    assert got == {"job_title": "\u00e9" * 5, "job_id": "9" * 11}  # never half a character
    assert sniff(URLENC, b"job_title=abcdef&job_id=123456", max_total=8) == {
        "job_title": "abcdef", "job_id": "12"}


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["job_title", "job_id", "email", "other", "j"]),
                       st.text(max_size=40)), max_size=8),
    st.lists(st.integers(0, 2000), max_size=12),
)
def test_urlencoded_any_chunking(pairs: list[tuple[str, str]], cuts: list[int]) -> None:
    body = urlencode(pairs, quote_via=quote_plus).encode()
    expected: dict[str, str] = {}
    for name, value in pairs:
        if name in WANTED:
            expected.setdefault(name, value)
    assert sniff(URLENC, body) == expected
    assert sniff(URLENC, body, cuts) == expected
    assert sniff(URLENC, body, list(range(len(body)))) == expected   # byte by byte


# --- multipart -------------------------------------------------------------------


def test_multipart_skips_files_and_keeps_small_text_fields() -> None:
    body = multipart([
        ("job_title", "Pfleger (m/w/d) \u2013 Nacht".encode(), None),
        ("resume", b"%PDF-1.7 \x00\xff binary\r\n--not-the-boundary", "cv.pdf"),
        ("email", b"a@b.example", ""),          # an empty file input is still a file
        ("job_title", b"second", None),
        ("job_id", b"42", None),
    ], preamble=b"ignored preamble\r\n")
    assert sniff(mp_type(), body) == {"job_title": "Pfleger (m/w/d) \u2013 Nacht", "job_id": "42"}


def test_multipart_header_variants() -> None:
    body = (b"--b0\r\ncontent-disposition:form-data;name=job_id\r\nX-Other: y\r\n\r\n7\r\n"
            b"--b0  \t\r\nContent-Type: text/plain\r\n"
            b"Content-Disposition: form-data; name=\"job_title\"; foo=\"a;b\"\r\n\r\nT\r\n"
            b"--b0\r\n\r\nheaderless part\r\n"
            b"--b0\r\nContent-Disposition: form-data; name=\"email\"; filename*=UTF-8''x\r\n\r\n"
            b"file\r\n--b0--")
    assert sniff('Multipart/Form-Data; charset=utf-8; boundary="b0"', body) == {
        "job_id": "7", "job_title": "T"}


def test_multipart_caps_and_stops_when_done() -> None:
    body = multipart([("job_title", "\u00e9".encode() * 100, None), ("job_id", b"1" * 50, None)])
    assert sniff(mp_type(), body, max_field_bytes=11) == {
        "job_title": "\u00e9" * 5, "job_id": "1" * 11}
    sniffer = FormSniffer(mp_type(), frozenset({"job_id"}))
    sniffer.feed(multipart([("job_id", b"5", None), ("resume", b"x" * 1000, "cv.pdf")]))
    assert sniffer.fields == {"job_id": "5"} and not sniffer.active


boundaries = st.text("abcdefghijklmnopqrstuvwxyz0123456789'()+_,-./:=?", min_size=8,
                     max_size=70).filter(lambda b: not b.endswith(" "))
part_values = st.one_of(st.text(max_size=60).map(str.encode), st.binary(max_size=300))


@settings(max_examples=150, deadline=None)
@given(
    boundaries,
    st.lists(st.tuples(st.sampled_from(["job_title", "job_id", "email", "other", "resume"]),
                       part_values, st.sampled_from([None, None, "cv.pdf"])), max_size=6),
    st.lists(st.integers(0, 3000), max_size=15),
)
def test_multipart_any_chunking(boundary: str, parts: list[tuple[str, bytes, str | None]],
                                cuts: list[int]) -> None:
    delim = b"--" + boundary.encode()
    parts = [(n, v, f) for n, v, f in parts if delim not in v]
    body = multipart(parts, boundary)
    expected: dict[str, str] = {}
    for name, value, filename in parts:
        if filename is None and name in WANTED:
            expected.setdefault(name, value.decode("utf-8", "replace"))
    whole = sniff(mp_type(f'"{boundary}"'), body)
    assert whole == expected
    assert sniff(mp_type(f'"{boundary}"'), body, cuts) == whole
    assert sniff(mp_type(f'"{boundary}"'), body, list(range(0, len(body), 3))) == whole


def test_a_50_mb_file_part_streams_with_bounded_memory() -> None:
    chunk = b"A" * 65536
    head = multipart([("job_title", b"Driver", None)])[: -len(b"--XyZ123boundary--\r\n")]
    head += b'--XyZ123boundary\r\nContent-Disposition: form-data; name="resume"; ' \
            b'filename="cv.pdf"\r\n\r\n'
    tail = b'\r\n--XyZ123boundary\r\nContent-Disposition: form-data; name="job_id"\r\n\r\n' \
           b"77\r\n--XyZ123boundary--\r\n"
    sniffer = FormSniffer(mp_type(), WANTED)
    tracemalloc.start()
    try:
        sniffer.feed(head)
        for _ in range(50 * 16):                     # 50 MiB
            sniffer.feed(chunk)
        sniffer.feed(tail)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sniffer.fields == {"job_title": "Driver", "job_id": "77"}
    assert peak < 4 * len(chunk)


# --- hostile and unsupported input ---------------------------------------------------


def test_unsupported_or_unwanted_is_inactive() -> None:
    for ctype in (None, "", "application/json", "multipart/form-data",
                  "multipart/form-data; boundary=", "multipart/form-data; boundary=" + "b" * 300,
                  "text/plain; boundary=x"):
        sniffer = FormSniffer(ctype, WANTED)
        sniffer.feed(b"job_id=1&--x\r\n")
        assert not sniffer.active and sniffer.fields == {}
    assert sniff(URLENC, b"job_id=1", wanted=frozenset()) == {}


def test_boundary_never_closes() -> None:
    body = multipart([("job_id", b"1", None)])[: -len(b"--XyZ123boundary--\r\n")]
    body += b'--XyZ123boundary\r\nContent-Disposition: form-data; name="job_title"\r\n\r\n'
    body += b"x" * 100_000
    assert sniff(mp_type(), body, list(range(0, len(body), 4096))) == {"job_id": "1"}


def test_huge_part_headers_stop_sniffing() -> None:
    body = (b'--XyZ123boundary\r\nContent-Disposition: form-data; name="job_id"\r\n\r\n1\r\n'
            b"--XyZ123boundary\r\nX-Junk: " + b"j" * (MAX_PART_HEADER_BYTES * 4) + b"\r\n\r\n"
            b'v\r\n--XyZ123boundary\r\nContent-Disposition: form-data; name="email"\r\n\r\n'
            b"e\r\n--XyZ123boundary--\r\n")
    for cuts in ([], list(range(0, len(body), 1000))):
        sniffer = FormSniffer(mp_type(), WANTED)
        for piece in split(body, cuts):
            sniffer.feed(piece)
        assert sniffer.fields == {"job_id": "1"} and not sniffer.active


def test_garbage_after_a_boundary_and_bare_newlines() -> None:
    body = b"--XyZ123boundaryGARBAGE\r\n\r\nv\r\n--XyZ123boundary--"
    assert sniff(mp_type(), body) == {}
    lf_only = multipart([("job_id", b"1", None)]).replace(b"\r\n", b"\n")
    assert sniff(mp_type(), lf_only) == {}


def test_feed_leaves_the_chunk_alone() -> None:
    chunk = bytearray(multipart([("job_id", b"1", None)]))
    before = bytes(chunk)
    sniffer = FormSniffer(mp_type(), WANTED)
    sniffer.feed(chunk)  # type: ignore[arg-type]
    assert chunk == before and sniffer.fields == {"job_id": "1"}


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=10),
       st.sampled_from([URLENC, mp_type("b"), mp_type("XyZ123boundary")]))
def test_hostile_bytes_never_raise(body: bytes, cuts: list[int], ctype: str) -> None:
    prefixed = b"--b\r\nContent-Disposition: form-data; name=job_id\r\n\r\n" + body
    for data in (body, prefixed):
        fields = sniff(ctype, data, cuts, max_field_bytes=64)
        assert set(fields) <= WANTED
        assert all(len(v.encode()) <= 64 * 3 for v in fields.values())


# --- over a real socket, as aiohttp's client sends them -----------------------------


async def test_real_client_bodies(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    async def echo_fields(request: web.Request) -> web.Response:
        sniffer = FormSniffer(request.headers.get("Content-Type"), WANTED)
        size = 0
        async for chunk in request.content.iter_any():
            sniffer.feed(chunk)
            size += len(chunk)
        return web.json_response({"fields": sniffer.fields, "size": size})

    app = web.Application()
    app.router.add_post("/apply", echo_fields)
    client = await aiohttp_client(app)

    form = aiohttp.FormData()
    form.add_field("job_title", "Lagerhelfer (m/w/d) \u2013 Fr\u00fchschicht")
    form.add_field("resume", io.BytesIO(b"%PDF" + b"\x00\r\n-" * 700_000),
                   filename="lebenslauf.pdf", content_type="application/pdf")
    form.add_field("email", "bewerber@example.de")
    resp = await client.post("/apply", data=form)
    got = await resp.json()
    assert got["fields"] == {"job_title": "Lagerhelfer (m/w/d) \u2013 Fr\u00fchschicht",
                             "email": "bewerber@example.de"}
    assert got["size"] > 2_800_000

    resp = await client.post("/apply", data={"job_id": "12", "job_title": "A & B = C"})
    assert (await resp.json())["fields"] == {"job_id": "12", "job_title": "A & B = C"}


def part_with_headers_of(size: int) -> bytes:
    disposition = b'Content-Disposition: form-data; name="job_id"\r\nX-Pad: '
    head = disposition + b"p" * (size - len(disposition))
    return b"--XyZ123boundary\r\n" + head + b"\r\n\r\n42\r\n--XyZ123boundary--\r\n"


def test_part_header_limit_is_the_same_however_the_body_is_cut() -> None:
    at_limit = part_with_headers_of(MAX_PART_HEADER_BYTES)
    over = part_with_headers_of(MAX_PART_HEADER_BYTES + 1)
    start = len(b"--XyZ123boundary\r\n") + MAX_PART_HEADER_BYTES - 4
    for cut in range(start, start + 12):
        assert sniff(mp_type(), at_limit, [cut]) == {"job_id": "42"}
        assert sniff(mp_type(), over, [cut]) == {}
