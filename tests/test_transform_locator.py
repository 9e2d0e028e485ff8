"""The head locator's one-regex tag reading agrees with its state table, byte for byte."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.transform.inject import Injector
from proxy.transform.locator import EMIT, TAG_NAME, TAG_TABLE, HeadLocator

ATOMS = [" ", "\n", "/", "=", '"', "'", ">", "a", "B", "<", "-", "x=y", 'v="a>b"', "v='>'",
         "v=>", "==", '"x"', "/>", "\t"]


def table_end(tag: bytes) -> int | None:
    """Where `TAG_TABLE`, stepped from after `<`, consumes the tag's `>` (None: never)."""
    state, pos = TAG_NAME, 1
    while pos < len(tag):
        run, on, default = TAG_TABLE[state]
        m = run.match(tag, pos)
        pos = m.end() if m else pos
        if pos >= len(tag):
            return None
        state, consume = on.get(tag[pos], default)
        pos += consume
        if state == EMIT:
            return pos
    return None


def feed(doc: bytes, step: int | None) -> bytes:
    loc = HeadLocator()
    pieces = [doc] if step is None else [doc[i:i + step] for i in range(0, len(doc), step)]
    out = b"".join(loc.feed(p) for p in pieces) + loc.finish()
    return out


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["meta", "link", "Title", "p", "x"]),
       st.lists(st.sampled_from(ATOMS), max_size=14).map("".join))
def test_whole_tag_regex_ends_where_the_table_does(name: str, attrs: str) -> None:
    tag = f"<{name} {attrs}".encode()
    doc = b"<head>" + tag + b"<p>after"
    end = table_end(doc[6:])
    out = feed(doc, None)
    # Fed whole, complete tags take the regex; fed a byte at a time, the table.
    assert out == feed(doc, 1) == feed(doc, 2)
    if end is None:                     # never closed (a quote left open): dropped at EOF
        assert out == b"<head>"
    elif name in ("meta", "link"):      # stays in the head: the point is past its `>`
        assert len(out) >= 6 + end
    elif name in ("p", "x"):            # starts the body: the point is before it
        assert out == b"<head>"


def test_quoted_gt_and_odd_equals_do_not_end_a_tag_early() -> None:
    for tag in [b'<meta content="a>b">', b"<meta content='>'>", b'<meta a = "x>" / >',
                b'<link a="1"b=">">', b"<meta a='1'/b='>'>"]:
        doc = b"<head>" + tag + b"<p>x"
        inj = Injector(b"<S>")
        assert inj.feed(doc) + inj.finish() == doc.replace(b"<p>", b"<S><p>"), tag
        assert table_end(tag) == len(tag)
    # ...but a quote that does not open a value is an ordinary byte.
    for tag, end in [(b'<meta a=="x>', 12), (b'<meta ="x>', 10)]:
        doc = b"<head>" + tag + b'">'
        inj = Injector(b"<S>")
        assert inj.feed(doc) + inj.finish() == doc[:6 + end] + b"<S>" + doc[6 + end:], tag
        assert table_end(tag) == end


def test_raw_text_end_tag_with_attributes() -> None:
    doc = b'<head><script>a="</scrip";</script data-x=">"><title>t</title foo></head><body>'
    for step in (None, 1, 3):
        assert feed(doc, step) == doc[:doc.index(b"</head>")]


def test_meta_marker_limits_the_hook_to_the_metas_that_may_need_it() -> None:
    marker = re.compile(rb"(?i)csp")

    def run(doc: bytes, step: int) -> tuple[bytes, list[bytes]]:
        seen: list[bytes] = []

        def hook(tag: bytes) -> bytes | None:
            seen.append(tag)
            return b"<meta new>" if b"csp" in tag.lower() else None
        inj = Injector(b"<S>", b"", hook, marker)
        out = b"".join(inj.feed(doc[i:i + step]) for i in range(0, len(doc), step))
        return out + inj.finish(), seen

    doc = b"<head><meta a><meta b='CSP'><meta c></head>"
    for step in (len(doc), 1, 7):
        out, seen = run(doc, step)
        assert out == b"<head><meta a><meta new><meta c><S></head>"
        assert b"<meta b='CSP'>" in seen
    out, seen = run(b"<head><meta a><meta c></head>", 100)
    assert out == b"<head><meta a><meta c><S></head>" and seen == []
