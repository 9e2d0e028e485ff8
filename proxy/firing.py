"""Rule matches become conversion events: written to the outbox, mirrored in the browser.

The server-side send and the browser pixel share one `event_id`, so Meta counts the
pair once. An event seen on a response that is no page of ours (a redirect, JSON)
reaches the browser as proxy/handoff.py says.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiohttp import hdrs, web

from proxy.conversions.events import Event, new_event_id
from proxy.detect.rules import Fired
from proxy.handoff import from_script
from proxy.ops.views import fired_view
from proxy.pixels import BrowserEvent

if TYPE_CHECKING:
    from proxy.attribution.visit import Visit
    from proxy.edge import Edge
    from proxy.http.headers import ClientView
    from proxy.runtime import Runtime

log = logging.getLogger("careers_edge.firing")

MAX_URL = 2048


def event_source_url(request: web.BaseRequest, page_url: str) -> str:
    """The page the visitor saw. A form POST or an XHR is answered at another URL than
    the page it was sent from; that page is the Referer when it is on our own origin."""
    if request.method == "GET" and not from_script(request.headers):
        return page_url
    referer = request.headers.get(hdrs.REFERER, "")
    origin = page_url[:page_url.find("/", page_url.find("//") + 2)]
    if referer.startswith(origin + "/") and len(referer) <= MAX_URL:
        return referer
    return page_url


def make_event(fired: Fired, visit: Visit, request: web.BaseRequest, client: ClientView,
               page_url: str) -> Event:
    return Event(
        name=fired.event,
        event_id=new_event_id(),
        event_time=time.time(),
        links_clicked_id=visit.links_clicked_id,
        click_ids={k: c.value for k, c in visit.click_ids.items()},
        job_id=fired.job_id,
        job_name=fired.job_name,
        url=event_source_url(request, page_url),
        client_ip=client.ip,
        user_agent=request.headers.get(hdrs.USER_AGENT),
        fbc=visit.fbc,
        fbp=visit.fbp,
        ttp=visit.ttp,
        fields=dict(fired.fields),
        rule=fired.rule.name,
        dedupe_hours=fired.rule.dedupe_hours,
        consent_mode=visit.consent_state.event_signals(),
        preview=visit.preview,
    )


def browser_data(event: Event) -> dict[str, str]:
    data = {"linksClickedId": event.links_clicked_id or ""}
    if event.job_name:
        data["jobName"] = event.job_name
    return data


async def fire(edge: Edge, rt: Runtime, fired: Sequence[Fired], visit: Visit,
               request: web.BaseRequest, client: ClientView, page_url: str) -> list[BrowserEvent]:
    """Submit each fired rule's event; return those the browser should track too."""
    browser: list[BrowserEvent] = []
    for f in fired:
        edge.metrics.rules_fired.labels(f.rule.name).inc()
        event = make_event(f, visit, request, client, page_url)
        sinks = [rt.sinks[name] for name in f.rule.send_to if name in rt.sinks]
        try:
            result = await edge.outbox.submit(event, sinks, consent=visit.consent_state)
        except Exception:
            # The visitor's page must not break; the loss is loud in the log and metrics.
            log.exception("outbox submit failed for %s (%s)", event.name, event.event_id)
            edge.metrics.conversions.labels("*", "error").inc()
            continue
        if edge.live.subscribers:          # an operator watches: shape it for them
            edge.live.publish("conversion", fired_view(event, result.outcomes))
        if result.deduped or not visit.consent:
            continue
        browser.append(BrowserEvent(event.name, event.event_id, browser_data(event)))
    return browser
