"""`[sinks.NAME]` of types indeed, google_ads, linkedin and tiktok: keys, defaults, and
every missing credential named with its key and line."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from proxy.config.errors import ConfigErrors
from proxy.config.load import load_config_text
from proxy.config.summary import sink_line

HEAD = """\
[proxy]
upstream = "https://ats.example"

[[rules]]
name = "applied"
event = "ApplicationCompleted"
path = "/apply"
send_to = ["indeed", "google", "linkedin", "tiktok"]
"""
FULL = HEAD + """
[sinks.indeed]
type = "indeed"
client_id = "${INDEED_CLIENT_ID}"
client_secret = "${INDEED_CLIENT_SECRET}"
guid = "partner-guid"

[sinks.google]
type = "google_ads"
customer_id = "123-456-7890"
login_customer_id = "9876543210"
developer_token = "${GOOGLE_ADS_DEVELOPER_TOKEN}"
client_id = "gid"
client_secret = "${GOOGLE_ADS_CLIENT_SECRET}"
refresh_token = "${GOOGLE_ADS_REFRESH_TOKEN}"
conversion_action = "555"
time_zone = "Europe/Berlin"

[sinks.linkedin]
type = "linkedin"
access_token = "${LINKEDIN_ACCESS_TOKEN}"
conversion = "104"

[sinks.tiktok]
type = "tiktok"
access_token = "${TIKTOK_ACCESS_TOKEN}"
pixel_code = "CABCDEF1234567890XYZ"
"""
MINIMAL = '[proxy]\nupstream = "https://ats.example"\n'
ENV = {"INDEED_CLIENT_ID": "i", "INDEED_CLIENT_SECRET": "s", "GOOGLE_ADS_DEVELOPER_TOKEN": "d",
       "GOOGLE_ADS_CLIENT_SECRET": "g", "GOOGLE_ADS_REFRESH_TOKEN": "r",
       "LINKEDIN_ACCESS_TOKEN": "l", "TIKTOK_ACCESS_TOKEN": "t"}


def errors(text: str, env: dict[str, str] | None = None) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigErrors) as info:
        load_config_text(textwrap.dedent(text), "rules.toml", ENV if env is None else env)
    return [(e.key, e.line, e.message) for e in info.value.errors]


def test_defaults_and_values():
    config = load_config_text(FULL, "rules.toml", ENV)
    indeed, google = config.sinks["indeed"], config.sinks["google"]
    assert indeed.api == "https://apis.indeed.com"
    assert indeed.token_url == "https://apis.indeed.com/oauth/v2/tokens"
    assert indeed.requires == ("ittk",) and indeed.client_secret == "s"
    assert google.api == "https://googleads.googleapis.com"
    assert google.token_url == "https://oauth2.googleapis.com/token"
    assert (google.customer_id, google.login_customer_id) == ("1234567890", "9876543210")
    assert google.time_zone == "Europe/Berlin" and google.requires == ()
    assert config.sinks["linkedin"].api == "https://api.linkedin.com"
    assert config.sinks["tiktok"].api == "https://business-api.tiktok.com"
    assert all(s.marketing for s in config.sinks.values())


def test_every_missing_credential_is_named_with_key_and_line():
    text = HEAD + """
[sinks.indeed]
type = "indeed"

[sinks.google]
type = "google_ads"

[sinks.linkedin]
type = "linkedin"

[sinks.tiktok]
type = "tiktok"
"""
    found = [(key, line) for key, line, _ in errors(text)]
    assert found == [
        ("sinks.indeed.client_id", 10), ("sinks.indeed.client_secret", 10),
        ("sinks.indeed.guid", 10),
        ("sinks.google.customer_id", 13), ("sinks.google.developer_token", 13),
        ("sinks.google.client_id", 13), ("sinks.google.client_secret", 13),
        ("sinks.google.refresh_token", 13), ("sinks.google.conversion_action", 13),
        ("sinks.linkedin.access_token", 16), ("sinks.linkedin.conversion", 16),
        ("sinks.tiktok.access_token", 19), ("sinks.tiktok.pixel_code", 19),
    ]


def test_unset_variables_are_named_per_key_and_line():
    env = {k: v for k, v in ENV.items() if k not in ("GOOGLE_ADS_REFRESH_TOKEN",
                                                     "TIKTOK_ACCESS_TOKEN")}
    found = errors(FULL, env)
    assert [(k, line) for k, line, _ in found] == [("sinks.google.refresh_token", 23),
                                                   ("sinks.tiktok.access_token", 34)]
    assert "${GOOGLE_ADS_REFRESH_TOKEN} is not set" in found[0][2]
    assert "'applied' sends to sink 'google'" in found[0][2]
    empty = errors(FULL, {**ENV, "LINKEDIN_ACCESS_TOKEN": ""})
    assert empty == [("sinks.linkedin.access_token", 29, "must not be empty")]


@pytest.mark.parametrize("old, new, key, fragment", [
    ('customer_id = "123-456-7890"', 'customer_id = "12345"', "sinks.google.customer_id",
     "not a Google Ads customer id"),
    ('conversion_action = "555"', 'conversion_action = "purchase"',
     "sinks.google.conversion_action", "conversion action id or customers/ID"),
    ('time_zone = "Europe/Berlin"', 'time_zone = "Mars/Olympus"', "sinks.google.time_zone",
     "not an IANA time zone"),
    ('conversion = "104"', 'conversion = "urn:li:conversion:104"', "sinks.linkedin.conversion",
     "urn:lla:llaPartnerConversion:ID"),
    ('pixel_code = "CABCDEF1234567890XYZ"', 'pixel_code = "12"', "sinks.tiktok.pixel_code",
     "not a TikTok pixel code"),
    ('guid = "partner-guid"', 'guid = "g"\nevent_names = { ApplicationCompleted = "APPLY" }',
     "sinks.indeed.event_names.ApplicationCompleted", "one of: JOB_PAGE_LANDED, APPLY_COMPLETE"),
    ('conversion = "104"', 'conversion = "104"\napi_version = "2026-03"',
     "sinks.linkedin.api_version", "YYYYMM"),
    ('time_zone = "Europe/Berlin"', 'api_version = "25"', "sinks.google.api_version",
     "like v25"),
    ('pixel_code = "CABCDEF1234567890XYZ"', 'pixel_id = "CABCDEF1234567890XYZ"',
     "sinks.tiktok.pixel_id", "did you mean 'pixel_code'"),
])
def test_bad_values(old: str, new: str, key: str, fragment: str):
    found = [(k, m) for k, _, m in errors(FULL.replace(old, new))]
    assert any(k == key and fragment in m for k, m in found), found


def test_a_conversion_per_event_instead_of_one_default():
    text = FULL.replace('conversion_action = "555"\n', 'event_names = { ApplicationCompleted '
                        '= "customers/1234567890/conversionActions/9" }\n')
    assert load_config_text(text, "r", ENV).sinks["google"].conversion_action is None


def test_the_commented_examples_in_example_toml_load_when_uncommented():
    text = (Path(__file__).resolve().parents[1] / "rules" / "example.toml").read_text()
    start = text.index("# [sinks.indeed]")
    end = text.index("# POST /_edge/api/events")
    block = "\n".join(line.removeprefix("#").removeprefix(" ")
                      for line in text[start:end].splitlines())
    names = set(re.findall(r"\$\{(\w+)\}", block))
    env = {n: "1234567890" if n.endswith("MANAGER_ID") else "x" for n in names}
    config = load_config_text(MINIMAL + block, "example", env)
    assert set(config.sinks) == {"indeed", "google_ads", "linkedin", "tiktok"}
    assert config.sinks["google_ads"].time_zone == "Europe/Berlin"


def test_a_network_whose_click_id_is_never_captured_is_an_error():
    text = FULL.replace("[[rules]]", '[attribution]\nparams = ["gbraid", "ttclid"]\n\n[[rules]]')
    found = [(k, m) for k, _, m in errors(text)]
    assert [k for k, _ in found] == ["sinks.indeed.type", "sinks.linkedin.type"]
    assert "needs ittk, which is never captured" in found[0][1]
    assert "needs li_fat_id" in found[1][1]


def test_tcf_vendor_is_a_common_key_of_the_network_sinks():
    text = FULL
    for name, vendor in (("indeed", 11), ("google", 755), ("linkedin", 804), ("tiktok", 12)):
        text = text.replace(f"[sinks.{name}]\n", f"[sinks.{name}]\ntcf_vendor = {vendor}\n")
    config = load_config_text(text, "rules.toml", ENV)
    assert {n: s.tcf_vendor for n, s in config.sinks.items()} == {
        "indeed": 11, "google": 755, "linkedin": 804, "tiktok": 12}
    assert "TCF vendor 755" in sink_line(config.sinks["google"])
    bad = text.replace("tcf_vendor = 755", 'tcf_vendor = "Google"')
    assert [k for k, _, _ in errors(bad)] == ["sinks.google.tcf_vendor"]
