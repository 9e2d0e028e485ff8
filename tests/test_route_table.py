"""[[routes]]: which upstream serves a public path, and the target it is sent.

Longest prefix wins; a path never climbs out of a route's upstream path however it is
spelled (checked against RFC 3986 dot-segment removal after every decoding a server
might apply)."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config.model import Route
from proxy.http.route_table import PathEscapes, RouteTable, escapes

MAIN = "acme.example", ("https://acme.example", "http://acme.example")


def table(*routes: tuple[str, str]) -> RouteTable:
    return RouteTable([Route(p, u) for p, u in routes], *MAIN)


GH = table(("/apply/", "https://boards.greenhouse.io/embed/"),
           ("/apply/forms/", "https://forms.example:8443/v2/"),
           ("/app/", "http://other.example/"))


def test_no_routes_is_falsy_and_matches_nothing() -> None:
    t = table()
    assert not t
    assert t.match("/apply/x") is None
    assert t.slash_redirect("/apply") is None


@pytest.mark.parametrize("path,prefix,target", [
    ("/apply/job_app", "/apply/", "/embed/job_app"),
    ("/apply/", "/apply/", "/embed/"),
    ("/apply/forms/1", "/apply/forms/", "/v2/1"),      # longest prefix, whatever the order
    ("/apply/formsx", "/apply/", "/embed/formsx"),     # a prefix is whole segments
    ("/apply/forms", "/apply/", "/embed/forms"),
    ("/app/x", "/app/", "/x"),                         # /app/ is a substring of /apply/
    ("/apply//x", "/apply/", "/embed//x"),             # "//" stays below /embed/
])
def test_longest_prefix_and_target(path: str, prefix: str, target: str) -> None:
    route = GH.match(path)
    assert route is not None and route.prefix == prefix
    assert route.target(path) == target


@pytest.mark.parametrize("path", ["/", "/applyx", "/ap", "/APPLY/x", "/application/x",
                                  "/x/apply/y", "/%61pply/x"])
def test_other_paths_go_to_the_main_upstream(path: str) -> None:
    assert GH.match(path) is None


def test_host_and_query_kept_byte_exact() -> None:
    route = GH.match("/apply/job_app")
    assert route is not None
    assert (route.origin, route.host) == ("https://boards.greenhouse.io", "boards.greenhouse.io")
    target = "/apply/job_app?for=acme&token=1&q=a%27b+c"
    assert route.target(target) == "/embed/job_app?for=acme&token=1&q=a%27b+c"
    assert route.url(target) == "https://boards.greenhouse.io" + route.target(target)
    forms = GH.match("/apply/forms/x")
    assert forms is not None and forms.host == "forms.example:8443"


def test_the_prefix_without_its_slash_redirects() -> None:
    assert GH.slash_redirect("/apply") == "/apply/"
    assert GH.slash_redirect("/apply/forms") is None    # served by /apply/
    assert GH.slash_redirect("/app") == "/app/"
    assert GH.slash_redirect("/applyx") is None


@pytest.mark.parametrize("rest", [
    "..", "../admin", "a/../../admin", ".", "./x", "%2e%2e/admin", "%2E%2e/x", ".%2e/x",
    "%2e./x", "%252e%252e/admin", "..%2fadmin", "..%2Fadmin", "..\\admin", "x\\..\\..\\y",
    "..%5cadmin", "..;/admin", "..;jsessionid=1/x", "a/%2e%2e%2f%2e%2e/b", "%25252e%25252e/",
])
def test_hostile_rests_are_refused(rest: str) -> None:
    assert escapes(rest)
    with pytest.raises(PathEscapes):
        GH.match("/apply/" + rest)


@pytest.mark.parametrize("rest", ["job_app", "a..b/c", "...", "..a/b", "a./b", "%2e%2ex",
                                  "x/y.z", "", "a//b", "job_app%20x"])
def test_dots_inside_names_are_fine(rest: str) -> None:
    assert not escapes(rest)
    route = GH.match("/apply/" + rest)
    assert route is not None and route.prefix == "/apply/"


def _resolved(path: str) -> str:
    """What a permissive server might make of a path: decoded up to three times,
    backslashes as slashes, `;params` dropped, dot segments removed."""
    for _ in range(3):
        path = unquote(path)
    path = path.replace("\\", "/")
    path = "/".join(seg.split(";", 1)[0] for seg in path.split("/"))
    return posixpath.normpath(path)


REST = st.text(alphabet=list("./%2eEfF5c;\\ax"), max_size=24)


@settings(max_examples=1000, deadline=None)
@given(rest=REST)
def test_no_path_leaves_the_upstream_path(rest: str) -> None:
    path = "/apply/" + rest
    try:
        route = GH.match(path)
    except PathEscapes:
        return
    assert route is not None
    target = route.target(path)
    resolved = _resolved(target)
    assert resolved == "/embed" or resolved.startswith("/embed/"), (rest, target, resolved)
