"""The XML feed (Indeed/Talroo/Appcast style), rendered incrementally. Pure: no I/O.

Each job's `<job>` fragment is cached and re-rendered only when the job changes;
the whole document is rebuilt only when the store changed or a job reached its
expiry, and otherwise returned as is. The ETag is a digest of the content without
`lastBuildDate`, so it is stable across rebuilds and restarts that change nothing;
`lastBuildDate` / Last-Modified move only when the content does.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from proxy.feed.jobs import Entry
from proxy.feed.jsonld import Job

DAY = 86400.0
XML_HEAD = b'<?xml version="1.0" encoding="utf-8"?>\n<source>\n'
XML_TAIL = b"</source>\n"
# characters XML 1.0 forbids (C0 controls but tab/LF/CR, surrogates, U+FFFE/U+FFFF)
_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
OPTIONAL_FIELDS = ("education", "category", "experience")


def xml_text(value: str) -> str:
    return _ILLEGAL.sub("", value)


def cdata(value: str | None) -> str:
    """`value` as CDATA: illegal characters dropped, any `]]>` split across sections."""
    return "<![CDATA[" + xml_text(value or "").replace("]]>", "]]]]><![CDATA[>") + "]]>"


def rfc2822(ts: float) -> str:
    return format_datetime(datetime.fromtimestamp(int(ts), UTC), usegmt=True)


def public_url(origin: str, path: str, url_params: Mapping[str, str]) -> str:
    """The job's URL on `origin`, `url_params` merged into its query (theirs win)."""
    parts = urlsplit(origin.rstrip("/") + path)
    if not url_params:
        return urlunsplit(parts)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in url_params]
    query.extend(url_params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def job_fragment(job: Job, origin: str, url_params: Mapping[str, str], company: str) -> bytes:
    values = {
        "title": job.title,
        "date": rfc2822(job.date),
        "referencenumber": job.referencenumber,
        "url": public_url(origin, job.path, url_params),
        "company": job.company or company,
        "city": job.city, "state": job.state, "country": job.country,
        "postalcode": job.postalcode,
        "description": job.description,
        "salary": job.salary,
        "jobtype": job.jobtype,
    }
    for name in OPTIONAL_FIELDS:
        if getattr(job, name):
            values[name] = getattr(job, name)
    inner = "".join(f"<{k}>{cdata(v)}</{k}>" for k, v in values.items())
    return f"<job>{inner}</job>\n".encode()


def expires_at(entry: Entry, expire_days: float) -> float:
    """When `entry` leaves the feed: validThrough, or `expire_days` after last seen."""
    stale = entry.last_seen + expire_days * DAY
    vt = entry.job.valid_through
    return stale if vt is None else min(vt, stale)


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes
    etag: str               # quoted, strong
    last_modified: float    # epoch seconds, whole
    jobs: int


class FeedRenderer:
    def __init__(self, *, publisher: str, publisher_url: str | None,
                 url_params: Mapping[str, str], expire_days: float) -> None:
        self.publisher = publisher
        self.publisher_url = publisher_url
        self.url_params = dict(url_params)
        self.expire_days = expire_days
        self._fragments: dict[str, tuple[Job, str, bytes]] = {}
        self._current: Rendered | None = None
        self._valid: tuple[int, str] | None = None      # (store version, origin)
        self._valid_until = 0.0

    def render(self, entries: Iterable[Entry], version: int, origin: str,
               now: float) -> Rendered:
        if self._current is not None and self._valid == (version, origin) \
                and now < self._valid_until:
            return self._current
        visible: list[Entry] = []
        valid_until = float("inf")
        for entry in entries:
            leaves = expires_at(entry, self.expire_days)
            if leaves > now:
                visible.append(entry)
                valid_until = min(valid_until, leaves)
        visible.sort(key=lambda e: (-e.job.date, e.job.key))
        fragments = [self._fragment(e.job, origin) for e in visible]
        keep = {e.job.key for e in visible}
        for key in [k for k in self._fragments if k not in keep]:
            del self._fragments[key]

        head = (f"<publisher>{cdata(self.publisher)}</publisher>\n"
                f"<publisherurl>{cdata(self.publisher_url or origin)}</publisherurl>\n")
        digest = hashlib.blake2b(head.encode("utf-8"), digest_size=16)
        for fragment in fragments:
            digest.update(fragment)
        etag = f'"{digest.hexdigest()}"'
        if self._current is not None and self._current.etag == etag:
            built = self._current.last_modified
        else:
            built = float(int(now))
        body = b"".join([XML_HEAD, head.encode("utf-8"),
                         f"<lastBuildDate>{rfc2822(built)}</lastBuildDate>\n".encode(),
                         *fragments, XML_TAIL])
        self._current = Rendered(body, etag, built, len(visible))
        self._valid, self._valid_until = (version, origin), valid_until
        return self._current

    def _fragment(self, job: Job, origin: str) -> bytes:
        cached = self._fragments.get(job.key)
        if cached is not None and cached[1] == origin and cached[0] == job:
            return cached[2]
        fragment = job_fragment(job, origin, self.url_params, self.publisher)
        self._fragments[job.key] = (job, origin, fragment)
        return fragment
