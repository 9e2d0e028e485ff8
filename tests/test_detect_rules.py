"""Rule matching: candidates at request time, classify at response time."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from proxy.config.model import frozen_map
from proxy.detect.patterns import PathPattern
from proxy.detect.rules import (
    Candidates,
    RequestFacts,
    ResponseFacts,
    RuleSet,
    literal_prefix,
)
from proxy.detect.spec import Extractor, Rule, StatusMatch

# --- building rules the way the rules file says them -------------------------


def ex(src: str) -> Extractor:
    kind, _, arg = src.partition(":")
    return Extractor(kind, arg, src)  # type: ignore[arg-type]


def status(entry: int | str) -> StatusMatch:
    if isinstance(entry, str) and entry.endswith("xx"):
        low = int(entry[0]) * 100
        return StatusMatch(low, low + 99)
    return StatusMatch(int(entry), int(entry))


def rule(
    path: str,
    *,
    name: str = "r",
    event: str = "ApplicationCompleted",
    method: str | None = None,
    statuses: tuple[int | str, ...] = (),
    location: str | None = None,
    header: Mapping[str, str] | None = None,
    body: str | None = None,
    job_name: str | None = None,
    extract: Mapping[str, str] | None = None,
    continue_: bool = False,
) -> Rule:
    return Rule(
        name=name,
        event=event,
        path=PathPattern.compile(path),
        method=method,
        status=tuple(status(s) for s in statuses),
        location=PathPattern.compile(location, allow_query=True) if location else None,
        header=tuple((header or {}).items()),
        body=body,
        job_name=ex(job_name) if job_name else None,
        extract=frozen_map({k: ex(v) for k, v in (extract or {}).items()}),
        continue_=continue_,
    )


def fire(
    rules: list[Rule],
    method: str = "GET",
    path: str = "/jobs/3/apply",
    *,
    query: str = "",
    form: Mapping[str, str] | None = None,
    code: int = 200,
    headers: Mapping[str, str] | None = None,
    location: str | None = None,
    body: bytes | None = None,
) -> list[tuple[str, str | None, str | None, dict[str, str]]]:
    cands = RuleSet.compile(rules).candidates(method, path)
    fired = cands.classify(
        RequestFacts(method, path, query, form or {}),
        ResponseFacts(code, headers or {}, location),
        body,
    )
    return [(f.rule.name, f.job_id, f.job_name, f.fields) for f in fired]


def names(rules: list[Rule], **kw: object) -> list[str]:
    return [n for n, *_ in fire(rules, **kw)]  # type: ignore[arg-type]


# --- the two rules of the SPEC's example file --------------------------------

SPEC_RULES = [
    rule("/jobs/{job_id}/apply", name="apply form viewed", event="ConversationStart",
         method="GET", statuses=(200,), job_name="css:h1"),
    rule("/jobs/{job_id}/apply", name="application submitted", method="POST",
         statuses=(302, 303), location="/jobs/*/thanks*", job_name="form:job_title"),
]


def test_spec_example_apply_form_viewed() -> None:
    body = b"<html><body><h1>  Warehouse\n  Associate </h1></body></html>"
    assert fire(SPEC_RULES, "GET", "/jobs/42/apply", body=body) == [
        ("apply form viewed", "42", "Warehouse Associate", {})]


@pytest.mark.parametrize("location", [
    "/jobs/42/thanks",
    "/jobs/42/thanks?ref=x",
    "https://careers.acme.example/jobs/42/thanks?ref=x",
    "thanks?ref=x",                        # relative to /jobs/42/apply
])
def test_spec_example_application_submitted(location: str) -> None:
    got = fire(SPEC_RULES, "POST", "/jobs/42/apply", code=303, location=location,
               form={"job_title": "Forklift Driver"})
    assert got == [("application submitted", "42", "Forklift Driver", {})]


@pytest.mark.parametrize("code,location", [
    (200, "/jobs/42/thanks"),              # wrong status
    (302, "/jobs/42/apply?error=1"),        # back to the form
    (302, None),                            # no Location at all
    (302, "/jobs/42"),
    (302, "http://[::1/jobs/42/thanks"),    # unparsable: no match, no exception
])
def test_spec_example_submission_not_fired(code: int, location: str | None) -> None:
    assert fire(SPEC_RULES, "POST", "/jobs/42/apply", code=code, location=location) == []


# --- the matching matrix -------------------------------------------------------


@pytest.mark.parametrize("rule_method,method,fires", [
    (None, "GET", True), (None, "DELETE", True), ("POST", "POST", True),
    ("POST", "GET", False), ("post", "POST", True), ("GET", "HEAD", False),
])
def test_method(rule_method: str | None, method: str, fires: bool) -> None:
    assert bool(names([rule("/x", method=rule_method)], method=method, path="/x")) is fires


@pytest.mark.parametrize("statuses,code,fires", [
    ((), 500, True), ((200,), 200, True), ((200,), 201, False),
    (("3xx",), 301, True), (("3xx",), 399, True), (("3xx",), 400, False),
    ((200, "3xx"), 303, True), (("2xx", 404), 404, True), (("2xx", 404), 410, False),
])
def test_status(statuses: tuple[int | str, ...], code: int, fires: bool) -> None:
    assert bool(names([rule("/x", statuses=statuses)], path="/x", code=code)) is fires


@pytest.mark.parametrize("pattern,location,fires", [
    ("/done", "/done", True),
    ("/done", "/done?x=1", True),
    ("/done", "/done/more", False),
    ("/apply?step=done*", "/apply?step=done&x=/y", True),
    ("/apply?step=done*", "/apply?step=review", False),
    ("/apply?step=done*", "/apply", False),
    ("https://careers.acme.example/done", "https://careers.acme.example/done?a=b", True),
    ("https://careers.acme.example/done", "https://other.example/done", False),
    ("/done", "//cdn.example/done", True),      # scheme-relative: path compared
    ("/a/*/done", "../b/done", True),           # resolved against /a/x/apply
])
def test_location(pattern: str, location: str, fires: bool) -> None:
    got = names([rule("/a/x/apply", location=pattern)], path="/a/x/apply", location=location)
    assert bool(got) is fires


def test_header_globs() -> None:
    r = rule("/x", header={"X-Step": "done*", "content-type": "text/html*"})
    ok = CIMultiDict([("content-type", "TEXT/HTML; charset=utf-8"), ("x-step", "DONE-1")])
    assert names([r], path="/x", headers=ok) == ["r"]
    assert names([r], path="/x", headers={"Content-Type": "text/html", "X-STEP": "done"}) == ["r"]
    several = CIMultiDict([("Content-Type", "text/html"), ("X-Step", "a"), ("X-Step", "done")])
    assert names([r], path="/x", headers=several) == ["r"]
    assert names([r], path="/x", headers={"Content-Type": "text/html"}) == []   # missing
    assert names([r], path="/x", headers={"Content-Type": "text/plain", "X-Step": "done"}) == []


def test_header_regex_glob() -> None:
    r = rule("/x", header={"X-App": r"regex:id-\d+"})
    assert names([r], path="/x", headers={"x-app": "ID-12"}) == ["r"]
    assert names([r], path="/x", headers={"x-app": "id-12x"}) == []


@pytest.mark.parametrize("spec,body,fires", [
    ("Thank you", b"<p>Thank you for applying</p>", True),
    ("Thank you", b"<p>thank you</p>", False),
    ("Danke f\u00fcr", "<p>Danke f\u00fcr Ihre Bewerbung</p>".encode(), True),
    (r"regex:application\s+(received|sent)", b"<b>Application\n received</b>", False),
    (r"regex:(?i)application\s+(received|sent)", b"<b>Application\n received</b>", True),
    ("Thank you", None, False),               # no HTML body: a body rule cannot match
    ("Thank you", b"\xff\xfe Thank you", True),   # undecodable bytes are replaced
])
def test_body(spec: str, body: bytes | None, fires: bool) -> None:
    assert bool(names([rule("/x", body=spec)], path="/x", body=body)) is fires


def test_first_match_fires_continue_lets_later_ones_fire() -> None:
    a = rule("/jobs/**", name="a", continue_=True)
    b = rule("/jobs/{job_id}", name="b")
    c = rule("/jobs/*", name="c")
    d = rule("/jobs/{job_id}", name="d", statuses=(404,))
    assert names([a, b, c], path="/jobs/7") == ["a", "b"]
    assert names([b, c], path="/jobs/7") == ["b"]
    assert names([d, c], path="/jobs/7") == ["c"]         # a non-matching rule is skipped
    assert names([a, d], path="/jobs/7") == ["a"]


def test_job_id_from_path_then_from_extract() -> None:
    by_path = rule("/jobs/{job_id}/apply", extract={"job_id": "query:id"})
    by_query = rule("/apply", extract={"job_id": "query:id", "src": "query:utm_source"})
    assert fire([by_path], path="/jobs/9/apply", query="id=5") == [
        ("r", "9", None, {"job_id": "5"})]
    assert fire([by_query], path="/apply", query="utm_source=talroo&id=5") == [
        ("r", "5", None, {"job_id": "5", "src": "talroo"})]
    assert fire([by_query], path="/apply") == [("r", None, None, {})]


def test_extractors_share_one_page() -> None:
    html = (b'<html><head><script type="application/ld+json">{"@type": "JobPosting",'
            b' "title": "Nurse", "hiringOrganization": {"name": "Acme"}}</script></head>'
            b'<body><h1>Nurse (m/w/d)</h1><span id="ref">REF-77</span></body></html>')
    r = rule("/jobs/{job_id}", job_name="jsonld:title", extract={
        "headline": "css:h1", "company": "jsonld:hiringOrganization.name",
        "ref": r"regex:REF-(\d+)", "slug": "path:job_id"})
    assert fire([r], path="/jobs/n1", body=html) == [("r", "n1", "Nurse", {
        "headline": "Nurse (m/w/d)", "company": "Acme", "ref": "77", "slug": "n1"})]


def test_candidates_report_form_fields_and_body_need() -> None:
    rs = RuleSet.compile([
        rule("/jobs/{job_id}/apply", method="POST", job_name="form:job_title",
             extract={"req": "form:requisition"}),
        rule("/jobs/{job_id}/apply", method="POST", body="Thanks", continue_=True),
        rule("/jobs/{job_id}", method="GET", job_name="css:h1"),
    ])
    post = rs.candidates("POST", "/jobs/1/apply")
    assert post.form_fields == {"job_title", "requisition"} and post.needs_body
    get = rs.candidates("GET", "/jobs/1")
    assert get.form_fields == frozenset() and get.needs_body
    none = rs.candidates("GET", "/about")
    assert not none and none.form_fields == frozenset() and not none.needs_body
    assert none.classify(RequestFacts("GET", "/about"), ResponseFacts(200), b"x") == []


def test_a_query_condition_selects_among_rules_on_one_endpoint() -> None:
    """One GraphQL endpoint, the operation in the query string (as Ashby's boards do)."""
    submit = Rule(name="submit", event="ApplicationCompleted",
                  path=PathPattern.compile("/api/graphql"), method="POST",
                  query=(("op", "ApiSubmit*"),))
    tagged = Rule(name="tagged", event="Lead", path=PathPattern.compile("/api/graphql"),
                  query=(("op", "Lead"), ("src", "regex:^(ad|mail)$")))
    rs = RuleSet.compile([submit, tagged])
    assert rs.candidates("POST", "/api/graphql", "op=ApiSubmitSingleApplicationFormAction").rules \
        == (submit,)
    assert not rs.candidates("POST", "/api/graphql", "op=ApiJobBoardWithTeams")
    assert not rs.candidates("POST", "/api/graphql", "")
    assert not rs.candidates("POST", "/api/graphql")
    # Values are percent-decoded, any repeat of the param may match, every param must.
    assert rs.candidates("GET", "/api/graphql", "op=x&op=Lead&src=a%64").rules == (tagged,)
    assert not rs.candidates("GET", "/api/graphql", "op=Lead&src=web")
    assert not rs.candidates("GET", "/api/graphql", "op=Lead")


def test_decidable_without_body() -> None:
    rs = RuleSet.compile([
        rule("/apply", name="redirect", statuses=("3xx",), location="/thanks"),
        rule("/apply", name="page", statuses=(200,), body="Thank you"),
    ])
    cands = rs.candidates("POST", "/apply")
    assert cands.needs_body
    assert cands.decidable_without_body(ResponseFacts(302, {}, "/thanks"))
    assert cands.decidable_without_body(ResponseFacts(500))
    assert not cands.decidable_without_body(ResponseFacts(200))
    extracting = RuleSet.compile([rule("/apply", job_name="css:h1")]).candidates("GET", "/apply")
    assert not extracting.decidable_without_body(ResponseFacts(302))


@pytest.mark.parametrize("bad", [
    rule("/x", body="regex:(unclosed"),
    rule("/x", job_name="regex:[z-a]"),
    rule("/x", job_name="css:h1[[["),
    rule("/x", job_name="jsonld:a..b"),
    rule("/x", job_name="xpath://h1"),
    rule("/x", job_name="form:"),
    rule("/x", header={"X-App": "regex:(?P<"}),
])
def test_compile_refuses_bad_rules_with_their_name(bad: Rule) -> None:
    with pytest.raises(ValueError, match="rule 'r'"):
        RuleSet.compile([bad])


def test_classify_never_raises_on_a_hostile_headers_mapping() -> None:
    class Exploding(dict):  # type: ignore[type-arg]
        def items(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    rules = [rule("/x", name="hdr", header={"X": "*"}), rule("/x", name="plain")]
    assert names(rules, path="/x", headers=Exploding()) == ["plain"]


# --- the prefilter equals brute force ----------------------------------------


@pytest.mark.parametrize("src,prefix", [
    ("/jobs/{job_id}/apply", "/jobs/"), ("/jobs/**", "/jobs"), ("/a/**/b", "/a"),
    ("/exact", "/exact"), ("regex:/jobs/(?P<id>\\d+)", ""), ("**/apply", ""),
    ("/x*y", "/x"),
])
def test_literal_prefix(src: str, prefix: str) -> None:
    assert literal_prefix(src) == prefix


SEGMENTS = ["jobs", "apply", "a", "3", "x-1", ""]
PATTERN_SEGMENTS = ["jobs", "apply", "a", "*", "**", "{job_id}", "x*", "*-1", "3"]

COMMON = ["/jobs/**", "/jobs/{job_id}/apply", "/jobs/*", "/a/**/apply", "/jobs", "/**"]
patterns = st.one_of(
    st.sampled_from(COMMON),
    st.lists(st.sampled_from(PATTERN_SEGMENTS), min_size=1, max_size=4).map(
        lambda segs: "/" + "/".join(segs)).filter(lambda s: "***" not in s
                                                  and s.count("{job_id}") <= 1),
    st.just(r"regex:/jobs/(?P<job_id>\d+)(/apply)?"),
)
paths = st.lists(st.sampled_from(SEGMENTS), min_size=0, max_size=5).map(
    lambda segs: "/" + "/".join(segs))
methods = st.sampled_from(["GET", "POST", "PUT"])
rule_lists = st.lists(
    st.tuples(patterns, st.sampled_from([None, "GET", "POST"])), max_size=6)


def instantiate(draw: st.DrawFn, pattern: str) -> str:
    """A path built from the pattern: wildcards filled in, so it often matches."""
    if pattern.startswith("regex:"):
        return draw(st.sampled_from(["/jobs/12", "/jobs/12/apply", "/jobs/x"]))
    out = []
    for seg in pattern.split("/")[1:]:
        if seg == "**":
            out.extend(draw(st.lists(st.sampled_from(SEGMENTS), max_size=2)))
        else:
            filler = draw(st.sampled_from(SEGMENTS))
            out.append(seg.replace("{job_id}", filler or "7").replace("*", filler))
    return "/" + "/".join(out)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[tuple[str, str | None]], list[str]]:
    specs = draw(rule_lists)
    near = [instantiate(draw, p) for p, _ in specs]
    return specs, near + draw(st.lists(paths, min_size=1, max_size=3))


@settings(max_examples=200, deadline=None)
@given(scenarios(), methods)
def test_candidates_equal_brute_force(
    scenario: tuple[list[tuple[str, str | None]], list[str]], method: str
) -> None:
    specs, request_paths = scenario
    rules = [rule(p, name=f"r{i}", method=m) for i, (p, m) in enumerate(specs)]
    rs = RuleSet.compile(rules)
    for path in request_paths:
        expected = [
            (r.name, r.path.match(path)) for r in rules
            if (r.method is None or r.method == method) and r.path.match(path) is not None
        ]
        cands: Candidates = rs.candidates(method, path)
        assert list(zip([r.name for r in cands.rules], cands.path_params)) == expected
