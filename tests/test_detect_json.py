"""JSON detection, pure: JMESPath expressions, the bounded body copy, conditions, extractors."""

from __future__ import annotations

import gzip
import json
import zlib

import brotli
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.detect.extractors import Facts, Page, compile_extractor
from proxy.detect.json_body import JsonCollector
from proxy.detect.jsonexpr import (
    INVALID,
    NOT_JSON,
    TOO_DEEP,
    TOO_LARGE,
    JsonDoc,
    JsonExpr,
    JsonExprError,
    as_text,
    is_json_type,
)
from proxy.detect.matchers import compile_json
from proxy.detect.patterns import PathPattern
from proxy.detect.rules import RequestFacts, ResponseFacts, RuleSet
from proxy.detect.spec import Extractor, Rule

# --- expressions ----------------------------------------------------------------


@pytest.mark.parametrize(("expr", "doc", "text"), [
    ("a.b", {"a": {"b": "x"}}, "x"),
    ("a.b", {"a": {"b": True}}, "true"),
    ("a.b", {"a": {"b": None}}, "null"),
    ("missing", {"a": 1}, "null"),
    ("a", {"a": [1, 2]}, "[1,2]"),
    ("a", {"a": {"k": "v"}}, '{"k":"v"}'),
    ("a", {"a": 12.5}, "12.5"),
    ("length(a)", {"a": [1, 2, 3]}, "3"),
    ("errors[0].message", {"errors": [{"message": "Nope"}]}, "Nope"),
    ("data.*.x | [0]", {"data": {"q": {"x": "y"}}}, "y"),
    ("a", {"a": "é ✓"}, "é ✓"),
])
def test_expression_result_as_text(expr: str, doc: object, text: str) -> None:
    assert JsonExpr.compile(expr).text(doc) == text


@pytest.mark.parametrize(("src", "fragment"), [
    ("a[", "incomplete"),
    ('a."b', "Unclosed"),
    ("", "non-empty"),
    ("   ", "non-empty"),
    ("a..b", "syntax error"),
    ("nosuch(@)", "unknown function nosuch()"),
    ("length(nosuch(a))", "unknown function nosuch()"),
])
def test_bad_expressions_are_refused(src: str, fragment: str) -> None:
    with pytest.raises(JsonExprError) as info:
        JsonExpr.compile(src)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_a_runtime_type_error_is_null_not_an_exception() -> None:
    expr = JsonExpr.compile("length(a)")
    assert expr.search({"a": 5}) is None
    assert expr.text({"a": 5}) == "null"


def test_as_text_past_orjson_depth_and_of_huge_ints() -> None:
    deep: object = "x"
    for _ in range(300):
        deep = [deep]
    assert as_text(deep) == "[" * 300 + '"x"' + "]" * 300
    assert as_text(10 ** 30) == str(10 ** 30)


@pytest.mark.parametrize(("ctype", "ok"), [
    ("application/json", True), ("application/json; charset=utf-8", True),
    ("application/problem+json", True), ("APPLICATION/VND.API+JSON", True),
    ("text/plain;charset=UTF-8", True), (None, True), ("", True), ("text/json", True),
    ("text/html", False), ("application/javascript", False), ("multipart/form-data", False),
])
def test_json_content_types(ctype: str | None, ok: bool) -> None:
    assert is_json_type(ctype) is ok


# --- the document -----------------------------------------------------------------


def test_doc_parses_lazily_once_and_reports_only_when_asked() -> None:
    doc = JsonDoc(b"not json")
    assert doc.problem is None                 # nobody asked yet
    assert doc.value is None and not doc.ok
    assert doc.problem == INVALID
    assert JsonDoc(b"\xef\xbb\xbf{\"a\":1}").value == {"a": 1}     # a BOM is tolerated
    assert JsonDoc.unusable(TOO_LARGE).problem is None
    unusable = JsonDoc.unusable(TOO_LARGE)
    assert not unusable.ok and unusable.problem == TOO_LARGE


@pytest.mark.parametrize(("raw", "problem"), [
    (b"[" * 5000 + b"]" * 5000, TOO_DEEP),
    (b'{"a":' * 2000 + b"1" + b"}" * 2000, TOO_DEEP),
    (b'"\xff\xfe"', INVALID),                   # not UTF-8
    (b'{"a": 1', INVALID),                      # cut short
    (b"1" * 5000, INVALID),                     # a number no double holds
    (b"NaN", INVALID),
    (b"", INVALID),
])
def test_hostile_documents_have_no_value(raw: bytes, problem: str) -> None:
    doc = JsonDoc(raw)
    assert doc.value is None and doc.problem == problem


# --- the bounded copy ---------------------------------------------------------------


BODY = orjson.dumps({"data": {"ok": True, "job": {"title": "Barista"}}, "pad": "x" * 5000})


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


@pytest.mark.parametrize("coding", ["identity", "gzip", "deflate", "br", "x-gzip"])
@pytest.mark.parametrize("size", [1, 7, 4096, 1 << 20])
def test_collector_decodes_each_coding(coding: str, size: int) -> None:
    encoded = {"identity": BODY, "gzip": gzip.compress(BODY), "x-gzip": gzip.compress(BODY),
               "deflate": zlib.compress(BODY), "br": brotli.compress(BODY)}[coding]
    c = JsonCollector("application/json", coding, len(encoded), limit=1 << 20)
    sent = []
    for piece in chunks(encoded, size):
        c.feed(piece)
        sent.append(piece)
    assert b"".join(sent) == encoded            # the collector never touched a chunk
    doc = c.document()
    assert doc.value["data"]["job"]["title"] == "Barista"
    assert c.document() is doc


def test_collector_limits() -> None:
    small = b'{"a":"' + b"x" * 90 + b'"}'
    c = JsonCollector("application/json", None, None, limit=len(small))
    c.feed(small)
    assert c.document().value is not None       # exactly at the limit: read
    c = JsonCollector("application/json", None, None, limit=len(small) - 1)
    for piece in chunks(small, 10):
        c.feed(piece)
    assert not c.active                          # gave up at once, keeps nothing
    assert c.document().problem is None and not c.document().ok
    assert c.document().problem == TOO_LARGE
    # a declared length over the limit: nothing is even looked at
    c = JsonCollector("application/json", "", 10 ** 9, limit=1024)
    assert not c.active
    # a gzip bomb stops at the limit, decoded no further
    bomb = gzip.compress(b"[" + b"0," * 5_000_000 + b"0]")
    c = JsonCollector("application/json", "gzip", len(bomb), limit=1 << 20)
    for piece in chunks(bomb, 65536):
        c.feed(piece)
    doc = c.document()
    assert not doc.ok and doc.problem == TOO_LARGE


@pytest.mark.parametrize(("ctype", "coding", "body", "problem"), [
    ("text/html", None, b"{}", NOT_JSON),
    ("application/json", "compress", b"{}", INVALID),
    ("application/json", "gzip", b"not gzip at all", INVALID),
    ("application/json", "gzip, br", b"{}", INVALID),
])
def test_collector_refusals(ctype: str, coding: str | None, body: bytes, problem: str) -> None:
    c = JsonCollector(ctype, coding, None, limit=1024)
    c.feed(body)
    doc = c.document()
    assert not doc.ok and doc.problem == problem


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=6),
       coding=st.sampled_from(["identity", "gzip", "br"]))
def test_hostile_bytes_never_raise(raw: bytes, cuts: list[int], coding: str) -> None:
    encoded = {"identity": raw, "gzip": gzip.compress(raw), "br": brotli.compress(raw)}[coding]
    c = JsonCollector("text/plain", coding, None, limit=2000)
    prev = 0
    for cut in sorted(set(cuts)) + [len(encoded)]:
        c.feed(encoded[prev:cut])
        prev = max(prev, cut)
    doc = c.document()
    try:
        expected = orjson.loads(raw)
    except orjson.JSONDecodeError:
        expected = None
    if len(raw) > 2000:
        assert doc.value is None
    else:
        assert doc.value == expected
    # every expression copes with whatever came out
    assert isinstance(JsonExpr.compile("a.b[0]").text(doc.value), str)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=4),
    max_leaves=30)


@settings(max_examples=200, deadline=None)
@given(value=json_values, depth=st.integers(0, 1500))
def test_any_json_value_nested_any_depth(value: object, depth: int) -> None:
    raw = b'{"a":' * depth + json.dumps({"x": value}).encode() + b"}" * depth
    doc = JsonDoc(raw)
    if depth + 2 > 1024 and doc.ok:
        pytest.fail("deeper than orjson's limit yet parsed")
    if doc.ok:
        path = ".".join(["a"] * depth + ["x"])
        found = JsonExpr.compile(path).search(doc.value)
        text = as_text(found)
        assert text is not None
        if isinstance(found, str):
            assert text == found
        else:
            assert orjson.loads(text) == found
    else:
        assert doc.problem in (TOO_DEEP, INVALID)


# --- conditions and extractors ----------------------------------------------------------


def cond(**spec: str) -> list[tuple[JsonExpr, str]]:
    return [(JsonExpr.compile(k), v) for k, v in spec.items()]


def test_conditions_every_one_must_match() -> None:
    match = compile_json([(JsonExpr.compile("errors"), "null"),
                          (JsonExpr.compile("data.submit.ok"), "true")])
    assert match is not None
    assert match(JsonDoc(b'{"data":{"submit":{"ok":true}}}'))
    assert not match(JsonDoc(b'{"data":{"submit":{"ok":true}},"errors":[{"m":"x"}]}'))
    assert not match(JsonDoc(b'{"data":{"submit":{"ok":false}}}'))
    assert not match(JsonDoc(b"not json"))          # not even errors = null
    assert not match(None)
    assert compile_json([]) is None


def test_condition_globs() -> None:
    glob = compile_json([(JsonExpr.compile("status"), "accept*")])
    assert glob(JsonDoc(b'{"status":"accepted"}'))
    assert not glob(JsonDoc(b'{"status":"Accepted"}'))      # case-sensitive
    rx = compile_json([(JsonExpr.compile("id"), "regex:[0-9]+")])
    assert rx(JsonDoc(b'{"id":123}')) and not rx(JsonDoc(b'{"id":"12a"}'))
    star = compile_json([(JsonExpr.compile("errors"), "*")])
    assert star(JsonDoc(b"{}"))                               # "null" is text too


def ex(src: str) -> Extractor:
    kind, _, arg = src.partition(":")
    return Extractor(kind, arg, src)  # type: ignore[arg-type]


def test_extractors_read_the_right_body() -> None:
    resp = JsonDoc(b'{"job":{"title":"  Line\\nCook "},"id":42,"tags":["a"],"x":null}')
    req = JsonDoc(b'{"variables":{"jobPostingId":"abc-1"}}')
    facts = Facts({}, "", {}, req)
    page = Page(None, resp)
    assert compile_extractor(ex("json:job.title"))(facts, page) == "Line Cook"
    assert compile_extractor(ex("json:id"))(facts, page) == "42"
    assert compile_extractor(ex("json:tags"))(facts, page) == '["a"]'
    assert compile_extractor(ex("json:x"))(facts, page) is None
    assert compile_extractor(ex("json:nothing.here"))(facts, page) is None
    got = compile_extractor(ex("request_json:variables.jobPostingId"))
    assert got(facts, page) == "abc-1" and got.request_json and not got.needs_json
    assert compile_extractor(ex("json:job.title")).needs_json
    assert compile_extractor(ex("json:job"))(Facts({}, "", {}), Page(None)) is None
    with pytest.raises(ValueError):
        compile_extractor(ex("json:a["))


def json_rule(**kw: object) -> Rule:
    base: dict[str, object] = {"name": "r", "event": "ApplicationCompleted",
                               "path": PathPattern.compile("/api/graphql"), "method": "POST"}
    base.update(kw)
    return Rule(**base)  # type: ignore[arg-type]


def test_classify_with_json_conditions_and_job_name() -> None:
    rules = RuleSet.compile([json_rule(
        json=tuple(cond(errors="null", **{"data.submit.success": "true"})),
        request_json=tuple(cond(operationName="ApiSubmit*")),
        job_name=ex("request_json:variables.jobTitle"))])
    cands = rules.candidates("POST", "/api/graphql")
    assert cands.needs_json and cands.request_json and not cands.needs_body
    req = RequestFacts("POST", "/api/graphql", "", {},
                       JsonDoc(b'{"operationName":"ApiSubmitForm","variables":{"jobTitle":"Chef"}}'))
    resp = ResponseFacts(200, {"Content-Type": "application/json"})
    ok = JsonDoc(b'{"data":{"submit":{"success":true}}}')
    fired = cands.classify(req, resp, None, ok)
    assert [f.job_name for f in fired] == ["Chef"]
    rejected = JsonDoc(b'{"data":{"submit":null},"errors":[{"message":"invalid"}]}')
    assert cands.classify(req, resp, None, rejected) == []
    other_op = RequestFacts("POST", "/api/graphql", "", {}, JsonDoc(b'{"operationName":"Q"}'))
    assert cands.classify(other_op, resp, None, ok) == []
    assert cands.classify(RequestFacts("POST", "/api/graphql"), resp, None, ok) == []
    assert not cands.decidable_without_body(resp)


def test_body_condition_also_reads_json_text() -> None:
    rules = RuleSet.compile([json_rule(body='"success":true')])
    cands = rules.candidates("POST", "/api/graphql")
    req = RequestFacts("POST", "/api/graphql")
    resp = ResponseFacts(200)
    raw = b'{"success":true}'
    assert len(cands.classify(req, resp, raw, JsonDoc(raw))) == 1


def test_collector_for_an_upstream_answer_reads_its_raw_headers() -> None:
    raw = gzip.compress(b'{"ok":true}')
    c = JsonCollector.for_response([(b"Content-Type", b"application/vnd.api+json"),
                                    (b"content-encoding", b"GZIP")], len(raw))
    c.feed(raw)
    assert c.document().value == {"ok": True}
    html = JsonCollector.for_response([(b"content-type", b"text/html; charset=utf-8")], None)
    assert not html.active and html.document().problem is None
    assert not html.document().ok and html.document().problem == NOT_JSON
