// Sinks: sent / retried / dead per sink and hour, and the dead letters with Retry.

import { ApiError, getJSON, postJSON } from "./api.js";
import { stackedBars } from "./charts.js";
import { $, clear, deliveryChip, guard, h, journeyLink, num, timeCell } from "./dom.js";

const HOUR = 3600;
const OUTCOMES = ["sent", "retried", "dead"];

// A Retry button for a dead delivery: re-queues it, then says what happened.
export function retryButton(d) {
  const button = h("button", { type: "button", class: "retry", dataset: { id: d.id } }, "Retry");
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.textContent = "Retrying…";
    try {
      const r = await postJSON(`outbox/${encodeURIComponent(d.id)}/retry`);
      button.textContent = "Re-queued";
      const row = button.closest("tr");
      const old = row && row.querySelector(".chip");
      if (old) old.replaceWith(deliveryChip({ ...d, status: r.status || "pending" }));
    } catch (err) {
      const gone = err instanceof ApiError && (err.status === 404 || err.status === 409);
      button.textContent = gone ? (err.status === 404 ? "Gone" : "Not dead") : "Failed";
      button.title = err.message;
      if (!gone) button.disabled = false;
    }
  });
  return button;
}

function hourLabel(t) {
  return String(new Date(t * 1000).getHours()).padStart(2, "0");
}

function sinkCard(sink, rows, hours) {
  const end = Math.floor(Date.now() / 1000 / HOUR) * HOUR;
  const labels = Array.from({ length: hours }, (_, i) => end - (hours - 1 - i) * HOUR);
  const at = new Map(rows.map((r) => [r.hour, r]));
  const series = OUTCOMES.map((o) => ({
    name: o, cls: `s-${o}`, values: labels.map((t) => (at.get(t) || {})[o] || 0) }));
  const total = (o) => rows.reduce((a, r) => a + (r[o] || 0), 0);
  return h("div", { class: "card", dataset: { sink } },
    h("div", { class: "card-head" }, h("h3", {}, sink),
      h("span", { class: "totals" },
        ...OUTCOMES.flatMap((o) => [h("b", { class: `t-${o}` }, num(total(o))), ` ${o}  `]))),
    stackedBars({ labels, series, width: 420, height: 110, tick: hourLabel, ticks: 8,
      label: `${sink}: deliveries per hour` }));
}

async function loadSinks() {
  const hours = Number($("sinks-hours").value);
  const out = $("sinks-out");
  const { rows } = await getJSON(`sinks?hours=${hours}`);
  const bySink = new Map();
  for (const r of rows) {
    if (!bySink.has(r.sink)) bySink.set(r.sink, []);
    bySink.get(r.sink).push(r);
  }
  const cards = [...bySink.keys()].sort().map((sink) => sinkCard(sink, bySink.get(sink), hours));
  clear(out).append(...cards);
  if (!cards.length) out.append(h("p", { class: "notice" }, `No deliveries in the last ${hours} h.`));
}

async function loadDead() {
  const { dead } = await getJSON("dead?limit=100");
  const frag = document.createDocumentFragment();
  for (const d of dead) {
    frag.append(h("tr", { dataset: { id: d.id, sink: d.sink } },
      timeCell(d.updated_at),
      h("td", {}, h("b", {}, d.sink)),
      h("td", { title: d.event_id }, d.event),
      h("td", {}, d.linksClickedId ? journeyLink(d.linksClickedId) : ""),
      h("td", { class: "num" }, String(d.attempts ?? "")),
      h("td", { class: "num" }, d.last_code ? String(d.last_code) : "–"),
      h("td", { class: "wrap" }, h("pre", { class: "body" }, d.last_body || "")),
      h("td", {}, deliveryChip(d), retryButton(d))));
  }
  clear($("dead-rows")).append(frag);
  $("dead-empty").hidden = dead.length > 0;
}

export async function showSinks() {
  await Promise.all([loadSinks(), loadDead()]);
}

export function startSinks() {
  $("sinks-hours").addEventListener("change", () => guard($("view-sinks"), loadSinks));
  $("sinks-refresh").addEventListener("click", () => guard($("view-sinks"), showSinks));
}
