"""The sinks of `explain`: per fired event, each sink's outcome (queued, skipped,
suppressed) and the request it would be sent, secrets masked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from urllib.parse import quote

import orjson

from proxy.attribution.visit import Visit
from proxy.config.model import Sink
from proxy.config.networks import missing_params
from proxy.conversions.events import Event
from proxy.conversions.routing import route, uncarried
from proxy.conversions.sinks import build_sink
from proxy.conversions.sinks.base import IDEMPOTENCY_HEADER, Prepared
from proxy.conversions.sinks.http import HttpSink
from proxy.conversions.sinks.meta import MetaSink, request_body
from proxy.conversions.sinks.talroo import TalrooSink
from proxy.conversions.sinks.webhook import SIGNATURE_HEADER, signature, webhook_body
from proxy.conversions.states import Outcome
from proxy.detect.rules import Fired
from proxy.explain.text import EXPAND_DEPTH, INDENT, MASK, json_lines, mask_header, mask_url
from proxy.runtime import Runtime

CLIENT_IP = "<client ip>"
USER_AGENT = "<User-Agent>"


def sink_lines(rt: Runtime, f: Fired, visit: Visit, page_url: str,
                browser: str | None) -> list[str]:
    event = Event(name=f.event, links_clicked_id=visit.links_clicked_id,
                  click_ids={k: c.value for k, c in visit.click_ids.items()},
                  job_id=f.job_id, job_name=f.job_name, url=page_url, client_ip=CLIENT_IP,
                  user_agent=USER_AGENT, fbc=visit.fbc, fbp=visit.fbp, ttp=visit.ttp,
                  consent_mode=visit.consent_state.event_signals(),
                  fields=dict(f.fields), rule=f.rule.name, dedupe_hours=f.rule.dedupe_hours)
    sinks = [rt.sinks[n] for n in f.rule.send_to if n in rt.sinks]
    plan = route(event, sinks, consent=visit.consent_state)
    lines = [f"event_id {event.event_id} (new per event; the browser pixel shares it)"]
    if browser:
        lines.append(browser)
    for name in f.rule.send_to:
        sink = rt.sinks.get(name)
        if sink is None:
            lines.append(f"{name}: undefined sink")
            continue
        outcome = plan[name]
        head = f"{name} ({sink.type}): "
        if outcome == Outcome.SUPPRESSED:
            vendor = sink.tcf_vendor is not None and visit.consent
            lines.append(head + "suppressed: " + (
                f"no consent for TCF vendor {sink.tcf_vendor} (vendor consent, purposes 1 "
                "and 7)" if vendor else "no consent"))
            continue
        missing = [p.partition("|")[0] for p in missing_params(sink, event.click_ids)]
        shown = event
        cannot = uncarried(sink, event)
        if outcome == Outcome.SKIPPED and cannot:
            lines.append(head + f"skipped: {cannot}")
            continue
        if outcome == Outcome.SKIPPED:
            lines.append(head + "skipped: requires " + ", ".join(
                m.replace("|", " or ") for m in missing_params(sink, event.click_ids))
                + "; a visitor who has it would get:")
            shown = replace(event, click_ids={**event.click_ids,
                                              **{p: f"<{p}>" for p in missing}})
        elif outcome == Outcome.QUEUED:
            lines.append(head + "queued (durable outbox), then:")
        lines.extend(INDENT * 2 + s for s in _payload(sink, shown, missing))
    return lines


def _payload(sink: Sink, event: Event, placeholders: Sequence[str]) -> list[str]:
    def show(text: str) -> str:
        for p in placeholders:     # a placeholder reads as itself, not percent-encoded
            text = text.replace(quote(f"<{p}>", safe=""), f"<{p}>")
        return text

    if sink.type == "talroo":
        url = TalrooSink(sink).url_for(event)
        return [f"GET {show(mask_url(str(url)))}"]
    if sink.type == "meta":
        body = orjson.loads(request_body(sink, [event]))
        if body.get("access_token"):
            body["access_token"] = MASK
        return [f"POST {mask_url(MetaSink(sink).url)}", "Content-Type: application/json",
                *json_lines(body, EXPAND_DEPTH).splitlines()]
    prepare = getattr(build_sink(sink), "prepare", None)
    if prepare is not None:                 # indeed, google_ads, linkedin, tiktok
        return _prepared(sink, prepare([event], MASK))
    if sink.type == "http":
        try:
            url, headers, data = HttpSink(sink).build(event)
        except ValueError as e:
            return [f"not sendable: bad request template: {e}"]
        lines = [f"{sink.method.upper()} {show(mask_url(str(url)))}"]
        lines += [f"{k}: {mask_header(k, v)}" for k, v in headers.items()]
        if data is not None:
            lines.append(show(data.decode("utf-8", "replace")))
        return lines
    body = webhook_body(sink, event)
    headers = {**sink.headers, "Content-Type": "application/json",
               IDEMPOTENCY_HEADER: event.event_id}
    if sink.secret:
        headers[SIGNATURE_HEADER] = signature(sink.secret, body)
    return [f"POST {mask_url(sink.url or '')}",
            *(f"{k}: {mask_header(k, v)}" for k, v in headers.items()), body.decode()]


def _prepared(sink: Sink, req: Prepared) -> list[str]:
    lines = []
    if sink.token_url:
        lines.append(f"(access token: POST {mask_url(sink.token_url)}, cached until it expires)")
    lines.append(f"{req.method} {mask_url(req.url)}")
    lines += [f"{k}: {mask_header(k, v)}" for k, v in req.headers.items()]
    return lines + json_lines(orjson.loads(req.body), EXPAND_DEPTH).splitlines()
