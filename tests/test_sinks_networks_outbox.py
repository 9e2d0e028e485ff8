"""The four networks' sinks behind a real SQLite outbox and dispatcher: a 429 waits for
its Retry-After and is delivered once, a refusal is a dead letter with the network's
body, a repeat conversion is deduped, a visitor without the network's click id is
skipped, and a network whose TCF vendor the visitor declined is suppressed."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace

import pytest
from network_sinks import event, google_ads, indeed, linkedin, serve, tiktok

from proxy.attribution.consent import Consent
from proxy.config.model import ConsentSection
from proxy.conversions.backoff import BackoffPolicy
from proxy.conversions.dispatcher import Dispatcher
from proxy.conversions.outbox import Outbox
from proxy.conversions.sqlite_outbox import SqliteOutbox
from proxy.conversions.states import Outcome, RowState
from proxy.metrics import Metrics
from tests.tcf_strings import ALL_PURPOSES, GOOGLE, tc_string

PATHS = {"indeed": "/enterprise/", "google_ads": "/v25/", "linkedin": "/rest/",
         "tiktok": "/open_api/"}


@pytest.fixture
async def world(aiohttp_server, tmp_path):
    rec, base = await serve(aiohttp_server)
    sinks = [indeed(base), google_ads(base), linkedin(base), tiktok(base)]
    box = SqliteOutbox(str(tmp_path / "state.db"), metrics=Metrics())
    d = Dispatcher(box, {s.name: s for s in sinks}, metrics=box.metrics,
                   rng=random.Random(1), policy=BackoffPolicy(base=0.01, cap=5),
                   poll_interval=0.05)
    await d.start()
    yield rec, sinks, box
    await d.stop()
    await box.close()


async def states(box: Outbox, want: RowState, n: int) -> list:
    for _ in range(3000):
        rows = await box.list_rows(dead=want is RowState.DEAD, limit=100)
        rows = [r for r in rows if r.state is want]
        if len(rows) >= n:
            return rows
        await asyncio.sleep(0.01)
    raise AssertionError(f"never {n} rows {want}")


async def test_429_retry_after_then_delivered_once_and_repeats_deduped(world):
    rec, sinks, box = world
    for path in PATHS.values():
        rec.fail_next(path, 429, retry_after=1)
    first = await box.submit(event(), sinks, consent=True)
    assert set(first.queued) == set(PATHS)
    again = await box.submit(event(event_id="reload"), sinks, consent=True)
    assert set(again.outcomes.values()) == {Outcome.DEDUPED}
    for network in PATHS:
        got = await rec.wait_for_all(lambda r, n=network: r.network == n, count=2, timeout=20)
        assert [r.status for r in got] in ([429, 200], [429, 201])
        assert got[1].time - got[0].time >= 1.0
    counts = await box.counts()
    assert all(counts[n].get("sent") == 1 for n in PATHS), counts
    await asyncio.sleep(0.3)
    assert all(len(rec.of(n)) == 2 for n in PATHS)


async def test_a_refusal_is_a_dead_letter_with_the_body(world):
    rec, sinks, box = world
    for name, path in PATHS.items():
        rec.fail_next(path, 400, body=f'{{"error": "{name} says no"}}')
    await box.submit(event(), sinks, consent=True)
    dead = await states(box, RowState.DEAD, 4)
    assert {r.sink: (r.last_error, r.dead_body) for r in dead} == {
        name: ("HTTP 400", f'{{"error": "{name} says no"}}') for name in PATHS}


async def test_visitors_without_the_click_id_are_skipped(world):
    rec, sinks, box = world
    result = await box.submit(event(click_ids={}), sinks, consent=True)
    assert result.outcomes == {"indeed": Outcome.SKIPPED, "google_ads": Outcome.SKIPPED,
                               "linkedin": Outcome.SKIPPED, "tiktok": Outcome.QUEUED}
    no_consent = await box.submit(event(event_id="x", job_id="7"), sinks, consent=False)
    assert set(no_consent.outcomes.values()) == {Outcome.SUPPRESSED}
    # A hire from the events API: Indeed has no such event, so it is skipped, not dead.
    hire = await box.submit(event(name="Hire", event_id="h"), sinks, consent=True)
    assert hire.outcomes["indeed"] is Outcome.SKIPPED
    assert set(hire.queued) == {"google_ads", "linkedin", "tiktok"}
    # A preview visitor's event reaches Indeed only, as a testFire event.
    preview = await box.submit(event(event_id="p", job_id="8", preview=True), sinks,
                               consent=True)
    assert preview.queued == ("indeed",)
    sent = await rec.wait_for(lambda r: r.network == "indeed" and "testFire" in r.text)
    assert sent.json()[0]["testFire"] is True


async def test_tcf_vendor_gates_each_network_and_consent_mode_reaches_google(world):
    rec, sinks, box = world
    tcf = Consent(ConsentSection(tcf=True))
    other = 1                       # some vendor other than Google
    gated = [replace(s, tcf_vendor={"google_ads": GOOGLE, "linkedin": other}.get(s.name))
             for s in sinks]
    # Everything consented but Google itself: Google Ads alone is suppressed.
    no_google = tcf.decide(None, False, tc_string(purposes=ALL_PURPOSES, vendors=[other]))
    result = await box.submit(event(consent_mode=no_google.event_signals()), gated,
                              consent=no_google)
    assert result.outcomes == {"indeed": Outcome.QUEUED, "google_ads": Outcome.SUPPRESSED,
                               "linkedin": Outcome.QUEUED, "tiktok": Outcome.QUEUED}
    # Declined (no purpose 1): every marketing sink is suppressed.
    declined = tcf.decide(None, False, tc_string(purposes=[2], vendors=[GOOGLE, other]))
    result = await box.submit(event(event_id="d", job_id="7"), gated, consent=declined)
    assert set(result.outcomes.values()) == {Outcome.SUPPRESSED}
    # Google consented with purposes 1 and 7 only: sent, user data yes, personalisation no.
    google = tcf.decide(None, False, tc_string(purposes=[1, 7], vendors=[GOOGLE]))
    result = await box.submit(event(event_id="g", job_id="8",
                                    consent_mode=google.event_signals()),
                              gated, consent=google)
    assert result.outcomes["google_ads"] is Outcome.QUEUED
    assert result.outcomes["linkedin"] is Outcome.SUPPRESSED
    sent = await rec.wait_for(lambda r: r.network == "google_ads" and "orderId" in r.text)
    (conversion,) = sent.json()["conversions"]
    assert conversion["orderId"] == "g"
    assert conversion["consent"] == {"adUserData": "GRANTED", "adPersonalization": "DENIED"}
