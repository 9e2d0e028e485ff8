"""schema.org JobPosting JSON-LD → `Job` values. Pure: bytes in, values out, no I/O.

Tolerant of what careers sites publish: a single object, an array, an `@graph`,
`@type` as a string, a list or a full IRI, any schema.org `@context` spelling,
`@id` references inside a graph, raw control characters inside strings, HTML
comment or CDATA wrappers around the script. A broken block is skipped and counted;
every text field is bounded, so a 5 MB description costs at most `MAX_DESCRIPTION`.

A job's URL is kept origin-relative (`Job.path`): the same job harvested through the
proxy (public origin) and by the sitemap crawler (upstream origin) is one job, and
the public origin is attached only when the feed is rendered.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser

from proxy.feed import fields

MAX_POSTINGS_PER_PAGE = 200
MAX_WALK_NODES = 20_000         # JSON nodes visited per block while looking for postings
MAX_WALK_DEPTH = 8

LD_JSON = "application/ld+json"
JOB_TYPES = frozenset({"JobPosting", "schema:JobPosting"})
SCHEMA_PREFIXES = ("http://schema.org/", "https://schema.org/")

_WRAPPERS = re.compile(r"^\s*(?:<!--|//\s*<!\[CDATA\[|<!\[CDATA\[)|(?:-->|//\s*\]\]>|\]\]>)\s*$")


@dataclass(frozen=True, slots=True)
class Job:
    """One posting, normalised. Frozen and hashable: a changed posting is a new value."""

    key: str                    # "id:<identifier>" or "url:<path>"; stable across visits
    path: str                   # origin-relative URL: "/jobs/42?lang=en"
    title: str
    date: float                 # datePosted, epoch seconds
    valid_through: float | None = None
    referencenumber: str = ""
    company: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None
    postalcode: str | None = None
    description: str | None = None
    salary: str | None = None
    jobtype: str | None = None
    education: str | None = None
    category: str | None = None
    experience: str | None = None


@dataclass(slots=True)
class Harvest:
    jobs: list[Job] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def harvest(page: bytes | str, page_url: str, origins: Collection[str]) -> Harvest:
    """Every JobPosting on `page`. `origins` are the origins a job URL may be on
    (upstream, public, the page's own); a URL elsewhere falls back to the page."""
    out = Harvest()
    postings: list[tuple[dict, dict[str, dict]]] = []
    for text in _ld_blocks(page):
        try:
            data = json.loads(text, strict=False)   # strict=False: raw newlines in strings
        except (ValueError, RecursionError):
            out.skipped["invalid_json"] += 1
            continue
        ids = _id_index(data)
        postings.extend((p, ids) for p in _find_postings(data))
    if len(postings) > MAX_POSTINGS_PER_PAGE:
        out.skipped["too_many_postings"] += len(postings) - MAX_POSTINGS_PER_PAGE
        postings = postings[:MAX_POSTINGS_PER_PAGE]
    single = len(postings) == 1
    for posting, ids in postings:
        job = _to_job(posting, ids, page_url, origins, single, out.skipped)
        if job is not None:
            out.jobs.append(job)
    return out


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _ld_blocks(page: bytes | str) -> Iterator[str]:
    tree = LexborHTMLParser(page)
    for node in tree.css("script[type]"):
        kind = (node.attributes.get("type") or "").split(";")[0].strip().lower()
        if kind == LD_JSON:
            yield _WRAPPERS.sub("", node.text(deep=True) or "")


def _is_posting(node: dict) -> bool:
    kinds = node.get("@type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    for kind in kinds:
        if isinstance(kind, str):
            for prefix in SCHEMA_PREFIXES:
                kind = kind.removeprefix(prefix)
            if kind in JOB_TYPES:
                return True
    return False


def _find_postings(data: Any) -> list[dict]:
    """Postings anywhere in a block (top level, `@graph`, `mainEntity`, …), bounded."""
    found: list[dict] = []
    stack: list[tuple[Any, int]] = [(data, 0)]
    visited = 0
    while stack and visited < MAX_WALK_NODES:
        node, depth = stack.pop()
        visited += 1
        if isinstance(node, dict):
            if _is_posting(node):
                found.append(node)
                continue
            children: list[Any] = list(node.values())
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth < MAX_WALK_DEPTH:
            stack.extend((child, depth + 1) for child in reversed(children))
    return found


def _id_index(data: Any) -> dict[str, dict]:
    graph = data.get("@graph") if isinstance(data, dict) else data
    nodes = graph if isinstance(graph, list) else [graph]
    return {n["@id"]: n for n in nodes[:MAX_WALK_NODES]
            if isinstance(n, dict) and isinstance(n.get("@id"), str)}


def _deref(value: Any, ids: dict[str, dict]) -> Any:
    if isinstance(value, dict) and set(value) == {"@id"}:
        return ids.get(value["@id"], value)
    return value


def _first(value: Any, ids: dict[str, dict]) -> Any:
    if isinstance(value, list):
        value = value[0] if value else None
    return _deref(value, ids)


def _identifier(value: Any, ids: dict[str, dict]) -> str | None:
    value = _first(value, ids)
    if isinstance(value, dict):
        value = value.get("value", value.get("@value", value.get("propertyID")))
    return fields.text(value, 256)


def _local_path(url: str, origins: Collection[str]) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or origin_of(url) not in origins:
        return None
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _job_url(posting: dict, page_url: str, origins: Collection[str], single: bool,
             skipped: Counter[str]) -> str | None:
    raw = fields.text(posting.get("url"), 4096)
    if raw:
        path = _local_path(urljoin(page_url, raw), origins)
        if path is not None:
            return path
    if single and page_url:          # the page is the job's own page
        path = _local_path(page_url, origins)
        if path is not None:
            return path
    skipped["foreign_url" if raw else "missing_url"] += 1
    return None


def _to_job(posting: dict, ids: dict[str, dict], page_url: str, origins: Collection[str],
            single: bool, skipped: Counter[str]) -> Job | None:
    title = fields.text(posting.get("title")) or fields.text(posting.get("name"))
    if not title:
        skipped["missing_title"] += 1
        return None
    path = _job_url(posting, page_url, origins, single, skipped)
    if path is None:
        return None
    if posting.get("datePosted") in (None, "", []):
        skipped["missing_date"] += 1
        return None
    date = fields.parse_date(posting.get("datePosted"))
    if date is None:
        skipped["invalid_date"] += 1
        return None
    ident = _identifier(posting.get("identifier"), ids)
    org = _first(posting.get("hiringOrganization"), ids)
    place = _first(posting.get("jobLocation"), ids)
    address = _first(place.get("address"), ids) if isinstance(place, dict) else None
    address = address if isinstance(address, dict) else {}
    return Job(
        key=f"id:{ident}" if ident else f"url:{path}",
        path=path,
        title=title,
        date=date,
        valid_through=fields.parse_date(posting.get("validThrough"), end_of_day=True),
        referencenumber=ident or path,
        company=fields.text(org.get("name") if isinstance(org, dict) else org),
        city=fields.text(address.get("addressLocality")),
        state=fields.text(address.get("addressRegion")),
        country=fields.text(_first(address.get("addressCountry"), ids)),
        postalcode=fields.text(address.get("postalCode")),
        description=fields.description(posting.get("description")),
        salary=fields.salary(_first(posting.get("baseSalary"), ids)),
        jobtype=fields.jobtype(posting.get("employmentType")),
        education=fields.education(_first(posting.get("educationRequirements"), ids)),
        category=(fields.text(posting.get("occupationalCategory"))
                  or fields.text(posting.get("industry"))),
        experience=fields.experience(_first(posting.get("experienceRequirements"), ids)),
    )
