"""Click-id validation and byte-exact stripping of the query sent upstream."""

from __future__ import annotations

from urllib.parse import unquote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.attribution.clickids import scan_query, valid_value
from proxy.config.model import DEFAULT_PARAMS

PARAMS = frozenset(DEFAULT_PARAMS)
UUID = "123e4567-e89b-12d3-a456-426614174000"


def test_tlr_sid_must_be_a_uuid_in_any_case():
    assert valid_value("tlr_sid", UUID)
    assert valid_value("tlr_sid", UUID.upper())
    assert not valid_value("tlr_sid", UUID[:-1])
    assert not valid_value("tlr_sid", UUID + "0")
    assert not valid_value("tlr_sid", UUID.replace("-", ""))
    assert not valid_value("tlr_sid", "g" * 8 + UUID[8:])
    assert not valid_value("tlr_sid", UUID + "\n")


def test_other_params_are_url_safe_text_up_to_512():
    assert valid_value("gclid", "Cj0KCQjw_abc-DEF.1~x")
    assert valid_value("fbclid", "a" * 512)
    assert not valid_value("fbclid", "a" * 513)
    assert not valid_value("fbclid", "")
    for bad in ("a b", "a\r\nSet-Cookie: x=1", "<script>", 'a"b', "a'b", "a;b", "a+b", "é"):
        assert not valid_value("gclid", bad), bad


def test_values_are_checked_after_percent_decoding():
    scan = scan_query("gclid=abc%2Ddef&fbclid=x%0D%0Ay&msclkid=%3Cb%3E", PARAMS, False)
    assert scan.found == {"gclid": "abc-def"}
    assert scan.rejected == ["fbclid", "msclkid"]


def test_plus_and_broken_utf8_are_rejected():
    scan = scan_query("gclid=a+b&fbclid=%FF%FE&ttclid=%", PARAMS, False)
    assert scan.found == {}
    assert scan.rejected == ["gclid", "fbclid", "ttclid"]


def test_first_valid_occurrence_wins_and_a_later_valid_one_still_counts():
    scan = scan_query("gclid=first&gclid=second&fbclid=%0A&fbclid=good", PARAMS, False)
    assert scan.found == {"gclid": "first", "fbclid": "good"}
    assert scan.rejected == []


def test_huge_value_is_rejected():
    scan = scan_query("gclid=" + "a" * 5000 + "&x=1", PARAMS, True)
    assert scan.found == {} and scan.rejected == ["gclid"]
    assert scan.upstream_query is None


def test_percent_encoded_param_name_is_recognised():
    scan = scan_query("tlr%5Fsid=" + UUID, PARAMS, True)
    assert scan.found == {"tlr_sid": UUID}
    assert scan.upstream_query == ""


def test_unconfigured_params_are_ignored():
    scan = scan_query("clickid=abc&utm_source=x", PARAMS, True)
    assert scan.found == {} and scan.rejected == [] and scan.upstream_query is None


def test_strip_keeps_everything_else_byte_exact():
    raw = "q=%27x%27&a=1&&b&gclid=G1&s=a+b&gclid=G2&x=%2F%2f&tlr_sid=bad&z="
    scan = scan_query(raw, PARAMS, True)
    assert scan.found == {"gclid": "G1"}
    assert scan.rejected == ["tlr_sid"]
    # every gclid occurrence goes; the invalid tlr_sid stays (it was not captured)
    assert scan.upstream_query == "q=%27x%27&a=1&&b&s=a+b&x=%2F%2f&tlr_sid=bad&z="


def test_strip_off_leaves_query_alone():
    assert scan_query("gclid=G1&a=1", PARAMS, False).upstream_query is None


def test_only_captured_params_is_empty_query():
    assert scan_query("gclid=G1&fbclid=F", PARAMS, True).upstream_query == ""


def test_nothing_captured_means_unchanged():
    assert scan_query("a=1&&b=%27", PARAMS, True).upstream_query is None


_segment = st.one_of(
    st.text(alphabet="abcxyz=%27+&;/?#\r\n\x00é\"'<>", max_size=12),
    st.sampled_from(["gclid=G", "fbclid=F_1", "tlr_sid=" + UUID, "gclid=%0a", "", "a=1"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_segment, max_size=12))
def test_hypothesis_stripping_removes_only_captured_names(segments):
    raw = "&".join(segments)
    scan = scan_query(raw, PARAMS, True)
    for value in scan.found.values():
        assert "\r" not in value and "\n" not in value and ";" not in value
    if scan.upstream_query is None:
        assert not scan.found
        return
    # the kept segments are the originals, in order, untouched
    expected = [s for s in raw.split("&")
                if not s or unquote_plus(s.partition("=")[0]) not in scan.found]
    assert scan.upstream_query == "&".join(expected)
