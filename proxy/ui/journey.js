// Journey: one visitor by linksClickedId or by any click-id value: the click ids
// captured, first seen, each event and every delivery of it.

import { ApiError, getJSON } from "./api.js";
import {
  $, chip, clear, deliveryChip, fullTime, h, journeyLink, relative, timeCell,
} from "./dom.js";
import { retryButton } from "./sinks.js";

const VISITOR_ID = /^[0-9a-f]{32}$/i;

function notice(text, cls = "") {
  return h("p", { class: `notice ${cls}` }, text);
}

function deliveryRow(d) {
  const next = d.status === "retry" || d.status === "pending" ? d.next_attempt_at : null;
  return h("tr", { dataset: { id: d.id, sink: d.sink } },
    h("td", {}, h("b", {}, d.sink)),
    h("td", {}, deliveryChip(d)),
    h("td", { class: "num" }, String(d.attempts ?? "")),
    h("td", { class: "num" }, d.last_code ? String(d.last_code) : "–"),
    h("td", { class: "wrap" }, d.last_body ? h("pre", { class: "body" }, d.last_body) : ""),
    h("td", { title: fullTime(next) }, next ? relative(next) : ""),
    timeCell(d.updated_at),
    h("td", {}, d.status === "dead" ? retryButton(d) : ""));
}

// A delivery from the live stream: its row in the journey shown, if any, is redrawn.
function onDelivery(d) {
  const card = document.querySelector(`#journey-out .event[data-event="${CSS.escape(d.event_id || "")}"]`);
  if (!card) return;
  const row = card.querySelector(`tr[data-sink="${CSS.escape(d.sink)}"]`);
  const fresh = deliveryRow(d);
  fresh.classList.add("fresh");
  if (row) row.replaceWith(fresh);
  else {
    card.querySelector("tr.none")?.remove();
    card.querySelector("tbody").append(fresh);
  }
}

function deliveriesTable(ev) {
  const body = h("tbody", {}, ...(ev.deliveries || []).map(deliveryRow));
  if (!body.childElementCount) {
    body.append(h("tr", { class: "none" },
      h("td", { colspan: 8, class: "muted" }, "No deliveries (no sink takes this event).")));
  }
  return h("table", { class: "grid" },
    h("colgroup", {}, h("col", { width: "110" }), h("col", { width: "160" }), h("col", { width: "60" }),
      h("col", { width: "60" }), h("col"), h("col", { width: "90" }), h("col", { width: "90" }),
      h("col", { width: "80" })),
    h("thead", {}, h("tr", {}, ...["Sink", "Status", "Tries", "Code", "Last response", "Next retry",
      "Updated", ""].map((t, i) => h("th", { class: i === 2 || i === 3 ? "num" : null }, t)))),
    body);
}

function eventCard(ev) {
  const meta = [fullTime(ev.time), ev.job_name || ev.job_id, ev.rule && `rule: ${ev.rule}`]
    .filter(Boolean).join(" · ");
  return h("div", { class: "card event", dataset: { event: ev.event_id, kind: ev.event } },
    h("div", { class: "event-head" },
      h("h3", {}, ev.event),
      ev.preview ? chip("preview", "preview") : null,
      h("span", { class: "meta" }, meta),
      h("span", { class: "meta mono", title: "event_id" }, ev.event_id),
      ev.url ? h("span", { class: "url mono", title: ev.url }, ev.url) : null),
    deliveriesTable(ev));
}

function render(j) {
  const ids = h("dl", { class: "kv" });
  const clicks = Object.entries(j.click_ids || {});
  for (const [param, value] of clicks) ids.append(h("dt", {}, param), h("dd", { class: "mono" }, value));
  if (!clicks.length) ids.append(h("dt", {}, "none"), h("dd", { class: "muted" }, "a direct visitor"));
  const who = h("dl", { class: "kv" },
    h("dt", {}, "linksClickedId"), h("dd", { class: "mono" }, j.linksClickedId),
    h("dt", {}, "First seen"), h("dd", { title: relative(j.first_seen) }, fullTime(j.first_seen)),
    h("dt", {}, "Events"), h("dd", {}, String((j.events || []).length)));
  if (j.preview) who.append(h("dt", {}, "Mode"), h("dd", {}, chip("preview", "preview")));
  const out = [h("div", { class: "journey-head" },
    h("div", { class: "card" }, h("h2", {}, "Visitor"), who),
    h("div", { class: "card" }, h("h2", {}, "Click ids"), ids))];
  out.push(h("h2", {}, "Events"));
  const events = [...(j.events || [])].sort((a, b) => b.time - a.time);
  if (!events.length) out.push(notice("No events yet for this visitor."));
  for (const ev of events) out.push(eventCard(ev));
  return out;
}

async function lookup(q) {
  if (VISITOR_ID.test(q)) {
    try {
      return { journey: await getJSON(`journeys/${encodeURIComponent(q)}`) };
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    }
  }
  const { journeys } = await getJSON(`journeys?click=${encodeURIComponent(q)}`);
  if (journeys.length === 1) return { journey: await getJSON(`journeys/${encodeURIComponent(journeys[0])}`) };
  return { choices: journeys };
}

export async function showJourney(q) {
  const out = clear($("journey-out"));
  $("journey-q").value = q;
  if (!q) {
    out.append(notice("Paste a linksClickedId, or a click id such as a tlr_sid, gclid or fbclid value."));
    return;
  }
  out.append(notice("Looking up…"));
  try {
    const { journey, choices } = await lookup(q);
    clear(out);
    if (journey) out.append(...render(journey));
    else if (!choices.length) out.append(notice(`No journey found for ${q}`));
    else {
      out.append(notice(`${choices.length} visitors carry ${q}:`),
        h("div", { class: "choices" }, ...choices.map(journeyLink)));
    }
  } catch (err) {
    clear(out).append(notice(`Lookup failed: ${err.message}`, "error"));
  }
}

export function startJourney(go) {
  document.addEventListener("edge:delivery", (e) => onDelivery(e.detail));
  $("journey-form").addEventListener("submit", (e) => {
    e.preventDefault();
    go(`journey/${encodeURIComponent($("journey-q").value.trim())}`);
  });
}
