"""The attribution façade: visitor id, signed click-id cookie, _fbc/_fbp, consent."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.attribution.cookies import AttrCodec
from proxy.attribution.visit import Attribution, ClickId, Visit
from proxy.config.model import AttributionSection, ConsentSection

KEY = b"s" * 32
UUID = "123e4567-e89b-12d3-a456-426614174000"
HOST = "careers.acme.example"
T0 = 1_700_000_000.0


def make(consent: ConsentSection | None = None, **attribution) -> Attribution:
    return Attribution(AttributionSection(**attribution), consent or ConsentSection(), KEY)


def cookies_of(visit: Visit) -> dict[str, str]:
    """Set-Cookie headers by cookie name (the whole header value)."""
    return {h.partition("=")[0]: h for h in visit.set_cookies}


def jar(*visits: Visit, extra: str = "") -> str:
    """A browser's Cookie header after receiving these visits' Set-Cookies."""
    values: dict[str, str] = {}
    for v in visits:
        for h in v.set_cookies:
            name, _, rest = h.partition("=")
            value = rest.partition(";")[0]
            if "Max-Age=0" in h:
                values.pop(name, None)
            else:
                values[name] = value
    pairs = [f"{k}={v}" for k, v in values.items()]
    return "; ".join(pairs + ([extra] if extra else []))


def visit(a: Attribution, query: str = "", cookie: str | None = None, *, host: str = HOST,
          secure: bool = True, gpc: bool = False, referer: str | None = None,
          now: float = T0) -> Visit:
    return a.on_request(raw_query=query, cookie_header=cookie, host=host, secure=secure, gpc=gpc,
                        referer=referer, now=now)


# -- linksClickedId ---------------------------------------------------------------------

def test_new_visitor_gets_an_id_cookie():
    v = visit(make(), secure=False)
    assert v.new_visitor and re.fullmatch(r"[0-9a-f]{32}", v.links_clicked_id)
    assert cookies_of(v)["linksClickedId"] == (
        f"linksClickedId={v.links_clicked_id}; Max-Age={90 * 86400}; Path=/; SameSite=Lax")


def test_ids_are_random():
    a = make()
    assert len({visit(a).links_clicked_id for _ in range(50)}) == 50


def test_secure_only_on_https():
    https = visit(make(), "gclid=G", secure=True)
    http = visit(make(), "gclid=G", secure=False)
    assert all("; Secure" in h for h in https.set_cookies)
    assert not any("Secure" in h for h in http.set_cookies)


def test_repeat_visitor_keeps_id_and_gets_no_cookies():
    a = make()
    first = visit(a)
    again = visit(a, "page=2", jar(first))
    assert not again.new_visitor and again.links_clicked_id == first.links_clicked_id
    assert again.set_cookies == []


@pytest.mark.parametrize("bad", ["", "short", "x" * 65, "a b c d e f g h i j", "é" * 20, '"q"'])
def test_malformed_id_is_replaced(bad):
    v = visit(make(), "", f"linksClickedId={bad}")
    assert v.new_visitor and v.links_clicked_id != bad and "linksClickedId" in cookies_of(v)


def test_cookie_days_sets_max_age_capped_at_400_days():
    assert f"Max-Age={7 * 86400};" in cookies_of(visit(make(cookie_days=7)))["linksClickedId"]
    long = visit(make(cookie_days=1000), "gclid=G")
    assert all(f"Max-Age={400 * 86400};" in h for h in long.set_cookies
               if h.startswith(("linksClickedId", "ce_attr")))


# -- click ids ----------------------------------------------------------------------------

def test_capture_sets_signed_httponly_cookie_and_strips():
    v = visit(make(), f"a=%27&tlr_sid={UUID}&b=1")
    assert v.captured == ["tlr_sid"] and v.rejected == []
    assert v.click_ids == {"tlr_sid": ClickId(UUID, T0)}
    assert v.upstream_query == "a=%27&b=1"
    attr = cookies_of(v)["ce_attr"]
    assert attr.endswith(f"; Max-Age={90 * 86400}; Path=/; SameSite=Lax; Secure; HttpOnly")
    assert UUID not in attr      # encoded, not reflected verbatim


def test_invalid_click_id_is_rejected_and_not_reflected():
    v = visit(make(), "tlr_sid=%0D%0ASet-Cookie:%20x&gclid=%3Cscript%3E&a=1")
    assert v.captured == [] and sorted(v.rejected) == ["gclid", "tlr_sid"]
    assert v.upstream_query is None
    assert "ce_attr" not in cookies_of(v)
    assert not any("script" in h or "Set-Cookie" in h for h in v.set_cookies)


def test_strip_false_keeps_query():
    v = visit(make(strip=False), "gclid=G&a=1")
    assert v.captured == ["gclid"] and v.upstream_query is None


def test_several_sources_are_held_at_once_and_newest_replaces():
    a = make()
    v1 = visit(a, f"tlr_sid={UUID}", now=T0)
    v2 = visit(a, "gclid=G1", jar(v1), now=T0 + 10)
    v3 = visit(a, "gclid=G2&fbclid=F", jar(v1, v2), now=T0 + 20)
    assert v3.click_ids == {"tlr_sid": ClickId(UUID, T0), "gclid": ClickId("G2", T0 + 20),
                            "fbclid": ClickId("F", T0 + 20)}
    later = visit(a, "", jar(v1, v2, v3), now=T0 + 30)
    assert later.click_ids == v3.click_ids and later.set_cookies == []


def test_reloading_the_landing_url_keeps_first_time_and_sets_nothing():
    a = make()
    v1 = visit(a, "gclid=G", now=T0)
    v2 = visit(a, "gclid=G", jar(v1), now=T0 + 60)
    assert v2.click_ids["gclid"].seen_at == T0
    assert v2.captured == ["gclid"] and v2.set_cookies == [] and v2.upstream_query == ""
    # Found in the URL again, but not a new click: the metric counts v1's only.
    assert v1.new_clicks == ["gclid"] and v2.new_clicks == []
    v3 = visit(a, "gclid=G2&tlr_sid=" + UUID, jar(v1), now=T0 + 90)
    assert sorted(v3.new_clicks) == ["gclid", "tlr_sid"]


def test_expired_click_ids_are_dropped():
    a = make(cookie_days=1)
    v1 = visit(a, "gclid=G", now=T0)
    assert visit(a, "", jar(v1), now=T0 + 86399).click_ids
    assert visit(a, "", jar(v1), now=T0 + 86401).click_ids == {}


def test_param_removed_from_config_is_dropped():
    v1 = visit(make(), "gclid=G&msclkid=M")
    v2 = visit(make(params=("gclid",)), "", jar(v1))
    assert v2.click_ids == {"gclid": ClickId("G", T0)}


# -- the signed cookie refused ------------------------------------------------------------

def _tampered(v: Visit) -> str:
    cookie = jar(v)
    return cookie.replace("ce_attr=e", "ce_attr=f")


def test_tampered_cookie_is_ignored_and_deleted():
    a = make()
    v1 = visit(a, "gclid=G")
    v2 = visit(a, "", _tampered(v1))
    assert v2.cookie_rejected and v2.click_ids == {}
    assert v2.links_clicked_id == v1.links_clicked_id
    assert cookies_of(v2)["ce_attr"].startswith("ce_attr=; Max-Age=0;")


def test_foreign_key_cookie_is_ignored():
    other = Attribution(AttributionSection(), ConsentSection(), b"another key")
    v1 = visit(other, "gclid=G")
    v2 = visit(make(), "gclid=NEW", jar(v1))
    assert v2.cookie_rejected and v2.click_ids == {"gclid": ClickId("NEW", T0)}
    assert cookies_of(v2)["ce_attr"].startswith("ce_attr=ey")   # replaced, not deleted


def test_cookie_copied_to_another_visitor_is_ignored():
    a = make()
    victim = visit(a, "gclid=VICTIM")
    attr = jar(victim).split("; ")[1]
    v = visit(a, "", f"linksClickedId={'f' * 32}; {attr}")
    assert v.cookie_rejected and v.click_ids == {} and v.links_clicked_id == "f" * 32


def test_cookie_without_id_cookie_restores_the_id():
    a = make()
    v1 = visit(a, "gclid=G")
    attr = next(p for p in jar(v1).split("; ") if p.startswith("ce_attr="))
    v2 = visit(a, "", attr)
    assert not v2.new_visitor and v2.links_clicked_id == v1.links_clicked_id
    assert v2.click_ids == v1.click_ids
    assert cookies_of(v2)["linksClickedId"].startswith(f"linksClickedId={v1.links_clicked_id};")


def test_oversize_cookie_is_ignored():
    v = visit(make(), "", "ce_attr=" + "A" * 6000)
    assert v.cookie_rejected and v.click_ids == {}


# -- _fbc / _fbp ----------------------------------------------------------------------------

FBCLID = "IwAR0xYz_AbC-dEf"


def test_fbclid_becomes_fbc_byte_exact_and_fbp_is_set():
    before = int(time.time() * 1000)
    v = visit(make(), f"fbclid={FBCLID}")
    after = int(time.time() * 1000)
    m = re.fullmatch(r"fb\.1\.(\d+)\.(.+)\.([A-Za-z0-9_-]{8})", v.fbc)
    assert m and m.group(2) == FBCLID and before <= int(m.group(1)) <= after
    assert re.fullmatch(r"fb\.1\.\d{13}\.\d+\.[A-Za-z0-9_-]{8}", v.fbp)
    c = cookies_of(v)
    assert c["_fbc"] == (f"_fbc={v.fbc}; Max-Age={90 * 86400}; Path=/; Domain=acme.example;"
                         " SameSite=Lax; Secure")
    assert c["_fbp"].startswith(f"_fbp={v.fbp}; Max-Age={90 * 86400}; Path=/; Domain=acme.example")
    assert "HttpOnly" not in c["_fbc"] + c["_fbp"]      # Meta's pixel reads them
    assert v.click_ids["fbclid"].value == FBCLID


def test_fbp_only_when_missing_and_fbc_only_for_a_new_fbclid():
    a = make()
    v1 = visit(a, f"fbclid={FBCLID}")
    v2 = visit(a, "", jar(v1))
    assert (v2.fbc, v2.fbp, v2.set_cookies) == (v1.fbc, v1.fbp, [])
    v3 = visit(a, f"fbclid={FBCLID}", jar(v1))
    assert "_fbc" not in cookies_of(v3) and v3.fbc == v1.fbc
    v4 = visit(a, "fbclid=IwNEWER", jar(v1))
    assert set(cookies_of(v4)) == {"_fbc", "ce_attr"} and ".IwNEWER." in v4.fbc
    assert v4.fbp == v1.fbp


@pytest.mark.parametrize("host, domain, index", [
    ("careers.acme.co.uk", "acme.co.uk", 2),
    ("acme.co.uk:8443", "acme.co.uk", 2),
    ("CAREERS.Acme.Example.", "acme.example", 1),
    ("localhost:8080", None, 0),
    ("127.0.0.1:8080", None, 0),
    ("[::1]:8080", None, 0),
    ("evil\r\nSet-Cookie: x", None, 0),
])
def test_cookie_domain_is_the_registrable_domain(host, domain, index):
    v = visit(make(), "fbclid=F", host=host)
    fbc = cookies_of(v)["_fbc"]
    assert (f"; Domain={domain};" in fbc) if domain else ("Domain" not in fbc)
    assert v.fbc.startswith(f"fb.{index}.")


def test_invalid_fbclid_sets_no_fbc():
    v = visit(make(), "fbclid=bad%0Avalue")
    assert v.fbc is None and "_fbc" not in cookies_of(v) and v.fbp


def test_fbclid_from_referer():
    v = visit(make(), "", referer=f"https://{HOST}/jobs?x=1&fbclid={FBCLID}#top")
    assert v.fbc and f".{FBCLID}." in v.fbc and v.click_ids == {}
    hostile = visit(make(), "", referer="https://x/?fbclid=a%0D%0Ab")
    assert hostile.fbc is None


def test_hostile_fb_cookies_are_not_echoed():
    v = visit(make(), "", '_fbp=fb.1.1.1";x; _fbc=fb.1.2.<script>')
    assert v.fbc is None and v.fbp and re.fullmatch(r"fb\.1\.\d+\.\d+\.\S{8}", v.fbp)
    assert "script" not in " ".join(v.set_cookies)


def test_fb_cookies_with_non_ascii_digits_are_not_kept_or_echoed():
    # "١٢" are digits to `\d`: once kept, the builder re-set them with its appendix.
    v = visit(make(), "fbclid=F", "_fbp=fb.1.\u0661\u0662.\u0663; _fbc=fb.\u0661.1.x")
    assert v.fbp.isascii() and v.fbc.isascii()
    assert all(h.isascii() for h in v.set_cookies)


def test_legacy_four_part_fb_cookies_are_kept():
    v = visit(make(), "", "_fbp=fb.1.1700000000000.12345; _fbc=fb.1.1700000000000.OLD")
    assert (v.fbc, v.fbp) == ("fb.1.1700000000000.OLD", "fb.1.1700000000000.12345")


# -- consent ------------------------------------------------------------------------------

REQUIRED = ConsentSection(required=True)


@pytest.mark.parametrize("section, cookie, gpc, expected", [
    (ConsentSection(), None, False, True),
    (ConsentSection(), None, True, False),                      # GPC is an opt-out
    (ConsentSection(honor_gpc=False), None, True, True),
    (REQUIRED, None, False, False),
    (REQUIRED, "cookie_consent=all", False, True),
    (REQUIRED, "cookie_consent=MARKETING", False, True),
    (REQUIRED, "cookie_consent=necessary,marketing", False, True),
    (REQUIRED, "cookie_consent=necessary|statistics", False, False),
    (REQUIRED, 'cookie_consent="necessary%2Call"', False, True),
    (REQUIRED, "cookie_consent=necessary", False, False),
    (REQUIRED, "cookie_consent=allx", False, False),
    (REQUIRED, "cookie_consent=all", True, False),              # GPC wins over the banner
    (ConsentSection(required=True, honor_gpc=False), "cookie_consent=all", True, True),
    (ConsentSection(required=True, cookie="cc", granted=("yes",)), "cc=Yes", False, True),
    (ConsentSection(required=True, cookie="cc", granted=("yes",)), "cookie_consent=all", False,
     False),
])
def test_consent_matrix(section, cookie, gpc, expected):
    v = visit(make(section), "fbclid=F&gclid=G", cookie, gpc=gpc)
    assert v.consent is expected
    names = set(cookies_of(v))
    assert ("_fbc" in names and "_fbp" in names) is expected
    assert (v.fbc is not None) is expected
    # functional id and first-party click capture happen either way
    assert {"linksClickedId", "ce_attr"} <= names
    assert v.click_ids.keys() == {"fbclid", "gclid"}


def test_consent_given_after_landing_builds_fbc_from_held_fbclid():
    a = make(REQUIRED)
    landing = visit(a, f"fbclid={FBCLID}")
    assert landing.fbc is None
    later = visit(a, "", jar(landing, extra="cookie_consent=all"))
    assert later.fbc and f".{FBCLID}." in later.fbc and later.fbp


# -- hostile input ------------------------------------------------------------------------

_SAFE_VALUE = re.compile(r"[A-Za-z0-9._~-]*")
_ATTRS = re.compile(r"Max-Age=\d+|Path=/|Domain=[a-z0-9.-]+|SameSite=Lax|Secure|HttpOnly")
_junk = st.text(alphabet=st.characters(codec="utf-8"), max_size=80) | st.sampled_from([
    "\r\n", "; ", "=", "%0d%0a", "\x00", '"', "gclid=", "fbclid=", "linksClickedId=",
    "ce_attr=", "_fbp=", "_fbc=", "tlr_sid=" + UUID, "&", "a" * 5000, "fbclid=IwAR",
    "_fbc=fb.1.1700000000000.", "_fbp=fb.1.1700000000000.1", ",", " ", "<"])


_cookie_pairs = st.lists(st.tuples(
    st.sampled_from(["linksClickedId", "ce_attr", "_fbc", "_fbp", "cookie_consent", "x"]),
    st.sampled_from(["fb.1.1700000000000.", "fb.1.1.1.", "0" * 32, ""]),
    st.text(max_size=6) | _junk), max_size=5).map(lambda pairs: "; ".join(f"{n}={p}{v}" for n, p, v in pairs))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query=st.lists(_junk, max_size=8).map("".join),
       cookie=st.none() | st.lists(_junk, max_size=8).map("".join) | _cookie_pairs,
       host=st.sampled_from([HOST, "localhost", "x\r\ny", "", "[::1]", "a.b.co.uk:1"]) | _junk,
       referer=st.none() | st.lists(_junk, max_size=4).map("".join),
       gpc=st.booleans(), secure=st.booleans())
def test_hypothesis_hostile_input_never_raises_or_injects(query, cookie, host, referer, gpc,
                                                          secure):
    v = make().on_request(raw_query=query, cookie_header=cookie, host=host, secure=secure,
                          gpc=gpc, referer=referer)
    for header in v.set_cookies:
        assert "\r" not in header and "\n" not in header
        first, *attrs = header.split("; ")
        name, _, value = first.partition("=")
        assert name in {"linksClickedId", "ce_attr", "_fbc", "_fbp"}
        assert _SAFE_VALUE.fullmatch(value), header
        assert all(_ATTRS.fullmatch(attr) for attr in attrs), header
    for click in v.click_ids.values():
        assert _SAFE_VALUE.fullmatch(click.value)
    if v.upstream_query is not None:
        kept = [s for s in query.split("&") if s in v.upstream_query.split("&")]
        assert v.upstream_query == "&".join(kept)


def test_cookie_value_holds_more_than_one_source_under_4kb():
    a = make()
    q = "&".join(f"{p}={'v' * 500}" for p in ("gclid", "fbclid", "msclkid", "ttclid", "ittk",
                                               "ccuid", "gbraid", "wbraid", "li_fat_id"))
    v = visit(a, q)
    value = cookies_of(v)["ce_attr"].split(";")[0]
    assert len(value) <= 4096
    decoded = AttrCodec(KEY).decode(value.partition("=")[2])
    assert decoded is not None and len(decoded[1]) >= 4


@pytest.mark.parametrize("cookie, ttp", [
    ("_ttp=2F7h37YkS1j57AYSKTI7IHhJPYH", "2F7h37YkS1j57AYSKTI7IHhJPYH"),
    ("_ttp=01JAB.c_d-e~f", "01JAB.c_d-e~f"),
    ("_ttp=bad%0d%0avalue", None),
    ("_ttp=" + "a" * 600, None),
    ("_ttp=", None),
    ("other=1", None),
])
def test_the_tiktok_pixels_ttp_cookie_is_read_when_well_formed(cookie: str, ttp: str | None):
    v = visit(make(), cookie=cookie)
    assert v.ttp == ttp
    assert not any(c.startswith("_ttp=") for c in v.set_cookies)     # read, never written
