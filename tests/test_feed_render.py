"""The XML feed document: well-formed whatever the text, incremental, expiring."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.feed.jobs import Entry
from proxy.feed.jsonld import Job
from proxy.feed.render import DAY, FeedRenderer, cdata, public_url, xml_text

ORIGIN = "https://careers.acme.example"
T0 = 1_714_556_800.0        # 2024-05-01T10:00:00Z
FIELDS = ("title", "date", "referencenumber", "url", "company", "city", "state", "country",
          "postalcode", "description", "salary", "jobtype")


def job(n: int = 1, **extra: object) -> Job:
    values: dict = {"key": f"id:{n}", "path": f"/jobs/{n}", "title": f"Job {n}",
                    "date": T0 - n, "referencenumber": str(n)}
    values.update(extra)
    return Job(**values)


def renderer(**kw: object) -> FeedRenderer:
    args: dict = {"publisher": "Acme GmbH", "publisher_url": None, "url_params": {},
                  "expire_days": 30}
    args.update(kw)
    return FeedRenderer(**args)


def parse(body: bytes) -> ET.Element:
    root = ET.fromstring(body)
    assert root.tag == "source"
    return root


def xml_normalised(text: str) -> str:
    """What an XML parser reports for `text` (illegal characters gone, CR/LF folded)."""
    return xml_text(text).replace("\r\n", "\n").replace("\r", "\n")


def test_document_shape() -> None:
    out = renderer().render([Entry(job(1, city="Berlin", education="BSc"), T0, T0)], 1,
                            ORIGIN, T0)
    root = parse(out.body)
    assert root.findtext("publisher") == "Acme GmbH"
    assert root.findtext("publisherurl") == ORIGIN
    built = parsedate_to_datetime(root.findtext("lastBuildDate") or "")
    assert built.timestamp() == int(T0) == out.last_modified
    (element,) = root.findall("job")
    assert [c.tag for c in element][: len(FIELDS)] == list(FIELDS)
    assert element.findtext("company") == "Acme GmbH"      # publisher as the default
    assert element.findtext("city") == "Berlin"
    assert element.findtext("education") == "BSc"
    assert element.find("experience") is None
    assert parsedate_to_datetime(element.findtext("date") or "").timestamp() == int(T0 - 1)
    assert b"<title><![CDATA[Job 1]]></title>" in out.body


def test_cdata_end_and_markup_survive_a_round_trip() -> None:
    hostile = "a]]>b]]]]>c</description><job>x</job><![CDATA[ & \x00\x1f\ufffe ok"
    out = renderer().render([Entry(job(1, description=hostile, title=hostile), T0, T0)],
                            1, ORIGIN, T0)
    (element,) = parse(out.body).findall("job")
    assert element.findtext("description") == xml_text(hostile)
    assert element.findtext("title") == xml_text(hostile)
    assert "\x00" not in xml_text(hostile) and "]]>" in xml_text(hostile)


@settings(max_examples=200, deadline=None)
@given(st.text(), st.text(max_size=50))
def test_any_text_yields_a_well_formed_feed(text: str, short: str) -> None:
    j = job(1, title=short or "t", description=text, city=text, salary=short)
    out = renderer(publisher=short).render([Entry(j, T0, T0)], 1, ORIGIN, T0)
    root = parse(out.body)
    assert (root.findtext("job/description") or "") == xml_normalised(text)
    assert (root.findtext("publisher") or "") == xml_normalised(short)


def test_cdata_helper_splits_every_terminator() -> None:
    assert cdata("]]>]]>") == "<![CDATA[]]]]><![CDATA[>]]]]><![CDATA[>]]>"


def test_url_params_are_merged_into_the_query() -> None:
    url = public_url(ORIGIN, "/jobs/1?lang=en&utm_source=old", {"utm_source": "appcast",
                                                                 "src": "feed"})
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == ORIGIN + "/jobs/1"
    assert parse_qsl(parts.query) == [("lang", "en"), ("utm_source", "appcast"),
                                      ("src", "feed")]
    out = renderer(url_params={"src": "feed"}).render([Entry(job(7), T0, T0)], 1, ORIGIN, T0)
    assert parse(out.body).findtext("job/url") == ORIGIN + "/jobs/7?src=feed"


def test_expired_and_stale_jobs_are_left_out() -> None:
    r = renderer(expire_days=30)
    entries = [
        Entry(job(1), T0, T0),                                     # live
        Entry(job(2, valid_through=T0 - 1), T0 - 10, T0),          # past validThrough
        Entry(job(3), T0 - 40 * DAY, T0 - 31 * DAY),               # unseen 31 days
        Entry(job(4, valid_through=T0 + DAY), T0, T0),             # live until tomorrow
    ]
    out = r.render(entries, 1, ORIGIN, T0)
    assert [e.findtext("referencenumber") for e in parse(out.body).findall("job")] == ["1", "4"]
    # the same store version, a day and a second later: job 4 has expired on its own
    out = r.render(entries, 1, ORIGIN, T0 + DAY + 1)
    assert [e.findtext("referencenumber") for e in parse(out.body).findall("job")] == ["1"]
    # job 1 goes stale 30 days after it was last seen
    assert r.render(entries, 1, ORIGIN, T0 + 30 * DAY + 1).jobs == 0


def test_incremental_rendering_and_stable_etag() -> None:
    r = renderer()
    entries = [Entry(job(n), T0, T0) for n in range(1, 4)]
    first = r.render(entries, 1, ORIGIN, T0)
    assert r.render(entries, 1, ORIGIN, T0 + 5) is first          # nothing changed: cached
    fragments = {k: v[2] for k, v in r._fragments.items()}

    # the store moved on but the content did not: same ETag, same build date
    again = r.render(entries, 2, ORIGIN, T0 + 60)
    assert again.etag == first.etag and again.last_modified == first.last_modified
    assert again.body == first.body

    changed = [entries[0], Entry(job(2, title="Senior Job 2"), T0, T0 + 100), entries[2]]
    third = r.render(changed, 3, ORIGIN, T0 + 120)
    assert third.etag != first.etag and third.last_modified == int(T0 + 120)
    assert r._fragments["id:1"][2] is fragments["id:1"]          # untouched: reused
    assert r._fragments["id:3"][2] is fragments["id:3"]
    assert r._fragments["id:2"][2] is not fragments["id:2"]      # changed: re-rendered
    assert b"Senior Job 2" in third.body

    fourth = r.render(changed[:1], 4, ORIGIN, T0 + 130)           # removals drop fragments
    assert set(r._fragments) == {"id:1"} and fourth.jobs == 1


def test_origin_change_rerenders_urls() -> None:
    r = renderer()
    entries = [Entry(job(1), T0, T0)]
    r.render(entries, 1, ORIGIN, T0)
    out = r.render(entries, 1, "http://localhost:8080", T0)
    assert parse(out.body).findtext("job/url") == "http://localhost:8080/jobs/1"


def test_jobs_are_ordered_newest_first() -> None:
    entries = [Entry(job(n, date=T0 + n), T0, T0) for n in (2, 5, 1)]
    out = renderer().render(entries, 1, ORIGIN, T0)
    assert [e.findtext("title") for e in parse(out.body).findall("job")] == [
        "Job 5", "Job 2", "Job 1"]
