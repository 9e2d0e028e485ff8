"""The demo careers site over real sockets, and the bundled rules files' shape."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import re
import tomllib
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, unused_port
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from proxy.config import model
from proxy.config.load import load_config
from proxy.demo.jobs import JOBS
from proxy.demo.site import MAX_BODY, SUBMISSIONS, UPLOAD_CHUNK, build_site, serve

RULES = Path(__file__).resolve().parent.parent / "rules"


@pytest.fixture
async def site(aiohttp_server, aiohttp_client) -> tuple[TestClient, web.Application, str]:
    port = unused_port()
    base = f"http://127.0.0.1:{port}"
    app = build_site(base)
    server = await aiohttp_server(app, port=port)
    client = await aiohttp_client(server, auto_decompress=False)
    return client, app, base


async def get_html(client: TestClient, path: str, **kw) -> tuple[aiohttp.ClientResponse, str]:
    resp = await client.get(path, allow_redirects=False, **kw)
    raw = await resp.read()
    if resp.headers.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    return resp, raw.decode()


def multipart_form(fields: dict[str, str], resume_parts=None) -> aiohttp.MultipartWriter:
    form = aiohttp.MultipartWriter("form-data")
    for name, value in fields.items():
        part = form.append(value)
        part.set_content_disposition("form-data", name=name)
    if resume_parts is not None:
        part = form.append(resume_parts, {"Content-Type": "application/pdf"})
        part.set_content_disposition("form-data", name="resume", filename="cv.pdf")
    return form


async def test_every_page_answers(site) -> None:
    client, _, base = site
    resp = await client.get("/", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == f"{base}/jobs"
    resp, html = await get_html(client, "/jobs")
    assert resp.status == 200 and resp.content_type == "text/html"
    for job in JOBS:
        assert f'href="{base}/jobs/{job.id}"' in html
    for job in JOBS:
        for path in (f"/jobs/{job.id}", f"/jobs/{job.id}/apply", f"/jobs/{job.id}/thanks"):
            resp, html = await get_html(client, path)
            assert resp.status == 200, path
            assert len(html) > 2000 and "<nav" in html and "<footer" in html
    resp, html = await get_html(client, "/jobs/does-not-exist")
    assert resp.status == 404 and "Page not found" in html
    resp, html = await get_html(client, "/no/such/page")
    assert resp.status == 404 and resp.content_type == "text/html"


async def test_job_page_carries_json_ld_job_posting_and_absolute_links(site) -> None:
    client, _, base = site
    job = JOBS[1]
    _, html = await get_html(client, f"/jobs/{job.id}")
    tree = HTMLParser(html)
    scripts = tree.css('script[type="application/ld+json"]')
    assert len(scripts) == 1
    posting = json.loads(scripts[0].text())
    assert posting["@type"] == "JobPosting"
    assert posting["title"] == tree.css_first("h1").text() == job.title
    assert posting["url"] == f"{base}/jobs/{job.id}"
    assert posting["identifier"]["value"] == job.id
    assert posting["datePosted"] == job.date_posted and posting["validThrough"]
    assert posting["hiringOrganization"]["name"]
    address = posting["jobLocation"]["address"]
    assert address["@type"] == "PostalAddress"
    assert (address["addressLocality"], address["postalCode"]) == (job.city, job.postal_code)
    assert posting["baseSalary"]["value"]["minValue"] == job.salary_min
    assert posting["employmentType"] == job.employment_type
    assert "<li>" in posting["description"]          # HTML survives the "<\/" escaping
    assert tree.css_first('link[rel="canonical"]').attributes["href"] == posting["url"]
    others = [a.attributes["href"] for a in tree.css("a") if "/jobs/" in a.attributes["href"]]
    assert others and all(href.startswith(base) for href in others)


async def test_csp_nonce_is_fresh_and_matches_the_site_script(site) -> None:
    client, _, _ = site
    nonces = []
    for _ in range(2):
        resp, html = await get_html(client, "/jobs/1")
        csp = resp.headers["Content-Security-Policy"]
        nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
        assert "default-src 'self'" in csp and "'unsafe-inline'" not in csp
        script = HTMLParser(html).css_first(f'script[nonce="{nonce}"]')
        assert script is not None and "siteScript" in script.text()
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


async def test_apply_answers_303_with_an_absolute_location(site) -> None:
    client, app, base = site
    _, html = await get_html(client, "/jobs/3/apply")
    form = HTMLParser(html).css_first("form")
    assert form.attributes["method"] == "post"
    assert form.attributes["enctype"] == "multipart/form-data"
    names = [i.attributes.get("name") for i in form.css("input")]
    assert names == ["job_title", "name", "email", "resume"]
    fields = {"job_title": JOBS[2].title, "name": "Ada Lovelace", "email": "ada@example.org"}
    resp = await client.post("/jobs/3/apply", data=multipart_form(fields, b"%PDF-1.4 tiny"),
                             allow_redirects=False)
    assert resp.status == 303
    location = resp.headers["Location"]
    assert re.fullmatch(re.escape(f"{base}/jobs/3/thanks?ref=") + r"[0-9a-f]{16}", location)
    _, thanks = await get_html(client, location.removeprefix(base))
    assert "Thank you, Ada Lovelace!" in thanks and JOBS[2].title in thanks
    [sub] = app[SUBMISSIONS]
    assert (sub.job_title, sub.email, sub.resume_bytes) == (JOBS[2].title, fields["email"], 13)


async def test_five_megabyte_resume_is_streamed_not_held(site) -> None:
    client, app, _ = site
    size, chunk = 5 * 1024 * 1024, b"\x25" * 100_003      # odd size: chunk edges vary

    async def resume():
        sent = 0
        while sent < size:
            piece = chunk[: size - sent]
            sent += len(piece)
            yield piece

    assert size > MAX_BODY      # read()/post() would refuse it: only streaming gets through
    fields = {"job_title": JOBS[0].title, "name": "Grace", "email": "grace@example.org"}
    resp = await client.post("/jobs/1/apply", data=multipart_form(fields, resume()),
                             allow_redirects=False)
    assert resp.status == 303
    [sub] = app[SUBMISSIONS]
    assert sub.resume_bytes == size and sub.resume_filename == "cv.pdf"
    assert 0 < sub.largest_chunk <= UPLOAD_CHUNK


async def test_incomplete_application_is_refused(site) -> None:
    client, app, _ = site
    resp = await client.post("/jobs/1/apply", data=multipart_form({"job_title": "x"}),
                             allow_redirects=False)
    assert resp.status == 422 and "Location" not in resp.headers
    resp = await client.post("/jobs/1/apply", data={"job_title": "x", "name": "n",
                                                     "email": "e@x.org"}, allow_redirects=False)
    assert resp.status == 303       # urlencoded forms work too
    assert [s.resume_bytes for s in app[SUBMISSIONS]] == [0]


async def quick_apply(client: TestClient, job: str = "2", headers: dict | None = None,
                      **kw) -> tuple[int, dict]:
    resp = await client.post(f"/api/jobs/{job}/applications",
                             headers={"Accept-Encoding": "identity", **(headers or {})}, **kw)
    return resp.status, json.loads(await resp.read())


async def test_quick_apply_answers_json_ok_or_errors_both_with_200(site) -> None:
    client, app, _ = site
    resp = await client.post("/api/jobs/2/applications", json={"name": "A", "email": ""},
                             headers={"Accept-Encoding": "gzip"})
    assert resp.headers["Content-Encoding"] == "gzip"       # compressed, as the pages are
    assert json.loads(gzip.decompress(await resp.read()))["ok"] is False
    status, doc = await quick_apply(client, json={"name": "Ann", "email": ""})
    assert (status, doc["ok"]) == (200, False)
    assert doc["errors"] == ["Please enter your e-mail address."]
    status, doc = await quick_apply(client, json={"name": " ", "email": "nope"})
    assert (status, doc["ok"]) == (200, False) and len(doc["errors"]) == 2
    status, doc = await quick_apply(client, json={"name": "Ann", "email": "ann@example.org"})
    assert (status, doc["ok"]) == (200, True)
    assert doc["job"] == {"id": "2", "title": JOBS[1].title}
    [sub] = app[SUBMISSIONS]
    assert (sub.ref, sub.job_id, sub.job_title, sub.email) == \
        (doc["application"]["ref"], "2", JOBS[1].title, "ann@example.org")


async def test_quick_apply_without_javascript_and_with_bad_input(site) -> None:
    client, app, _ = site
    status, doc = await quick_apply(client, data={"name": "Bo", "email": "bo@example.org"})
    assert (status, doc["ok"]) == (200, True)          # the form posted by the browser
    status, doc = await quick_apply(client, data=b"{not json",
                                    headers={"Content-Type": "application/json"})
    assert (status, doc["ok"]) == (400, False)
    status, doc = await quick_apply(client, json=["a", "list"])
    assert (status, doc["ok"]) == (200, False)
    resp = await client.post("/api/jobs/2/applications", data=b"x",
                             headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    resp = await client.post("/api/jobs/nope/applications", json={})
    assert resp.status == 404
    assert len(app[SUBMISSIONS]) == 1


async def test_the_job_page_quick_applies_with_its_own_script(site) -> None:
    client, _, base = site
    _, html = await get_html(client, "/jobs/2")
    doc = HTMLParser(html)
    form = doc.css_first("form#quick-apply")
    assert form.attributes["action"] == f"{base}/api/jobs/2/applications"
    scripts = [n.text() for n in doc.css("head script[nonce]")]
    assert any("fetch(form.action" in t and "application/json" in t for t in scripts)


@pytest.mark.parametrize("accept, gzipped", [
    ("gzip", True), ("gzip, deflate, br", True), ("br;q=1.0, gzip;q=0.5", True),
    ("GZIP", True), ("*", True), ("identity", False), ("gzip;q=0", False), ("", False),
])
async def test_gzip_only_when_accepted(site, accept: str, gzipped: bool) -> None:
    client, _, _ = site
    resp = await client.get("/jobs", headers={"Accept-Encoding": accept})
    raw = await resp.read()
    assert (resp.headers.get("Content-Encoding") == "gzip") is gzipped
    body = gzip.decompress(raw) if gzipped else raw
    assert body.startswith(b"<!DOCTYPE html>") and len(body) > 3500
    assert "Accept-Encoding" in resp.headers["Vary"]


async def test_first_visit_gets_two_set_cookie_headers_naming_the_site_host(site) -> None:
    client, _, _ = site
    resp = await client.get("/jobs")
    cookies = resp.headers.getall("Set-Cookie")
    assert len(cookies) == 2
    assert all("Domain=127.0.0.1" in c for c in cookies)
    session = next(c for c in cookies if c.startswith("ats_session="))
    assert "HttpOnly" in session and "Path=/" in session
    resp = await client.get("/jobs", headers={"Cookie": "ats_session=abc"})
    assert "Set-Cookie" not in resp.headers


async def test_sitemap_lists_every_job_page(site) -> None:
    client, _, base = site
    resp = await client.get("/sitemap.xml", headers={"Accept-Encoding": "identity"})
    assert resp.content_type == "application/xml"
    locs = re.findall(r"<loc>([^<]+)</loc>", await resp.text())
    assert {f"{base}/jobs/{job.id}" for job in JOBS} <= set(locs)


async def test_stylesheet_revalidates_with_its_etag(site) -> None:
    client, _, _ = site
    resp = await client.get("/static/site.css")
    etag = resp.headers["ETag"]
    assert resp.status == 200 and not etag.startswith("W/")
    resp = await client.get("/static/site.css", headers={"If-None-Match": etag})
    assert resp.status == 304 and resp.headers["ETag"] == etag


async def test_server_sent_events_arrive_one_by_one(site) -> None:
    client, _, _ = site
    resp = await client.get("/events")
    assert resp.content_type == "text/event-stream"
    events = (await resp.read()).decode().strip().split("\n\n")
    assert [e.splitlines()[0] for e in events] == ["id: 1", "id: 2", "id: 3"]
    # With a second event an hour away, the first can only arrive if it is not buffered.
    resp = await client.get("/events?count=2&interval=3600")
    first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 20)
    assert first.startswith(b"id: 1\n")
    resp.close()


async def test_websocket_echoes(site) -> None:
    client, _, _ = site
    async with client.ws_connect("/ws") as ws:
        await ws.send_str("hello")
        assert await ws.receive_str() == "hello"
        await ws.send_bytes(b"\x00\xff")
        assert await ws.receive_bytes() == b"\x00\xff"


async def test_serve_binds_first_so_the_site_knows_its_own_url() -> None:
    runner, base = await serve(build_site)
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{base}/jobs/1") as resp:
            assert resp.status == 200
            assert f'href="{base}/jobs/1"' in await resp.text()
    finally:
        await runner.cleanup()


# --- the bundled rules files ---------------------------------------------------------

SECTIONS = {"proxy": model.ProxySection, "attribution": model.AttributionSection,
            "consent": model.ConsentSection, "api": model.ApiSection,
            "redirect": model.RedirectSection, "feed": model.FeedSection}


def field_names(cls: type, *skip: str) -> set[str]:
    names = {f.name.rstrip("_") for f in dataclasses.fields(cls)}
    return names - set(skip)


@pytest.mark.parametrize("name", ["demo.toml", "example.toml"])
def test_rules_files_use_only_keys_the_config_model_knows(name: str) -> None:
    doc = tomllib.loads((RULES / name).read_text())
    for section, cls in SECTIONS.items():
        assert set(doc.get(section, {})) <= field_names(cls), section
    for pixel in doc["pixels"].values():
        assert set(pixel) <= field_names(model.Pixel, "name")
    for sink in doc["sinks"].values():
        assert set(sink) <= field_names(model.Sink, "name")
    rule_names = [r["name"] for r in doc["rules"]]
    assert len(rule_names) == len(set(rule_names))
    for rule in doc["rules"]:
        assert set(rule) <= field_names(model.Rule, "line")
        assert set(rule["send_to"]) <= set(doc["sinks"]), rule["name"]


def test_demo_rules_take_addresses_from_the_demo_environment() -> None:
    text = (RULES / "demo.toml").read_text()
    variables = set(re.findall(r"\$\{([A-Z0-9_]+)(?::-[^}]*)?\}", text))
    assert variables == {"CAREERS_EDGE_DEMO_UPSTREAM", "CAREERS_EDGE_DEMO_RECORDER"}


field_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300).filter(
    lambda s: s.strip() != "")


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=field_text, name=field_text, resume=st.binary(max_size=3000))
async def test_form_fields_of_any_text_survive_the_multipart_reader(site, title, name,
                                                                    resume) -> None:
    client, app, _ = site
    fields = {"job_title": title, "name": name, "email": "a@example.org"}
    resp = await client.post("/jobs/2/apply", data=multipart_form(fields, resume),
                             allow_redirects=False)
    assert resp.status == 303
    sub = app[SUBMISSIONS][-1]
    assert (sub.job_title, sub.name, sub.resume_bytes) == (title, name, len(resume))


DEMO_ENV = {"CAREERS_EDGE_DEMO_UPSTREAM": "http://127.0.0.1:9001",
            "CAREERS_EDGE_DEMO_RECORDER": "http://127.0.0.1:9002"}
EXAMPLE_ENV = {"CAREERS_EDGE_SECRET": "s", "META_ACCESS_TOKEN": "t", "WEBHOOK_SECRET": "w",
               "APPCAST_EVENTS_URL": "https://events.example", "CAREERS_EDGE_API_TOKEN": "k"}


@pytest.mark.parametrize("name, env", [("demo.toml", DEMO_ENV), ("example.toml", EXAMPLE_ENV)])
def test_rules_files_load(name: str, env: dict[str, str]) -> None:
    config = load_config(RULES / name, env=env)
    assert [r.event for r in config.rules][:2] == ["ConversationStart", "ApplicationCompleted"]
    if name == "demo.toml":     # the quick apply on a job page, beside the form post
        assert [(r.event, r.path.source) for r in config.rules[2:]] == \
            [("ApplicationCompleted", "/api/jobs/{job_id}/applications")]
    networks = {"indeed", "google_ads", "linkedin", "tiktok"} if name == "demo.toml" else set()
    assert set(config.sinks) == {"talroo", "meta", "appcast", "ats"} | networks
    if name == "demo.toml":
        assert config.proxy.upstream == DEMO_ENV["CAREERS_EDGE_DEMO_UPSTREAM"]
        assert config.sinks["meta"].api == "http://127.0.0.1:9002/v21.0"
