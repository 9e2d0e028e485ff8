"""The tiktok, linkedin and google pixels: their config, their markup (ids, the server
event's id on every network's call), and the page's CSP after the transform still
allowing the injected script and the hosts each network loads from."""

from __future__ import annotations

import json
import re
import textwrap

import pytest

from proxy.config.errors import ConfigErrors
from proxy.config.load import load_config_text
from proxy.config.summary import summary
from proxy.conversions.events import Event
from proxy.conversions.sinks.tiktok import event_name as tiktok_event_name
from proxy.explain import explain
from proxy.pixel_tags import GOOGLE_CSP, LINKEDIN_CSP, TIKTOK_CSP
from proxy.pixels import BrowserEvent, PixelSet
from proxy.transform.csp import FALLBACKS, CspNeeds, apply_csp, script_hash
from proxy.transform.html import HtmlTransform
from tests.tcf_strings import ALL_PURPOSES, GOOGLE, tc_string

# The three networks' tags, as the browser tests run them too.
NETWORK_PIXELS = """
[pixels.tt]
type = "tiktok"
pixel_code = "CJMB7ERC77U2JVNG7RF0"
event_names = { ApplicationCompleted = "SubmitForm" }

[pixels.li]
type = "linkedin"
partner_id = "5123456"
conversion_ids = { ApplicationCompleted = "18734562" }

[pixels.gads]
type = "google"
tag_id = "AW-987654321"
send_to = { ApplicationCompleted = "AW-987654321/AbC-dEf_1" }
"""
# tcf_vendor extends [pixels.gads], the last table of NETWORK_PIXELS.
PIXELS = '\n[proxy]\nupstream = "http://127.0.0.1:9"\n' + NETWORK_PIXELS + "tcf_vendor = 755\n"
EVENT = BrowserEvent("ApplicationCompleted", "e" * 32, {"linksClickedId": "v" * 32,
                                                         "jobName": "Welder </script>"})


def pixel_set(text: str = PIXELS) -> PixelSet:
    config = load_config_text(textwrap.dedent(text), "rules.toml", {})
    return PixelSet(config.pixels, config.sinks)


def render(**kw: object):
    ps = pixel_set()
    return ps.render(ps.pixels, page_event_id="p" * 32, links_clicked_id="v" * 32,
                     events=[EVENT], **kw)


def test_config_reads_each_network_keys() -> None:
    tt, li, gads = pixel_set().pixels
    assert (tt.type, tt.pixel_code, dict(tt.event_names)) == \
        ("tiktok", "CJMB7ERC77U2JVNG7RF0", {"ApplicationCompleted": "SubmitForm"})
    assert (li.partner_id, dict(li.conversion_ids)) == \
        ("5123456", {"ApplicationCompleted": "18734562"})
    assert (gads.tag_id, dict(gads.send_to), gads.tcf_vendor) == \
        ("AW-987654321", {"ApplicationCompleted": "AW-987654321/AbC-dEf_1"}, 755)


@pytest.mark.parametrize(("snippet", "key", "fragment"), [
    ('type = "tiktok"\npixel_code = "lower-case"', "pixels.x.pixel_code", "TikTok pixel code"),
    ('type = "tiktok"', "pixels.x.pixel_code", "is required"),
    ('type = "tiktok"\npixel_code = "CJMB7ERC77U2JVNG7RF0"\npixel_id = "1"',
     "pixels.x.pixel_id", "unknown key"),
    ('type = "linkedin"\npartner_id = "abc"', "pixels.x.partner_id", "numeric"),
    ('type = "linkedin"\npartner_id = "1"\nconversion_ids = { ApplicationCompleted = "x" }',
     "pixels.x.conversion_ids.ApplicationCompleted", "numeric"),
    ('type = "google"\ntag_id = "G-123"', "pixels.x.tag_id", "AW-"),
    ('type = "google"\ntag_id = "AW-1"\nsend_to = { ApplicationCompleted = "AW-1" }',
     "pixels.x.send_to.ApplicationCompleted", "send_to"),
    ('type = "google"\ntag_id = "AW-1"\ntcf_vendor = 0', "pixels.x.tcf_vendor", ""),
])
def test_config_errors_name_the_key(snippet: str, key: str, fragment: str) -> None:
    text = '[proxy]\nupstream = "http://127.0.0.1:9"\n[pixels.x]\n' + snippet + "\n"
    with pytest.raises(ConfigErrors) as info:
        load_config_text(text, "rules.toml", {})
    [err] = info.value.errors
    assert err.key == key and fragment in err.message and err.line is not None


def test_each_network_gets_its_ids_and_the_server_events_id() -> None:
    script = render().head_script
    event = '"event":"ApplicationCompleted","event_id":"' + "e" * 32 + '"'
    assert f"careersEdge.track([{{{event}" in script
    # TikTok: load + page, and ttq.track under the mapped name with {event_id}
    assert "ttq.load(\"CJMB7ERC77U2JVNG7RF0\");ttq.page();" in script
    assert '{"ApplicationCompleted":"SubmitForm"}[e.event]' in script
    assert "{event_id:e.event_id}" in script
    # LinkedIn: partner id, insight.min.js, lintrk('track', {conversion_id, event_id})
    assert 'window._linkedin_partner_id="5123456"' in script
    assert "https://snap.licdn.com/li.lms-analytics/insight.min.js" in script
    assert '{"ApplicationCompleted":[18734562]}' in script
    assert "window.lintrk('track',{conversion_id:c,event_id:e.event_id})" in script
    # Google: gtag.js, config, conversion with transaction_id = event id
    assert '"https://www.googletagmanager.com/gtag/js?id=AW-987654321"' in script
    assert "gtag('config',\"AW-987654321\")" in script
    assert '{"ApplicationCompleted":["AW-987654321/AbC-dEf_1"]}' in script
    assert "{send_to:s,transaction_id:e.event_id}" in script
    assert "</script" not in script and "Welder \\u003c/script\\u003e" in script


def test_google_consent_default_comes_before_config_and_follows_the_visit() -> None:
    script = render(consent_mode={"ad_storage": "GRANTED", "ad_user_data": "DENIED",
                                  "ad_personalization": "DENIED"}).head_script
    default = script.index("gtag('consent','default',{\"ad_storage\":\"granted\","
                           "\"ad_user_data\":\"denied\",\"ad_personalization\":\"denied\"})")
    assert default < script.index("gtag('config'")
    assert "\"ad_user_data\":\"granted\"" in render().head_script   # default: granted


def test_linkedin_noscript_and_csp_hosts() -> None:
    markup = render()
    assert 'src="https://px.ads.linkedin.com/collect/?pid=5123456&amp;fmt=gif"' in \
        markup.body_html
    for csp in (TIKTOK_CSP, LINKEDIN_CSP, GOOGLE_CSP):
        for directive, hosts in csp.items():
            assert set(hosts) <= set(markup.csp_hosts[directive])


def test_two_tiktok_pixels_each_track_on_their_own_instance() -> None:
    ps = pixel_set('[proxy]\nupstream = "http://127.0.0.1:9"\n'
                   '[pixels.a]\ntype = "tiktok"\npixel_code = "AAAAAAAAAA"\n'
                   '[pixels.b]\ntype = "tiktok"\npixel_code = "BBBBBBBBBB"\n')
    script = ps.render(ps.pixels, page_event_id="p", links_clicked_id="v").head_script
    assert 'ttq.instance("AAAAAAAAAA").track(' in script
    assert 'ttq.instance("BBBBBBBBBB").page();' in script


PAGE = (b"<!doctype html><html><head><meta charset=utf-8><title>Jobs</title>"
        b"<script nonce=\"site1\">window.site=1</script></head><body><h1>Jobs</h1></body></html>")
POLICIES = [
    "default-src 'self'",
    "script-src 'self'; img-src 'self'; connect-src 'self'; frame-src 'none'",
    "script-src 'nonce-site1' 'strict-dynamic'; object-src 'none'",
    "script-src-elem 'self'; script-src 'self'; default-src 'self'",
]
_DIRECTIVES = ("script-src-elem", "script-src", "img-src", "connect-src", "frame-src")


def _directive(policy: str, name: str) -> list[str] | None:
    for part in policy.split(";"):
        tokens = part.split()
        if tokens and tokens[0] == name:
            return tokens[1:]
    return None


@pytest.mark.parametrize("policy", POLICIES)
def test_the_transformed_pages_policy_allows_the_injected_script(policy: str) -> None:
    markup = render()
    needs = CspNeeds(inline_scripts=(markup.head_script.encode(),), hosts=markup.csp_hosts)
    decision = apply_csp([("Content-Type", "text/html"),
                          ("Content-Security-Policy", policy)], needs)
    transform = HtmlTransform(None, markup.head(decision.nonce), markup.body_html.encode())
    page = transform.feed(PAGE) + transform.finish()
    [(attrs, body)] = [m.groups() for m in re.finditer(rb"<script([^>]*)>(.*?)</script>", page)
                       if b"careersEdge" in m.group(2)]
    new = dict(decision.headers)["Content-Security-Policy"]
    scripts = _directive(new, "script-src-elem") or _directive(new, "script-src") or \
        _directive(new, "default-src")
    assert scripts is not None
    if "'strict-dynamic'" in policy:
        # the page's nonce is reused, and the network scripts the tags insert inherit
        # trust from it; no host is needed
        assert attrs == b' nonce="site1"' and decision.nonce == "site1"
    else:
        assert script_hash(body) in scripts
        for directive in _DIRECTIVES:
            tokens = next((t for d in (directive, *FALLBACKS[directive])
                           if (t := _directive(new, d)) is not None), None)
            if tokens is None:
                continue
            wanted = markup.csp_hosts.get("script-src" if directive.startswith("script")
                                          else directive, ())
            assert set(wanted) <= set(tokens), (directive, new)
    assert "'unsafe-inline'" not in new and " * " not in f" {new} "


# --- check's summary and explain ------------------------------------------------------

TCF_RULES = PIXELS + """
[consent]
tcf = true

[[rules]]
name = "done"
event = "ApplicationCompleted"
path = "/thanks"
send_to = ["ads"]

[sinks.ads]
type = "http"
url = "https://ads.example/conv?id={event_id}"
tcf_vendor = 755
"""


def test_summary_shows_the_new_pixels_and_tcf() -> None:
    out = summary(load_config_text(textwrap.dedent(TCF_RULES), "rules.toml", {}))
    assert "IAB TCF v2.2 from euconsent-v2" in out
    assert "tiktok   CJMB7ERC77U2JVNG7RF0, ApplicationCompleted→SubmitForm" in out
    assert "linkedin partner 5123456, ApplicationCompleted→18734562" in out
    assert "google   AW-987654321, ApplicationCompleted→AW-987654321/AbC-dEf_1" in out
    assert out.count("TCF vendor 755") == 2                # the google pixel and the sink


def test_explain_says_which_pixels_and_sinks_consent_lets_through() -> None:
    config = load_config_text(textwrap.dedent(TCF_RULES), "rules.toml", {})
    no_google = tc_string(purposes=ALL_PURPOSES, vendors=[1000])
    out = explain(config, "GET", "/thanks", cookie=f"euconsent-v2={no_google}")
    assert "granted: TC string (CMP 300, policy version 4): purpose 1 consented" in out
    assert re.search(r"tt +tiktok +head: base code", out)
    assert re.search(r"gads +google +not injected: no consent for TCF vendor 755", out)
    assert "ads (http): suppressed: no consent for TCF vendor 755" in out
    declined = tc_string(purposes=[2, 7], vendors=[GOOGLE])
    out = explain(config, "GET", "/thanks", cookie=f"euconsent-v2={declined}")
    assert "no cookie of ours but linksClickedId" in out
    assert "none: no consent (tt, li, gads would match)" in out
    assert "ads (http): suppressed: no consent" in out
    full = tc_string(purposes=ALL_PURPOSES, vendors=[GOOGLE])
    out = explain(config, "GET", "/thanks", cookie=f"euconsent-v2={full}")
    assert re.search(r"gads +google +head: gtag.js", out)
    assert "ads (http): queued" in out


def test_tiktok_pixel_and_sink_default_to_the_same_event_name() -> None:
    """TikTok pairs the pixel's and the Events API's event by name and event id, so
    without event_names on either both must call ApplicationCompleted the same."""
    config = load_config_text(textwrap.dedent("""\
        [proxy]
        upstream = "http://127.0.0.1:9"
        [pixels.tt]
        type = "tiktok"
        pixel_code = "CJMB7ERC77U2JVNG7RF0"
        [sinks.tt]
        type = "tiktok"
        access_token = "t"
        pixel_code = "CJMB7ERC77U2JVNG7RF0"
        """), "rules.toml", {})
    ps = PixelSet(config.pixels, config.sinks)
    script = ps.render(ps.pixels, page_event_id="p", links_clicked_id="v",
                       events=[EVENT]).head_script
    names = json.loads(re.search(r"\.track\((\{.*?\})\[e\.event\]", script).group(1))
    server = tiktok_event_name(config.sinks["tt"], Event("ApplicationCompleted"))
    assert names["ApplicationCompleted"] == server == "SubmitApplication"
