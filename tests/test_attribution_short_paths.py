"""`Attribution.on_request` takes short paths (no Cookie header and no query; a Cookie
header read once and remembered; Meta's builder skipped when it has nothing to
change). `Straight` below is attribution as one straight path, every step taken for
every request: for any request and configuration the two give equal `Visit`s, with
the randomness pinned (visitor ids, Meta's random and clock)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from capi_param_builder import ParamBuilder, param_builder  # type: ignore[import-untyped]
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from proxy.attribution import visit as visit_module
from proxy.attribution.clickids import ClickId, scan_query, valid_value
from proxy.attribution.consent import TCF_COOKIE, Consent
from proxy.attribution.cookies import (
    ATTR_COOKIE,
    FBC_COOKIE,
    FBP_COOKIE,
    PREVIEW_COOKIE,
    TTP_COOKIE,
    VISITOR_COOKIE,
    VISITOR_ID,
    AttrCodec,
    max_age_for,
    parse_cookie_header,
    set_cookie,
)
from proxy.attribution.fbparams import (
    _HOSTNAME,
    FB_MAX_AGE,
    FbParams,
    _Fixed,
    _hostname,
    valid_fbc,
    valid_fbp,
)
from proxy.attribution.jar import MEMO_ENTRIES, JarReader
from proxy.attribution.preview import PreviewCodec
from proxy.attribution.visit import Attribution, Visit, _referer_fbclid
from proxy.config.model import AttributionSection, ConsentSection
from tests.tcf_strings import tc_string

KEY, OLD = b"s" * 32, b"o" * 32
T0 = 1_700_000_000.0
META_MS = 1_700_000_123.456          # Meta's builder's clock, pinned
UUID = "123e4567-e89b-12d3-a456-426614174000"
VID = "4f1c2a9e8b7d4c3f9a1b2c3d4e5f6a7b"


class Straight:
    """Attribution with no step skipped: the whole Cookie header parsed, consent
    decided, the query scanned and Meta's builder asked whenever it could set a cookie."""

    def __init__(self, attribution: AttributionSection, consent: ConsentSection,
                 secret: bytes, previous: tuple[bytes, ...], ids: Iterator[str]) -> None:
        self.params = frozenset(attribution.params)
        self.strip = attribution.strip
        self.max_age = max_age_for(attribution.cookie_days)
        self.codec = AttrCodec(secret, previous)
        self.consent = Consent(consent)
        self.preview = PreviewCodec(secret, previous)
        self.domains = FbParams()
        self.builders: dict[str, tuple[ParamBuilder, str | None, str]] = {}
        self.wanted = frozenset(
            {VISITOR_COOKIE, ATTR_COOKIE, FBC_COOKIE, FBP_COOKIE, TTP_COOKIE, PREVIEW_COOKIE,
             consent.cookie} | ({TCF_COOKIE} if consent.tcf else set()))
        self.ids = ids

    def fb(self, host: str, fbclid: str | None, fbc_cookie: str | None,
           fbp_cookie: str | None) -> tuple[str | None, str | None, list[tuple[str, str]],
                                            str | None]:
        fbc, fbp = valid_fbc(fbc_cookie), valid_fbp(fbp_cookie)
        if fbclid is None and fbp is not None:
            return fbc, fbp, [], None
        if host not in self.builders:
            domain = self.domains.cookie_domain(host)
            name = _hostname(host)
            if domain is None and not _HOSTNAME.fullmatch(name):
                name = "localhost"
            self.builders[host] = (ParamBuilder(_Fixed(domain or name)), domain,
                                   name or "localhost")
        builder, domain, name = self.builders[host]
        cookies = {k: v for k, v in ((FBC_COOKIE, fbc), (FBP_COOKIE, fbp)) if v}
        queries = {"fbclid": [fbclid]} if fbclid else {}
        found = builder.process_request(name, queries, cookies, None)
        fbc, fbp = valid_fbc(builder.get_fbc()), valid_fbp(builder.get_fbp())
        to_set = sorted((s.name, s.value) for s in found
                        if s.name == FBC_COOKIE and fbc == s.value
                        or s.name == FBP_COOKIE and fbp == s.value)
        return fbc, fbp, to_set, domain

    def on_request(self, *, raw_query: str, cookie_header: str | None, host: str,
                   secure: bool, gpc: bool, referer: str | None, now: float) -> Visit:
        cookies = parse_cookie_header(cookie_header, self.wanted)
        set_cookies: list[str] = []
        state = self.consent.decide(cookies.get(self.consent.cookie), gpc,
                                    cookies.get(TCF_COOKIE))
        visitor_id = cookies.get(VISITOR_COOKIE)
        if visitor_id is not None and not VISITOR_ID.fullmatch(visitor_id):
            visitor_id = None
        held: dict[str, ClickId] = {}
        cookie_rejected = set_visitor = resign = False
        attr_raw = cookies.get(ATTR_COOKIE)
        if attr_raw and not state.storage:
            set_cookies.append(set_cookie(ATTR_COOKIE, "", max_age=0, secure=secure,
                                          http_only=True))
        elif attr_raw:
            opened = self.codec.open(attr_raw)
            if opened is None or (visitor_id is not None and opened.visitor_id != visitor_id):
                cookie_rejected = True
            else:
                if visitor_id is None:
                    visitor_id, set_visitor = opened.visitor_id, True
                held = {p: c for p, c in opened.click_ids.items()
                        if p in self.params and c.seen_at >= now - self.max_age}
                resign = opened.stale
        new_visitor = visitor_id is None
        if visitor_id is None:
            visitor_id, set_visitor = next(self.ids), True
        if set_visitor:
            set_cookies.append(set_cookie(VISITOR_COOKIE, visitor_id, max_age=self.max_age,
                                          secure=secure, http_only=False))
        scan = scan_query(raw_query, self.params, self.strip)
        click_ids = held
        new_clicks: list[str] = []
        for param, value in scan.found.items():
            old = click_ids.get(param)
            if old is None or old.value != value:
                click_ids[param] = ClickId(value, int(now * 1000) / 1000)
                new_clicks.append(param)
        if (new_clicks or resign) and state.storage:
            set_cookies.append(set_cookie(ATTR_COOKIE, self.codec.encode(visitor_id, click_ids),
                                          max_age=self.max_age, secure=secure, http_only=True))
        elif cookie_rejected:
            set_cookies.append(set_cookie(ATTR_COOKIE, "", max_age=0, secure=secure,
                                          http_only=True))
        fbc = fbp = None
        if state.marketing:
            fbc_cookie = cookies.get(FBC_COOKIE)
            fbclid = scan.found.get("fbclid") or _referer_fbclid(referer)
            if fbclid is None and not fbc_cookie and "fbclid" in click_ids:
                fbclid = click_ids["fbclid"].value
            fbc, fbp, to_set, domain = self.fb(host, fbclid, fbc_cookie, cookies.get(FBP_COOKIE))
            set_cookies += [set_cookie(n, v, max_age=FB_MAX_AGE, secure=secure,
                                       http_only=False, domain=domain) for n, v in to_set]
        ttp = cookies.get(TTP_COOKIE)
        return Visit(
            links_clicked_id=visitor_id, new_visitor=new_visitor, click_ids=click_ids,
            captured=list(scan.found), rejected=scan.rejected, cookie_rejected=cookie_rejected,
            consent=state.marketing, fbc=fbc, fbp=fbp, set_cookies=set_cookies,
            upstream_query=scan.upstream_query, new_clicks=new_clicks, consent_state=state,
            ttp=ttp if state.storage and ttp and valid_value(TTP_COOKIE, ttp) else None,
            preview=self.preview.valid(cookies.get(PREVIEW_COOKIE), now))


def _ids() -> Iterator[str]:
    return (f"{n:032x}" for n in itertools.count(1))


def _pinned(attribution: Attribution | Straight, request: dict[str, Any], seed: int) -> Visit:
    """One request, Meta's builder's random seeded (its clock is `meta_clock`)."""
    random.seed(seed)
    return attribution.on_request(**request)


# -- what requests carry ------------------------------------------------------------------

_codec, _old_codec = AttrCodec(KEY), AttrCodec(OLD)
_clicks = {"gclid": ClickId("G1", T0 - 10), "fbclid": ClickId("IwAR-held", T0 - 5),
           "msclkid": ClickId("M", T0 - 200 * 86400)}
ATTRS = [_codec.encode(VID, _clicks), _codec.encode("f" * 32, {"gclid": ClickId("G", T0)}),
         _old_codec.encode(VID, _clicks), AttrCodec(b"x" * 32).encode(VID, _clicks),
         _codec.encode(VID, _clicks)[:-3] + "AAA", "junk", ""]
PREVIEWS = [PreviewCodec(KEY).encode(int(T0) + 60), PreviewCodec(KEY).encode(int(T0) - 60),
            PreviewCodec(OLD).encode(int(T0) + 60), "1.x"]
TC = [tc_string(purposes=range(1, 12), vendors=[755]), tc_string(purposes=[2, 7]), "%%bad"]
_values = {
    VISITOR_COOKIE: [VID, "f" * 32, "short", "a b", "é" * 20, '"' + VID + '"'],
    ATTR_COOKIE: ATTRS,
    FBC_COOKIE: ["fb.1.1700000000000.IwAR-old", "fb.1.1700000000000.IwAR-old.AQICAQMC",
                 "fb.1.1.<x>", "fb.\u0661.1.x", ""],
    FBP_COOKIE: ["fb.1.1763800000000.1234567890", "fb.1.1700000000000.1.AQIAAQMC",
                 "fb.1.1.1.x", "fb.1.\u0661.1", "", "nope"],
    TTP_COOKIE: ["2F7h37YkS1j57AYSKTI7IHhJPYH", "bad%0a", ""],
    PREVIEW_COOKIE: PREVIEWS,
    "cookie_consent": ["all", "necessary", "marketing,stats", ""],
    TCF_COOKIE: TC,
    "other": ["1", "x=y", ""],
}
_pair = st.sampled_from(sorted(_values)).flatmap(
    lambda name: st.tuples(st.sampled_from([name, " " + name, name + " "]),
                           st.sampled_from(_values[name]) | st.text(max_size=8)))
# Each cookie present or not, independently (so rare combinations come up), or pairs
# in any order, repeated, with spaces; or any text at all.
_jar = st.fixed_dictionaries({}, optional={
    name: st.sampled_from(values) for name, values in _values.items()}).map(
        lambda jar: "; ".join(f"{n}={v}" for n, v in jar.items()))
_cookie_header = st.one_of(
    _jar, _jar, _jar, st.none(), st.just(""), st.text(max_size=40),
    st.lists(_pair, max_size=7).map(lambda pairs: "; ".join(f"{n}={v}" for n, v in pairs)))
_segment = st.sampled_from([
    "gclid=G1", "gclid=G2", "fbclid=IwAR-new", "fbclid=IwAR-held", "fbclid=bad%0A",
    f"tlr_sid={UUID}", "tlr_sid=nope", "msclkid=M", "a=1", "", "gclid", "%67clid=G3"])
_query = st.lists(_segment, max_size=5).map("&".join) | st.text(max_size=20)
_referer = st.none() | st.just("") | st.sampled_from([
    "https://x.example/?fbclid=IwAR-ref", "https://x.example/p?a=1&fbclid=bad%0a#f",
    "https://x.example/"])
_host = st.sampled_from(["careers.acme.example", "acme.co.uk:8443", "127.0.0.1:8080",
                         "localhost", "[::1]:8080", "", "evil\r\nx"])
_consent = st.sampled_from([
    ConsentSection(), ConsentSection(required=True), ConsentSection(honor_gpc=False),
    ConsentSection(tcf=True), ConsentSection(required=True, tcf=True),
    ConsentSection(required=True, cookie=FBP_COOKIE)])
_attribution = st.sampled_from([
    AttributionSection(), AttributionSection(strip=False),
    AttributionSection(params=("gclid", "tlr_sid"), cookie_days=30)])


@pytest.fixture
def meta_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(param_builder, "time", SimpleNamespace(time=lambda: META_MS))


def _pair_of(attribution: AttributionSection, consent: ConsentSection,
             monkeypatch: pytest.MonkeyPatch) -> tuple[Attribution, Straight]:
    ids = _ids()
    monkeypatch.setattr(visit_module, "new_visitor_id", lambda: next(ids))
    return (Attribution(attribution, consent, KEY, (OLD,)),
            Straight(attribution, consent, KEY, (OLD,), _ids()))


@settings(max_examples=600, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(attribution=_attribution, consent=_consent, query=_query, cookie=_cookie_header,
       host=_host, referer=_referer, gpc=st.booleans(), secure=st.booleans(),
       seed=st.integers(0, 2**32))
@example(attribution=AttributionSection(), consent=ConsentSection(tcf=True), query="",
         cookie=f"{TTP_COOKIE}=2F7h37YkS1j57AYSKTI7IHhJPYH; {TCF_COOKIE}={TC[1]}",
         host="careers.acme.example", referer=None, gpc=False, secure=True, seed=1)
@example(attribution=AttributionSection(), consent=ConsentSection(), query="a=1",
         cookie=f"{VISITOR_COOKIE}={VID}; {ATTR_COOKIE}={ATTRS[0]}; {FBC_COOKIE}=fb.1.1.<x>",
         host="careers.acme.example", referer=None, gpc=False, secure=True, seed=2)
@example(attribution=AttributionSection(), consent=ConsentSection(), query="",
         cookie=f"{VISITOR_COOKIE}={VID}; {ATTR_COOKIE}={ATTRS[0]}; {FBC_COOKIE}=",
         host="careers.acme.example", referer=None, gpc=False, secure=True, seed=2)
@example(attribution=AttributionSection(), consent=ConsentSection(), query="fbclid=IwAR-new",
         cookie=f"{VISITOR_COOKIE}={VID}; {FBP_COOKIE}=fb.1.1763800000000.1234567890",
         host="careers.acme.example", referer=None, gpc=False, secure=False, seed=3)
def test_short_paths_give_what_the_straight_path_gives(
        meta_clock: None, attribution: AttributionSection, consent: ConsentSection,
        query: str, cookie: str | None, host: str, referer: str | None, gpc: bool,
        secure: bool, seed: int) -> None:
    with pytest.MonkeyPatch.context() as mp:
        fast, straight = _pair_of(attribution, consent, mp)
        request = dict(raw_query=query, cookie_header=cookie, host=host, secure=secure,
                       gpc=gpc, referer=referer, now=T0)
        expected = _pinned(straight, request, seed)
        assert _pinned(fast, request, seed) == expected
        # Again: the Cookie header is now remembered, the builder's host known.
        expected = _pinned(straight, request, seed + 1)
        assert _pinned(fast, request, seed + 1) == expected


@settings(max_examples=200, deadline=None)
@given(cookie=_cookie_header, consent=_consent)
def test_a_remembered_header_reads_as_a_fresh_one(cookie: str | None,
                                                  consent: ConsentSection) -> None:
    jars = JarReader(consent.cookie, consent.tcf)
    first = jars.read(cookie)
    assert jars.read(cookie) == first
    if cookie:
        assert jars.parse(cookie) == first


def test_the_memo_stays_bounded() -> None:
    jars = JarReader("cookie_consent", False)
    for n in range(3 * MEMO_ENTRIES):
        jars.read(f"{VISITOR_COOKIE}={n:032x}")
    assert len(jars._memo) <= MEMO_ENTRIES
    jars.read(f"{VISITOR_COOKIE}={VID}; x={'a' * 5000}")     # too long to keep: read, not kept
    assert all(len(h) <= 4096 for h in jars._memo)


def test_new_and_returning_visitors_as_the_benchmark_sends_them(meta_clock: None,
                                                               monkeypatch) -> None:
    fast, straight = _pair_of(AttributionSection(), ConsentSection(), monkeypatch)
    for cookie in (None, f"{VISITOR_COOKIE}={VID}; _fbp=fb.1.1763800000000.1234567890"):
        for _ in range(3):
            request = dict(raw_query="", cookie_header=cookie, host="127.0.0.1:8080",
                           secure=False, gpc=False, referer=None, now=T0)
            assert (_pinned(fast, request, 7)
                    == _pinned(straight, request, 7))
