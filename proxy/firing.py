"""Rule matches become conversion events: written to the outbox, mirrored in the browser.

The server-side send and the browser pixel share one `event_id`, so Meta counts the
pair once. An event seen on a response that is no page of ours (a redirect, JSON)
reaches the browser as proxy/handoff.py says.

`RuleCheck` holds one response's candidate rules and the facts they read;
`RuleCheck.events` classifies and builds the events (pure: values in, `Planned`
out); `submit` is the one step that writes, through the outbox port.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from multidict import CIMultiDict

from proxy.attribution.visit import Visit
from proxy.config.model import Sink
from proxy.conversions.events import Event, new_event_id
from proxy.detect.jsonexpr import JsonDoc
from proxy.detect.rules import Candidates, Fired, RequestFacts, ResponseFacts
from proxy.http.headers import OriginRewriter, header_value
from proxy.metrics import Metrics
from proxy.ops.live import Live
from proxy.ops.views import fired_view
from proxy.pixels import BrowserEvent
from proxy.ports import Outbox
from proxy.request_view import RequestView

log = logging.getLogger("careers_edge.firing")

MAX_URL = 2048


def event_source_url(view: RequestView, page_url: str) -> str:
    """The page the visitor saw. A form POST or an XHR is answered at another URL than
    the page it was sent from; that page is the Referer when it is on our own origin."""
    if view.method == "GET" and not view.script:
        return page_url
    referer = view.referer or ""
    origin = page_url[:page_url.find("/", page_url.find("//") + 2)]
    if referer.startswith(origin + "/") and len(referer) <= MAX_URL:
        return referer
    return page_url


def make_event(fired: Fired, visit: Visit, view: RequestView, page_url: str) -> Event:
    return visit_event(visit, fired.event, event_source_url(view, page_url), view.client.ip,
                       view.user_agent, fields=dict(fired.fields), rule=fired.rule.name,
                       dedupe_hours=fired.rule.dedupe_hours, job_id=fired.job_id,
                       job_name=fired.job_name)


def visit_event(visit: Visit, name: str, url: str, client_ip: str | None,
                user_agent: str | None, *, fields: dict[str, str], rule: str,
                dedupe_hours: float, job_id: str | None = None,
                job_name: str | None = None) -> Event:
    """An event of this visit: its click ids, cookies and consent, stamped now."""
    return Event(
        name=name,
        event_id=new_event_id(),
        event_time=time.time(),
        links_clicked_id=visit.links_clicked_id,
        click_ids={k: c.value for k, c in visit.click_ids.items()},
        job_id=job_id,
        job_name=job_name,
        url=url,
        client_ip=client_ip,
        user_agent=user_agent,
        fbc=visit.fbc,
        fbp=visit.fbp,
        ttp=visit.ttp,
        fields=fields,
        rule=rule,
        dedupe_hours=dedupe_hours,
        consent_mode=visit.consent_state.event_signals(),
        preview=visit.preview,
    )


@dataclass(frozen=True, slots=True)
class Planned:
    """One event to submit: what a rule's match became, and the sinks it goes to."""

    event: Event
    rule: str
    sinks: tuple[Sink, ...]


def plan_events(fired: Sequence[Fired], visit: Visit, view: RequestView,
                sinks: Mapping[str, Sink]) -> list[Planned]:
    page_url = view.page_url
    return [Planned(make_event(f, visit, view, page_url), f.rule.name,
                    tuple(sinks[name] for name in f.rule.send_to if name in sinks))
            for f in fired]


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """One response's candidate rules and the facts they read.

    `early`: the rules are decided on the head (none reads the body, or there is no
    body); else they run once the body was seen (`body`: the HTML head the page
    transform observed, or the JSON answer's raw bytes)."""

    candidates: Candidates
    request: RequestFacts
    response: ResponseFacts
    early: bool

    @property
    def wants_html(self) -> bool:
        """The page's body is to be observed for a rule."""
        return self.candidates.needs_body and not self.early

    @property
    def wants_json(self) -> bool:
        """The JSON answer is to be watched for a rule."""
        return self.candidates.needs_json and not self.early

    def events(self, visit: Visit, view: RequestView, sinks: Mapping[str, Sink],
               body: bytes | None = None, doc: JsonDoc | None = None) -> list[Planned]:
        matched = self.candidates.classify(self.request, self.response, body, doc)
        return plan_events(matched, visit, view, sinks) if matched else []

    def json_skipped(self, doc: JsonDoc | None = None) -> list[tuple[str, str]]:
        """Each JSON body a rule asked for and could not read: (side, why)."""
        return [(side, d.problem) for side, d in (("request", self.request.json),
                                                  ("response", doc))
                if d is not None and d.problem is not None]


def check_rules(candidates: Candidates, view: RequestView, status: int,
                up_headers: Sequence[tuple[bytes, bytes]], out_headers: list[tuple[str, str]],
                rewriter: OriginRewriter, *, has_body: bool,
                form: Mapping[str, str], json: JsonDoc | None) -> RuleCheck:
    """The facts the rules read: the request as sent (`form`, `json`: what the body
    sniffer kept), the response as the visitor gets it (Location made public)."""
    loc = header_value(up_headers, b"location")
    location = rewriter.url(loc.decode("latin-1"), view.public_origin) if loc else None
    return RuleCheck(
        candidates,
        RequestFacts(view.method, view.path, view.query, form, json),
        ResponseFacts(status, CIMultiDict(out_headers), location),
        early=not (candidates.needs_body or candidates.needs_json) or not has_body)


def browser_data(event: Event) -> dict[str, str]:
    data = {"linksClickedId": event.links_clicked_id or ""}
    if event.job_name:
        data["jobName"] = event.job_name
    return data


async def submit(planned: Sequence[Planned], visit: Visit, outbox: Outbox, metrics: Metrics,
                 live: Live) -> list[BrowserEvent]:
    """Submit each planned event; return those the browser should track too."""
    browser: list[BrowserEvent] = []
    for p in planned:
        metrics.rules_fired.labels(p.rule).inc()
        event = p.event
        try:
            result = await outbox.submit(event, p.sinks, consent=visit.consent_state)
        except Exception:
            # The visitor's page must not break; the loss is loud in the log and metrics.
            log.exception("outbox submit failed for %s (%s)", event.name, event.event_id)
            metrics.conversions.labels("*", "error").inc()
            continue
        if live.subscribers:          # an operator watches: shape it for them
            live.publish("conversion", fired_view(event, result.outcomes))
        if result.deduped or not visit.consent:
            continue
        browser.append(BrowserEvent(event.name, event.event_id, browser_data(event)))
    return browser
