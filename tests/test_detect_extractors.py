"""Extractors: each kind on real-ish pages, and failure always meaning None."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.detect import extractors
from proxy.detect.extractors import MAX_VALUE_CHARS, Facts, Page, clean, compile_extractor
from proxy.detect.spec import Extractor

JOB_PAGE = """<!doctype html>
<html lang="en"><head>
  <meta charset="utf-8"><title>Careers | Acme</title>
  <script type="application/ld+json">{"@context": "https://schema.org", "@type": "Organization",
    "name": "Acme GmbH"}</script>
  <script type="application/ld+json">
  {"@context": "https://schema.org/", "@type": "JobPosting",
   "title": "Senior Warehouse Associate (m/w/d)",
   "identifier": {"@type": "PropertyValue", "name": "Acme", "value": "REQ-1234"},
   "datePosted": "2024-05-01", "employmentType": ["FULL_TIME", "PART_TIME"],
   "hiringOrganization": {"@type": "Organization", "name": "Acme GmbH"},
   "jobLocation": [{"@type": "Place", "address": {"@type": "PostalAddress",
      "addressLocality": "Berlin", "addressCountry": "DE"}}],
   "baseSalary": {"@type": "MonetaryAmount", "value": {"value": 17.5}}}
  </script>
</head><body>
  <nav><h1 class="brand">Acme</h1></nav>
  <main id="job">
    <h1 class="job-title">
       Senior   Warehouse
       Associate <small>(m/w/d)</small>
    </h1>
    <div class="meta"><span class="loc">Berlin &amp; Potsdam</span><span class="req">REQ-1234</span></div>
    <form action="/jobs/1234/apply" method="post"><input name="job_title" value="x"></form>
  </main>
</body></html>"""


def run(src: str, body: str | bytes | None = JOB_PAGE, *, params: dict[str, str] | None = None,
        query: str = "", form: dict[str, str] | None = None) -> str | None:
    kind, _, arg = src.partition(":")
    compiled = compile_extractor(Extractor(kind, arg, src))  # type: ignore[arg-type]
    raw = body.encode() if isinstance(body, str) else body
    return compiled(Facts(params or {}, query, form or {}), Page(raw))


@pytest.mark.parametrize("src,value", [
    ("css:h1.job-title", "Senior Warehouse Associate (m/w/d)"),
    ("css:main h1", "Senior Warehouse Associate (m/w/d)"),
    ("css:h1", "Acme"),                                   # the first match in the document
    ("css:.meta .loc", "Berlin & Potsdam"),               # entities decoded
    ("css:#job .req", "REQ-1234"),
    ("css:title", "Careers | Acme"),
    ("css:h2", None),
    ("css:input[name=job_title]", None),                  # no text: None, not ""
])
def test_css(src: str, value: str | None) -> None:
    assert run(src) == value


@pytest.mark.parametrize("src,value", [
    ("jsonld:title", "Senior Warehouse Associate (m/w/d)"),
    ("jsonld:hiringOrganization.name", "Acme GmbH"),
    ("jsonld:hiringOrganization", "Acme GmbH"),          # an object yields its name
    ("jsonld:identifier.value", "REQ-1234"),
    ("jsonld:employmentType", "FULL_TIME"),              # a list yields its first item
    ("jsonld:jobLocation.address.addressLocality", "Berlin"),  # through a list of objects
    ("jsonld:baseSalary.value.value", "17.5"),
    ("jsonld:datePosted", "2024-05-01"),
    ("jsonld:validThrough", None),
    ("jsonld:title.name", None),
])
def test_jsonld_keys(src: str, value: str | None) -> None:
    assert run(src) == value


def page_with(*scripts: str, script_type: str = "application/ld+json") -> str:
    tags = "".join(f'<script type="{script_type}">{s}</script>' for s in scripts)
    return f"<html><head>{tags}</head><body></body></html>"


POSTING = {"@type": "JobPosting", "title": "Nurse"}


@pytest.mark.parametrize("html", [
    page_with(json.dumps(POSTING)),
    page_with(json.dumps([{"@type": "WebPage"}, POSTING])),
    page_with(json.dumps({"@context": "https://schema.org",
                          "@graph": [{"@type": "Organization", "name": "Acme"}, POSTING]})),
    page_with(json.dumps({**POSTING, "@type": ["JobPosting", "Thing"]})),
    page_with(json.dumps({**POSTING, "@type": "http://schema.org/JobPosting"})),
    page_with("{broken", json.dumps(POSTING)),                   # a broken script is skipped
    page_with("<!--" + json.dumps(POSTING) + "-->"),
    page_with(json.dumps(POSTING), script_type="application/LD+JSON; charset=utf-8"),
    page_with('{"@type": "JobPosting", "title": "Nurse\tICU"}'.replace("\t", "\n")),
])
def test_jsonld_shapes(html: str) -> None:
    assert run("jsonld:title", html) in {"Nurse", "Nurse ICU"}


@pytest.mark.parametrize("html", [
    page_with("{broken json"),
    page_with(json.dumps({"@type": "Organization", "title": "not a job"})),
    page_with(json.dumps(POSTING), script_type="text/javascript"),
    page_with(json.dumps([[[[[[[[[[[POSTING]]]]]]]]]]])),        # nested beyond reason
    page_with("[" * 100_000 + "]" * 100_000),                   # recursion bomb
    page_with(json.dumps({"@type": "JobPosting", "title": {"x": 1}})),
    "not html at all \x00\xff",
    "",
])
def test_jsonld_failures_are_none(html: str) -> None:
    assert run("jsonld:title", html) is None


@pytest.mark.parametrize("src,value", [
    (r"regex:REQ-(\d+)", "1234"),
    (r"regex:REQ-\d+", "REQ-1234"),                       # no group: the whole match
    (r"regex:<title>([^<|]+)", "Careers"),
    (r"regex:(?s)<small>(.*?)</small>", "(m/w/d)"),
    (r"regex:NOPE-(\d+)", None),
    (r"regex:(optional)?REQ", None),                      # group 1 did not take part
])
def test_regex(src: str, value: str | None) -> None:
    assert run(src) == value


def test_body_kinds_without_a_body() -> None:
    for src in ("css:h1", "regex:(.*)", "jsonld:title"):
        assert run(src, None) is None


@pytest.mark.parametrize("query,value", [
    ("job=Nurse%20ICU", "Nurse ICU"),
    ("job=Nurse+ICU&job=second", "Nurse ICU"),            # first value
    ("a=1&job=%E2%82%AC%20100", "\u20ac 100"),
    ("job=%FF", "\ufffd"),                                # bad UTF-8 replaced
    ("jobs=x&xjob=y", None),
    ("job=", None),
    ("", None),
])
def test_query(query: str, value: str | None) -> None:
    assert run("query:job", query=query) == value


def test_path_and_form() -> None:
    assert run("path:job_id", params={"job_id": "42"}) == "42"
    assert run("path:slug", params={"job_id": "42"}) is None
    assert run("form:job_title", form={"job_title": " Driver\r\n(CE) "}) == "Driver (CE)"
    assert run("form:job_title", form={}) is None


def test_values_are_cleaned_and_capped() -> None:
    assert clean("a\x00b\x1bc\x7f\x85d") == "a b c d"
    assert clean("  \t\n ") is None
    assert clean(True) is None and clean(3) == "3" and clean({"a": 1}) is None
    long = "x" * (MAX_VALUE_CHARS * 3)
    assert run("form:t", form={"t": long}) == "x" * MAX_VALUE_CHARS


def test_html_is_parsed_once_per_page(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[object] = []
    real = extractors.LexborHTMLParser

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, html: str) -> None:
            made.append(self)
            super().__init__(html)

    sources = ["css:h1.job-title", "css:.req", "jsonld:title", "jsonld:datePosted"]
    compiled = [compile_extractor(Extractor(s.split(":")[0], s.split(":", 1)[1], s))  # type: ignore[arg-type]
                for s in sources]
    monkeypatch.setattr(extractors, "LexborHTMLParser", Counting)
    page = Page(JOB_PAGE.encode())
    facts = Facts({}, "", {})
    values = [c(facts, page) for c in compiled]
    assert values == ["Senior Warehouse Associate (m/w/d)", "REQ-1234",
                      "Senior Warehouse Associate (m/w/d)", "2024-05-01"]
    assert len(made) == 1


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000) | st.text(max_size=2000).map(str.encode))
def test_hostile_bodies_never_raise(body: bytes) -> None:
    for src in ("css:h1", "css:script", "jsonld:title", r"regex:<(\w+)>"):
        value = run(src, body)
        assert value is None or (0 < len(value) <= MAX_VALUE_CHARS and value == value.strip())
