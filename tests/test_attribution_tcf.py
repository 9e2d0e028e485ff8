"""The TC string decoder against the IAB's published examples, strings built field by
field, and hostile input; the consent decisions made from a decoded string."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.attribution.consent import Consent, ConsentState
from proxy.attribution.tcf import MAX_TC_STRING, TcfError, decode
from proxy.config.model import ConsentSection, Sink
from proxy.conversions.events import Event
from proxy.conversions.routing import route
from proxy.conversions.states import Outcome
from tests.tcf_strings import ALL_PURPOSES, GOOGLE, BitWriter, tc_string


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()


# --- the IAB's examples (iabtcf-java decoder tests, strings made with the IAB's encoder)

def test_iab_example_core_fields() -> None:
    tc = decode("COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA")
    assert tc.version == 2
    assert tc.created == ts("2020-01-26T17:01:00")
    assert tc.last_updated == ts("2021-02-02T17:01:00")
    assert (tc.cmp_id, tc.cmp_version, tc.consent_screen) == (675, 2, 1)
    assert (tc.vendor_list_version, tc.policy_version) == (15, 2)
    assert (tc.consent_language, tc.publisher_cc) == ("EN", "AA")
    assert not tc.is_service_specific and not tc.use_non_standard_texts
    assert tc.purpose_one_treatment
    assert tc.special_features == {1}
    assert tc.purposes_consent == {2, 10}
    assert tc.purposes_li == {2, 9}


def test_iab_example_bitfield_vendors() -> None:
    tc = decode("COrEAV4OrXx94ACABBENAHCIAD-AAAAAAACAAxAAAAgAIAwgAgAAAAEAgQAAAAAEAYQAQAAAACAAAABAAA")
    assert tc.purposes_consent == {3, 4, 5, 6, 7, 8, 9}
    assert tc.vendor_consents.ids() == [23, 37, 47, 48, 53, 65, 98]
    assert tc.vendor_li.ids() == [37, 47, 48, 53, 65, 98, 129]


def test_iab_example_with_other_segments() -> None:
    # disclosed vendors, allowed vendors and publisher segments follow; only the core counts
    tc = decode("COrEAV4OrXx94ACABBENAHCIAD-AAAAAAACAAxAAAAgAIAwgAgAAAAEAgQAAAAAEAYQAQAAAACA"
                "AAABAAA.IBAgAAAgAIAwgAgAAAAEAAAACA.QAagAQAgAIAwgA.cAAAAAAAITg=")
    assert tc.vendor_consents.ids() == [23, 37, 47, 48, 53, 65, 98]


@pytest.mark.parametrize(("string", "vendors"), [
    ("COwBOpCOwBOpCLqAAAENAPCAAAAAAAAAAAAAFfwAYFfAV-BVkAGBVYFWAAA", [702, 703]),
    ("COwBOpCOwBOpCLqAAAENAPCAAAAAAAAAAAAAFfwAQFfgUbABAUaAAA", [703]),
])
def test_iab_example_range_vendors(string: str, vendors: list[int]) -> None:
    assert decode(string).vendor_consents.ids() == vendors


def test_iab_example_range_legitimate_interest() -> None:
    assert decode("COv__-wOv__-wC2AAAENAPCgAAAAAAAAAAAAA_wAQA_gEBABAEAAAA").vendor_li.ids() == [128]


def test_iab_example_purposes_one_and_two() -> None:
    assert {1, 2} <= decode("COwxsONOwxsONKpAAAENAdCAAMAAAAAAAAAAAAAAAAAA").purposes_consent


# --- v2.2 strings built field by field ------------------------------------------------

def test_v22_string_round_trip() -> None:
    s = tc_string(purposes=[1, 7], purposes_li=[2], vendors=[1, GOOGLE], vendors_li=[9],
                  restrictions=[(7, 0, [(20, 30)])], policy_version=5)
    tc = decode(s)
    assert tc.policy_version == 5 and tc.consent_language == "DE"
    assert tc.purposes_consent == {1, 7} and tc.purposes_li == {2}
    assert tc.vendor_consents.ids() == [1, GOOGLE] and tc.vendor_li.ids() == [9]
    assert tc.restricted(7, 25) and not tc.restricted(7, 31) and not tc.restricted(1, 25)


@settings(max_examples=150, deadline=None)
@given(purposes=st.sets(st.integers(1, 24)), li=st.sets(st.integers(1, 24)),
       vendors=st.sets(st.integers(1, 3000), max_size=40), use_ranges=st.booleans())
def test_any_built_string_decodes_to_what_was_put_in(purposes: set[int], li: set[int],
                                                     vendors: set[int],
                                                     use_ranges: bool) -> None:
    ranges = [(v, v) for v in sorted(vendors)] if use_ranges else None
    tc = decode(tc_string(purposes=purposes, purposes_li=li, vendors=sorted(vendors),
                          vendor_ranges=ranges))
    assert tc.purposes_consent == purposes and tc.purposes_li == li
    assert all(v in tc.vendor_consents for v in vendors)
    assert [v for v in (1, 2, 755, 2999, 3000, 3001) if v in tc.vendor_consents] == \
        [v for v in (1, 2, 755, 2999, 3000, 3001) if v in vendors]


def test_overlapping_and_adjacent_ranges_merge() -> None:
    tc = decode(tc_string(purposes=[1], vendor_ranges=[(50, 60), (1, 10), (5, 20), (21, 21),
                                                       (40, 45)]))
    assert tc.vendor_consents.ranges == ((1, 21), (40, 45), (50, 60))
    assert [v for v in (1, 21, 22, 39, 40, 46, 50, 60, 61) if v in tc.vendor_consents] == \
        [1, 21, 40, 50, 60]


def test_a_huge_range_is_one_entry_not_65535_ids() -> None:
    tc = decode(tc_string(purposes=[1], vendor_ranges=[(1, 65535)]))
    assert 65535 in tc.vendor_consents and 1 in tc.vendor_consents
    assert tc.vendor_consents.ranges == ((1, 65535),)


# --- hostile strings: TcfError, never anything else -----------------------------------

VALID = tc_string(purposes=ALL_PURPOSES, vendors=[GOOGLE, 1000], vendors_li=[5])


@pytest.mark.parametrize("bad", [
    "", "C", "not base64!", "COtybn4PA_zT4KjA+BENAPCIAEBAAECAAIAAAAAAAAAA",
    "=", "A" * (MAX_TC_STRING + 1), "BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA",   # a v1 string
    VALID[:20], VALID[:-4],
])
def test_malformed_strings_are_refused(bad: str) -> None:
    with pytest.raises(TcfError):
        decode(bad)


def test_range_past_max_vendor_or_reversed_is_refused() -> None:
    for ranges, top in ([(10, 5)], 20), ([(5, 50)], 20), ([(0, 3)], 20):
        w = BitWriter()
        w.int(2, 6).int(1, 36).int(1, 36).int(1, 12).int(1, 12).int(1, 6).letters("EN")
        w.int(1, 12).int(4, 6).flag(False).flag(False).int(0, 12).ids([1], 24).int(0, 24)
        w.flag(False).letters("DE").int(top, 16).flag(True).int(len(ranges), 12)
        for lo, hi in ranges:
            w.flag(True).int(lo, 16).int(hi, 16)
        w.int(0, 16).flag(False).int(0, 12)
        with pytest.raises(TcfError):
            decode(w.encode())


def test_a_bitfield_claiming_more_vendors_than_the_string_holds_is_refused() -> None:
    w = BitWriter()
    w.int(2, 6).int(1, 36).int(1, 36).int(1, 12).int(1, 12).int(1, 6).letters("EN")
    w.int(1, 12).int(4, 6).flag(False).flag(False).int(0, 12).ids([1], 24).int(0, 24)
    w.flag(False).letters("DE").int(65535, 16).flag(False).int(0, 64)
    with pytest.raises(TcfError):
        decode(w.encode())


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_decodes_or_raises_tcf_error(text: str) -> None:
    try:
        decode(text)
    except TcfError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_as_base64url_decode_or_raise_tcf_error(data: bytes) -> None:
    s = base64.urlsafe_b64encode(b"\x08" + data).decode().rstrip("=")    # version 2 first
    try:
        decode(s)
    except TcfError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(VALID)), st.integers(0, 5), st.sampled_from("AQgw_-"))
def test_truncated_or_altered_valid_strings(cut: int, pos: int, ch: str) -> None:
    for s in (VALID[:cut], VALID[:pos] + ch + VALID[pos + 1:]):
        try:
            decode(s)
        except TcfError:
            pass


# --- decisions -------------------------------------------------------------------------

TCF = Consent(ConsentSection(tcf=True))
ADS = Sink("gads", "http", tcf_vendor=GOOGLE)
PLAIN = Sink("talroo", "talroo")
HOOK = Sink("ats", "webhook", marketing=False, tcf_vendor=GOOGLE)


def decide(s: str | None, *, gpc: bool = False, section: Consent = TCF) -> ConsentState:
    return section.decide(None, gpc, s)


def test_full_consent_allows_everything_and_grants_consent_mode() -> None:
    state = decide(tc_string(purposes=ALL_PURPOSES, vendors=[GOOGLE]))
    assert state.marketing and state.storage
    assert state.allows(ADS) and state.allows(PLAIN)
    assert state.consent_mode() == {"ad_storage": "GRANTED", "ad_user_data": "GRANTED",
                                    "ad_personalization": "GRANTED"}


def test_no_purpose_one_means_no_marketing_and_no_storage() -> None:
    state = decide(tc_string(purposes=[2, 3, 4, 7], vendors=[GOOGLE]))
    assert not state.marketing and not state.storage
    assert not state.allows(ADS) and not state.allows(PLAIN)
    assert state.allows(HOOK)            # not marketing: consent does not apply
    assert set(state.consent_mode().values()) == {"DENIED"}


def test_vendor_needs_its_own_consent_and_purpose_seven() -> None:
    without_vendor = decide(tc_string(purposes=ALL_PURPOSES, vendors=[1]))
    assert without_vendor.marketing and without_vendor.allows(PLAIN)
    assert not without_vendor.allows(ADS)
    without_p7 = decide(tc_string(purposes=[1, 3, 4], vendors=[GOOGLE]))
    assert not without_p7.allows(ADS)
    assert without_p7.consent_mode() == {"ad_storage": "GRANTED", "ad_user_data": "DENIED",
                                         "ad_personalization": "GRANTED"}
    by_li = decide(tc_string(purposes=[1], purposes_li=[7], vendors=[GOOGLE],
                             vendors_li=[GOOGLE]))
    assert by_li.allows(ADS)
    li_without_vendor_li = decide(tc_string(purposes=[1], purposes_li=[7], vendors=[GOOGLE]))
    assert not li_without_vendor_li.allows(ADS)


def test_publisher_restriction_not_allowed_wins() -> None:
    state = decide(tc_string(purposes=ALL_PURPOSES, vendors=[GOOGLE],
                             restrictions=[(7, 0, [(GOOGLE, GOOGLE)])]))
    assert state.marketing and not state.allows(ADS)


def test_unreadable_string_is_no_consent_and_flagged() -> None:
    state = decide("COtybn4PA_zT4K!!")
    assert state.tcf_invalid and not state.marketing and not state.storage


def test_gpc_wins_over_a_consenting_string() -> None:
    state = decide(tc_string(purposes=ALL_PURPOSES, vendors=[GOOGLE]), gpc=True)
    assert not state.marketing and state.storage


def test_without_a_string_the_consent_cookie_rules_apply() -> None:
    assert decide(None).marketing                    # required = false
    strict = Consent(ConsentSection(tcf=True, required=True))
    assert not strict.decide(None, False, None).marketing
    assert strict.decide("marketing", False, None).marketing


def test_tcf_off_ignores_the_string() -> None:
    off = Consent(ConsentSection())
    state = off.decide(None, False, tc_string(purposes=[]))
    assert state.marketing and state.tcf is None


def test_routing_suppresses_per_sink_from_the_consent_state() -> None:
    event = Event("ApplicationCompleted", click_ids={"tlr_sid": "x"})
    no_vendor = decide(tc_string(purposes=ALL_PURPOSES, vendors=[1]))
    assert route(event, [ADS, PLAIN, HOOK], consent=no_vendor) == {
        "gads": Outcome.SUPPRESSED, "talroo": Outcome.QUEUED, "ats": Outcome.QUEUED}
    declined = decide(tc_string(purposes=[2]))
    assert route(event, [ADS, PLAIN, HOOK], consent=declined) == {
        "gads": Outcome.SUPPRESSED, "talroo": Outcome.SUPPRESSED, "ats": Outcome.QUEUED}
    assert route(event, [ADS, PLAIN], consent=True) == {
        "gads": Outcome.QUEUED, "talroo": Outcome.QUEUED}


def test_consent_mode_survives_the_outbox_json() -> None:
    mode = decide(tc_string(purposes=[1, 7], vendors=[GOOGLE])).event_signals()
    assert mode == {"ad_user_data": "GRANTED", "ad_personalization": "DENIED"}
    event = Event("ApplicationCompleted", consent_mode=mode)
    assert Event.from_json(event.to_json()).consent_mode == mode
    assert Event.from_dict({"name": "Hire"}).consent_mode == {}      # rows from before


def test_event_signals_claim_nothing_when_nobody_asked() -> None:
    assert decide(None).event_signals() == {}                         # not required
    assert decide(None, gpc=True).event_signals() == {
        "ad_user_data": "DENIED", "ad_personalization": "DENIED"}
    strict = Consent(ConsentSection(required=True))
    assert strict.decide("all", False).event_signals() == {
        "ad_user_data": "GRANTED", "ad_personalization": "GRANTED"}
    assert strict.decide(None, False).event_signals() == {
        "ad_user_data": "DENIED", "ad_personalization": "DENIED"}
