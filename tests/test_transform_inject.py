"""Head/body injection: chunking never changes the output, and an HTML5 parser
sees the original document plus exactly the inserted nodes, in the head."""

from __future__ import annotations

import html5lib
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from proxy.transform.inject import MAX_BODY_TAIL, Injector
from proxy.transform.locator import MAX_TOKEN, HeadLocator

HEAD = b'<script>/*edge*/</script><meta name="edge-marker" content="1">'
BODY = b"<script>/*edge-body*/</script>"


def run(doc: bytes, cuts: list[int] | None = None, head: bytes = HEAD, body: bytes = BODY,
        **kw) -> bytes:
    inj = Injector(head, body, **kw)
    points = sorted({c % (len(doc) + 1) for c in cuts or []})
    out, prev = [], 0
    for p in [*points, len(doc)]:
        out.append(inj.feed(doc[prev:p]))
        prev = p
    out.append(inj.finish())
    return b"".join(out)


# -- the HTML5 tree, as comparable values ---------------------------------------

def _node(n) -> tuple:
    if n.nodeType == n.TEXT_NODE:
        return ("#text", n.data)
    if n.nodeType == n.COMMENT_NODE:
        return ("#comment", n.data)
    if n.nodeType == n.DOCUMENT_TYPE_NODE:
        return ("#doctype", n.name)
    attrs = tuple(sorted((a.name, a.value) for a in n.attributes.values()))
    return (n.tagName, attrs, _children(n))


def _children(n) -> tuple:
    merged: list[tuple] = []
    for c in n.childNodes:
        t = _node(c)
        if t[0] == "#text" and merged and merged[-1][0] == "#text":
            merged[-1] = ("#text", merged[-1][1] + t[1])
        else:
            merged.append(t)
    return tuple(merged)


def tree(doc: bytes) -> tuple:
    text = doc.decode("utf-8-sig")
    dom = html5lib.parse(text, treebuilder="dom", namespaceHTMLElements=False, scripting=True)
    return _children(dom)


def _html(t: tuple) -> tuple:
    return next(n for n in t if n[0] == "html")


def _part(html_node: tuple, name: str) -> tuple:
    return next(n for n in html_node[2] if n[0] == name)


def _without(children: tuple, drop: set[tuple]) -> tuple:
    """The children with the dropped nodes removed at any depth, texts re-merged."""
    kept: list[tuple] = []
    for c in children:
        if c in drop:
            continue
        if c[0] not in ("#text", "#comment", "#doctype"):
            c = (c[0], c[1], _without(c[2], drop))
        if c[0] == "#text" and kept and kept[-1][0] == "#text":
            kept[-1] = ("#text", kept[-1][1] + c[1])
        else:
            kept.append(c)
    return tuple(kept)


def _contains(children: tuple, node: tuple) -> bool:
    return any(c == node or (c[0][0] != "#" and _contains(c[2], node)) for c in children)


HEAD_NODES = tree(b"<head>" + HEAD)
HEAD_NODES = _part(_html(HEAD_NODES), "head")[2]
BODY_NODE = _part(_html(tree(b"<body>" + BODY)), "body")[2][0]


def assert_injected(original: bytes, output: bytes) -> None:
    """The output's tree is the original's plus the head nodes, together in the
    head, and the body node in the body (unless the body holds only whitespace:
    then nothing before the snippet has started the body)."""
    before, after = tree(original), tree(output)
    assert _without(after, {*HEAD_NODES, BODY_NODE}) == before
    kids = _part(_html(after), "head")[2]
    i = kids.index(HEAD_NODES[0])
    assert kids[i:i + len(HEAD_NODES)] == HEAD_NODES, kids
    body = _part(_html(before), "body")[2]
    if any(c[0] != "#text" or c[1].strip() for c in body):
        assert _contains(_part(_html(after), "body")[2], BODY_NODE)


# -- generated documents ----------------------------------------------------------

def cased(name: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
        lambda bs: "".join(c.upper() if b else c for c, b in zip(name, bs)))


TRICKY = ["</head>", "</HEAD >", "<body>", "</body>", "<head>", "x", " ", "\n", "&amp;",
          "<div>", ">", "a=b", "'", '"', "<!--", "</", "<b>", "</titl", "</scrip"]
tricky = st.lists(st.sampled_from(TRICKY), max_size=6).map("".join)


def raw(end: str) -> st.SearchStrategy[str]:
    """Raw/RCDATA content that does not close its element early."""
    return tricky.filter(lambda s: f"</{end}" not in s.lower() and "<script" not in s.lower()
                         and "<!--" not in s)


comment_text = tricky.filter(lambda s: "--" not in s and not s.startswith((">", "->"))
                             and not s.endswith(("-", "<!-")))
attr_value = tricky.filter(lambda s: '"' not in s and "&" not in s)

head_item = st.one_of(
    st.builds(lambda t, s: f"<{t}>{s}</{t}>", cased("title"), raw("title")),
    st.builds(lambda t, s: f'<{t}>var a = "{s}";</{t}>', cased("script"),
              raw("script").filter(lambda s: '"' not in s and "\n" not in s)),
    st.builds(lambda t, s: f"<{t}>/* {s} */</{t}>", cased("style"), raw("style")),
    st.builds(lambda s: f"<!--{s}-->", comment_text),
    st.builds(lambda t, v: f'<{t} name="x" content="{v}">', cased("meta"), attr_value),
    st.builds(lambda v: f"<link rel=stylesheet href='{v}'>",
              attr_value.filter(lambda s: "'" not in s)),
    st.builds(lambda t: f"<{t}><link rel=x></{t}>", cased("noscript")),
    st.sampled_from([" ", "\n", "<base href=/>", "<meta charset=utf-8 />"]),
)
body_item = st.one_of(
    st.builds(lambda v, s: f'<div class="{v}">{s}</div>', attr_value,
              st.sampled_from(["hi", "a &gt; b", ""])),
    st.builds(lambda t, s: f"<{t}>{s}</{t}>", cased("textarea"), raw("textarea")),
    st.builds(lambda s: f"<!--{s}-->", comment_text),
    st.sampled_from(["text", " ", "\n", "<p>para", "<br>", "<img src=x alt='a>b'>"]),
)


@st.composite
def documents(draw) -> bytes:
    parts = [draw(st.sampled_from(["", "<!DOCTYPE html>", "<!doctype HTML>\n"]))]
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from(["<html>", "<HTML lang='en'>", "<html data-x='>'>\n"])))
    if draw(st.booleans()):
        parts.append(f"<{draw(cased('head'))}>")
    parts += draw(st.lists(head_item, max_size=6))
    if draw(st.booleans()):
        parts.append(f"</{draw(cased('head'))}>")
    parts.append(draw(st.sampled_from(["", "\n", "  "])))
    if draw(st.booleans()):
        parts.append(f"<{draw(cased('body'))} class=b>")
    parts += draw(st.lists(body_item, max_size=5))
    if draw(st.booleans()):
        parts.append(f"</{draw(cased('body'))}>")
    if draw(st.booleans()):
        parts.append("</html>")
    parts.append(draw(st.sampled_from(["", "\n"])))
    bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    return bom + "".join(parts).encode()


cuts = st.lists(st.integers(min_value=0, max_value=10_000), max_size=12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(), cuts)
def test_generated_documents_any_chunking(doc: bytes, points: list[int]) -> None:
    whole = run(doc)
    assert run(doc, points) == whole
    assert run(doc, list(range(len(doc)))) == whole          # one byte at a time
    assert_injected(doc, whole)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["<", ">", "/", "!", "-", "head", "HEAD", "body", "script",
                                 "title", "template", "?", "'", '"', "=", " ", "a", "\n",
                                 "[CDATA[", "]]>", "\xef\xbb\xbf", "\x00"]),
                max_size=40).map(lambda p: "".join(p).encode("latin-1")),
       cuts)
def test_tag_soup_chunking_is_invisible(doc: bytes, points: list[int]) -> None:
    out = run(doc, points)
    assert out == run(doc)
    assert out.count(HEAD) == 1 and out.count(BODY) == 1
    assert out.replace(HEAD, b"", 1).replace(BODY, b"", 1) == doc


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), cuts)
# EOF inside a comment or raw text: the bytes held for a possible end were dropped.
@example(b"<!--\x00", [])
@example(b"<!--abcdef", [3])
@example(b"<head><title>ab</tit", [])
@example(b"<script>abc</scr", [9])
def test_arbitrary_bytes(doc: bytes, points: list[int]) -> None:
    out = run(doc, points)
    assert out == run(doc)
    if not doc.startswith((b"\xff\xfe", b"\xfe\xff")):
        assert out.replace(HEAD, b"", 1).replace(BODY, b"", 1) == doc


# -- placements ------------------------------------------------------------------

def test_before_the_real_head_end_not_the_decoys() -> None:
    doc = (b"<!DOCTYPE html><html><head><title>a </head> b</title>"
           b"<script>var s = '</head>';</script><style>/* </head> */</style>"
           b"<!-- </head> --><meta content='</head>'><textarea></head></textarea>"
           b"</HeAd><body>x</body></html>")
    out = run(doc, body=b"")
    # <textarea> is not a head element: the head ends implicitly before it.
    assert out == doc.replace(b"<textarea>", HEAD + b"<textarea>")
    assert_injected(doc, run(doc))


def test_no_head_goes_before_body_after_doctype_and_html() -> None:
    doc = b"<!DOCTYPE html>\n<html lang=en>\n<body><p>hi</p></body></html>"
    assert run(doc, body=b"") == doc.replace(b"<body>", HEAD + b"<body>")
    assert_injected(doc, run(doc))


def test_no_head_no_body() -> None:
    doc = b"<!doctype html>Hello <b>world</b>"
    assert run(doc) == b"<!doctype html>" + HEAD + b"Hello <b>world</b>" + BODY
    assert run(b"") == HEAD + BODY
    assert run(b"<!DOCTYPE html>") == b"<!DOCTYPE html>" + HEAD + BODY


def test_bom_stays_first() -> None:
    doc = b"\xef\xbb\xbf<p>x"
    assert run(doc, [1, 2]).startswith(b"\xef\xbb\xbf" + HEAD)


def test_utf16_is_left_alone() -> None:
    doc = "<html><head></head></html>".encode("utf-16")
    assert run(doc, [1, 3]) == doc


def test_latin1_bytes_pass_untouched() -> None:
    doc = "<html><head><title>Café – Übersicht</title></head><body>é</body>".encode("latin-1",
                                                                                    "replace")
    out = run(doc, list(range(len(doc))))
    assert out == doc.replace(b"</head>", HEAD + b"</head>").replace(b"</body>", BODY + b"</body>")


def test_template_contents_do_not_end_the_head() -> None:
    doc = b"<head><template><div></head><body></div></template><meta x></head><body>"
    i = doc.rindex(b"</head>")
    assert run(doc, body=b"") == doc[:i] + HEAD + doc[i:]


def test_last_body_end_wins_and_scripts_comments_attributes_do_not_count() -> None:
    doc = (b"<body>a</body>b</body>\n<script>s='</body>'</script><!-- </body> -->"
           b"<p title='</body>'>x</p></html>")
    i = doc.index(b"</body>\n")
    assert run(doc, [20, 41], head=b"") == doc[:i] + BODY + doc[i:]


def test_body_tail_is_bounded() -> None:
    doc = b"<body>x</body>" + b"y" * (MAX_BODY_TAIL + 10)
    inj = Injector(HEAD, BODY)
    held = len(doc) - len(inj.feed(doc))
    assert held < 8
    assert (b"".join([b"", inj.finish()])).endswith(BODY)


def test_overlong_tag_does_not_hold_the_stream() -> None:
    loc = HeadLocator()
    out = loc.feed(b"<head><link href='" + b"a" * (MAX_TOKEN + 1))
    assert loc.found and out == b"<head>"


def test_passthrough_after_head_is_the_same_object() -> None:
    inj = Injector(HEAD)
    inj.feed(b"<head></head>")
    chunk = b"<body>" + b"x" * 1000
    assert inj.feed(chunk) is chunk


def test_only_the_undecided_token_is_held() -> None:
    inj = Injector(HEAD)
    assert inj.feed(b"<html><head><title>t</title><met") == b"<html><head><title>t</title>"
    assert inj.feed(b"a charset=x></he") == b"<meta charset=x>"
    assert inj.feed(b"ad>") == HEAD + b"</head>"


def test_meta_hook_rewrites_only_head_metas() -> None:
    seen = []

    def hook(tag: bytes) -> bytes | None:
        seen.append(tag)
        return b"<meta new>" if b"csp" in tag else None

    doc = b"<head><meta a><META b='csp'></head><body><meta c='csp'>"
    out = run(doc, [9, 20], body=b"", meta_hook=hook)
    assert out == b"<head><meta a><meta new>" + HEAD + b"</head><body><meta c='csp'>"
    assert seen == [b"<meta a>", b"<META b='csp'>"]
