"""Path, location and glob patterns: semantics, errors, and hostile input."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.detect.patterns import GlobPattern, PathPattern, PatternError, match_any

P = PathPattern.compile
segment = st.text(alphabet=st.characters(blacklist_characters="/?#", blacklist_categories=("Cs",)),
                  min_size=1, max_size=12)
segments = st.lists(segment, min_size=0, max_size=6)


@pytest.mark.parametrize(("src", "path", "expected"), [
    ("/jobs/{job_id}/apply", "/jobs/42/apply", {"job_id": "42"}),
    ("/jobs/{job_id}/apply", "/jobs//apply", None),            # a capture is never empty
    ("/jobs/{job_id}/apply", "/jobs/4/2/apply", None),
    ("/jobs/*", "/jobs/42", {}),
    ("/jobs/*", "/jobs/", {}),                                  # "*" may be empty
    ("/jobs/*", "/jobs/4/2", None),
    ("/jobs/*.html", "/jobs/a.html", {}),
    ("/**", "/", {}),
    ("/**", "/a/b/c", {}),
    ("/jobs/**", "/jobs", {}),
    ("/jobs/**", "/jobs/1/2", {}),
    ("/jobs/**", "/jobsx", None),
    ("/a/**/b", "/a/b", {}),
    ("/a/**/b", "/a/x/y/b", {}),
    ("/a/**/b", "/a/x/y/c", None),
    ("/exact", "/exact", {}),
    ("/exact", "/Exact", None),                                 # paths are case-sensitive
    ("/exact", "/exact/", None),
    ("regex:/jobs/(?P<id>[0-9]+)", "/jobs/7", {"id": "7"}),
    ("regex:/jobs/(?P<id>[0-9]+)", "/jobs/7/x", None),         # full match
    ("regex:/jobs/(?P<id>[0-9]+)(?:/(?P<tab>\\w+))?", "/jobs/7", {"id": "7"}),
])
def test_path_semantics(src: str, path: str, expected: dict | None) -> None:
    assert P(src).match(path) == expected


def test_pattern_keeps_source_and_names() -> None:
    p = P("/c/{company}/jobs/{job_id}")
    assert p.source == "/c/{company}/jobs/{job_id}"
    assert p.names == ("company", "job_id")
    assert P("regex:/(?P<a>x)(?P<b>y)").names == ("a", "b")


@pytest.mark.parametrize(("src", "fragment"), [
    ("", "non-empty"),
    ("jobs/*", "must start with '/'"),
    ("/a/{x}/{x}", "appears twice"),
    ("/a/{x", "unclosed"),
    ("/a/x}", "without"),
    ("/a/{1bad}", "bad capture name"),
    ("/a/{}", "bad capture name"),
    ("regex:(", "bad regex"),
    ("regex:(?P<a>x)(?P<a>y)", "bad regex"),                    # duplicate group name
    ("/a?b=1", "query string is not part of the path"),
    ("/a/***", "'***'"),
    ("/a b", "whitespace"),
])
def test_bad_patterns_say_why(src: str, fragment: str) -> None:
    with pytest.raises(PatternError, match=re.escape(fragment)):
        P(src)


@pytest.mark.parametrize(("src", "location", "expected"), [
    ("/jobs/*/thanks*", "/jobs/3/thanks?ref=x", {}),
    ("/jobs/*/thanks*", "https://careers.acme.example/jobs/3/thanks?ref=/x/y", {}),
    ("/jobs/*/thanks", "/jobs/3/thanks?ref=x", {}),             # no "?": query ignored
    ("/jobs/{id}/thanks", "/jobs/3/thanks", {"id": "3"}),
    ("/jobs/*/thanks", "/jobs/3/apply?x=thanks", None),
    ("/apply?step=done*", "/apply?step=done&next=/a/b", {}),
    ("/apply?step=done*", "/apply?step=start", None),
    ("/apply?step={step}", "/apply?step=two", {"step": "two"}),
    ("https://careers.acme.example/jobs/*/thanks", "https://CAREERS.acme.example/jobs/3/thanks", {}),
    ("https://careers.acme.example/jobs/*/thanks", "https://evil.example/jobs/3/thanks", None),
    ("https://careers.acme.example/jobs/*/thanks", "/jobs/3/thanks", None),
    ("regex:/done/(?P<n>\\d+)\\?ok=1", "/done/5?ok=1", {"n": "5"}),
    ("regex:/done/(?P<n>\\d+)", "/done/5?ok=1", {"n": "5"}),
])
def test_location_patterns(src: str, location: str, expected: dict | None) -> None:
    assert P(src, allow_query=True).match_location(location) == expected


def test_match_any_returns_first_captures() -> None:
    pats = (P("/a/{x}"), P("/a/{y}"))
    assert match_any(pats, "/a/1") == {"x": "1"}
    assert match_any(pats, "/b") is None


@settings(max_examples=150)
@given(segments)
def test_named_capture_never_contains_slash(segs: list[str]) -> None:
    path = "/jobs/" + "/".join(segs) + "/apply"
    found = P("/jobs/{job_id}/apply").match(path)
    if len(segs) == 1:
        assert found == {"job_id": segs[0]}
    else:
        assert found is None
    for value in (found or {}).values():
        assert "/" not in value


@settings(max_examples=150)
@given(segments, segments)
def test_double_star_matches_any_depth(mid: list[str], tail: list[str]) -> None:
    path = "/".join(["", "a", *mid, "b"])
    assert P("/a/**/b").match(path) == {}
    assert P("/**").match("/" + "/".join(mid + tail)) == {}
    assert P("/a/**").match("/".join(["", "a", *mid])) == {}


@settings(max_examples=150)
@given(st.lists(st.sampled_from(list(".+()[]^$|\\?x")), min_size=1, max_size=10)
       .map("".join).filter(lambda s: "?" not in s))
def test_literal_metacharacters_are_literal(lit: str) -> None:
    p = P(f"/a/{lit}/b")
    assert p.match(f"/a/{lit}/b") == {}
    assert p.match(f"/a/{lit}x/b") is None
    q = P(f"/a/{lit}*")
    assert q.match(f"/a/{lit}tail") == {}
    assert q.match("/a/" + "z" * (len(lit) + 1)) is None or lit == ""


@settings(max_examples=100)
@given(st.text(max_size=40))
def test_hostile_pattern_sources_never_crash_unexpectedly(src: str) -> None:
    try:
        p = P(src)
    except PatternError:
        return
    p.match("/x/y")


def test_header_glob() -> None:
    g = GlobPattern.compile("text/html*", ignore_case=True)
    assert g.match("text/html; charset=utf-8")
    assert g.match("TEXT/HTML")
    assert not g.match("application/json")
    assert GlobPattern.compile("exact").match("exact")
    assert not GlobPattern.compile("exact").match("Exact")
    assert GlobPattern.compile("a.b").match("a.b") and not GlobPattern.compile("a.b").match("axb")
    assert GlobPattern.compile("regex:ok-\\d+").match("ok-12")
    with pytest.raises(PatternError):
        GlobPattern.compile("regex:[")


@pytest.mark.parametrize(("glob", "target", "ok"), [
    ("https://wa.me/*", "https://wa.me/4912345", True),
    ("https://wa.me/*", "HTTPS://WA.ME/4912345", True),
    ("https://wa.me/*", "https://wa.me.evil.example/", False),
    ("https://wa.me/*", "https://wa.me@evil.example/", False),
    ("https://wa.me/*", "http://wa.me/1", False),
    ("https://*.example.com/*", "https://a.b.example.com/x", True),
    ("https://*.example.com/*", "https://example.com/x", False),
    ("https://*.example.com/*", "https://evil.test/?.example.com/", False),
    ("https://m.me", "https://m.me", True),
    ("https://m.me", "https://m.me/x", False),
])
def test_url_globs(glob: str, target: str, ok: bool) -> None:
    assert GlobPattern.compile(glob, url=True).match(target) is ok


@pytest.mark.parametrize("glob", [
    "wa.me/*", "https:///x", "https://*/x", "https://wa.me*", "https://a*b.com/", "ftp://x/*",
    "https://user@wa.me/*",
])
def test_url_glob_needs_scheme_and_host(glob: str) -> None:
    with pytest.raises(PatternError):
        GlobPattern.compile(glob, url=True)
