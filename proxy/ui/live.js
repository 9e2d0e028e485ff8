// Live: conversions and deliveries as they happen, newest on top.
//
// Rows arriving from the stream are queued and written once per animation frame as
// one DocumentFragment, so a burst costs one layout; the table keeps MAX_ROWS.
// The stream carries what the worker it reached sees; with several workers the rest
// arrives by polling /api/events every POLL_MS (new events inserted by time, known
// ones get their deliveries' newest states).

import { getJSON, stream } from "./api.js";
import { $, cap, chip, deliveryChip, h, journeyLink, timeCell } from "./dom.js";

const MAX_ROWS = 1000;
const INITIAL = 500;
const POLL = 50;
const POLL_MS = 5000;
const chipsByEvent = new Map();   // event_id -> the Deliveries cell of its row
const known = new Map();          // event_id -> {event, visitor}, for the delivery rows
const seen = new Set();           // event ids already shown (stream and initial fill overlap)
let queue = [];
let scheduled = false;

function conversionRow(ev, fresh) {
  const deliveries = h("td", { class: "wrap" });
  for (const d of ev.deliveries || []) deliveries.append(deliveryChip(d));
  chipsByEvent.set(ev.event_id, deliveries);
  known.set(ev.event_id, { event: ev.event, visitor: ev.linksClickedId });
  const job = [ev.job_name || ev.job_id, ev.rule].filter(Boolean).join(" · ");
  const cls = [fresh ? "fresh" : "", ev.preview ? "is-preview" : ""].join(" ").trim();
  return h("tr", { class: cls || null,
    dataset: { event: ev.event_id, kind: "conversion", time: ev.time } },
    timeCell(ev.time),
    h("td", {}, ev.preview ? chip("preview", "preview") : chip("conversion", "conversion")),
    h("td", { title: ev.event_id }, ev.event),
    h("td", {}, ev.linksClickedId ? journeyLink(ev.linksClickedId) : ""),
    h("td", { title: job }, job),
    deliveries);
}

function deliveryRow(d) {
  const tail = [d.attempts ? `attempt ${d.attempts}` : "",
    d.last_body ? d.last_body.slice(0, 160) : ""].filter(Boolean).join(" — ");
  const t = d.updated_at || Date.now() / 1000;
  const ev = known.get(d.event_id) || {};
  return h("tr", { class: "sub fresh", dataset: { event: d.event_id, kind: "delivery", time: t } },
    timeCell(t),
    h("td", {}, "delivery"),
    h("td", { title: d.event_id }, `↳ ${ev.event || `event ${(d.event_id || "").slice(0, 12)}`}`),
    h("td", {}, ev.visitor ? journeyLink(ev.visitor) : ""),
    h("td", { title: tail }, tail),
    h("td", {}, deliveryChip(d)));
}

// Replace the sink's chip on the conversion row with the delivery's newest state
// (an event has one delivery per sink).
function updateChips(d) {
  const cell = chipsByEvent.get(d.event_id);
  if (!cell) return;
  const next = deliveryChip(d);
  for (const c of cell.children) {
    if (c.dataset.sink === d.sink) {
      if (c.textContent !== next.textContent) c.replaceWith(next);
      return;
    }
  }
  cell.append(next);
}

function matches(tr) {
  const q = $("live-filter").value.trim().toLowerCase();
  return !q || tr.textContent.toLowerCase().includes(q);
}

function flush() {
  scheduled = false;
  if ($("live-pause").checked) return;
  const items = queue;
  queue = [];
  const frag = document.createDocumentFragment();
  for (let i = items.length - 1; i >= 0; i--) {    // newest first
    const tr = items[i];
    if (!matches(tr)) tr.hidden = true;
    frag.append(tr);
  }
  const body = $("live-rows");
  body.prepend(frag);
  cap(body, MAX_ROWS);
  forget();
  count();
}

// Forget the rows the table dropped, so the maps stay as small as the table.
function forget() {
  if (chipsByEvent.size <= MAX_ROWS * 2) return;
  for (const [id, cell] of chipsByEvent) {
    if (!cell.isConnected) { chipsByEvent.delete(id); known.delete(id); seen.delete(id); }
  }
}

function push(tr) {
  queue.push(tr);
  if (queue.length > MAX_ROWS) queue = queue.slice(-MAX_ROWS);
  if (!scheduled) { scheduled = true; requestAnimationFrame(flush); }
}

function count() {
  const n = $("live-rows").childElementCount;
  $("live-empty").hidden = n > 0;
  $("live-count").textContent = n ? `${n} row${n === 1 ? "" : "s"}` : "";
}

function onStream(kind, data) {
  let item;
  try { item = JSON.parse(data); } catch { return; }
  if (kind === "conversion") {
    if (seen.has(item.event_id)) return;
    seen.add(item.event_id);
    push(conversionRow(item, true));
  } else if (kind === "delivery") {
    document.dispatchEvent(new CustomEvent("edge:delivery", { detail: item }));
    updateChips(item);
    push(deliveryRow(item));
  }
}

let filtering = false;
function applyFilter() {
  if (filtering) return;
  filtering = true;
  requestAnimationFrame(() => {      // one pass per frame however fast the typing
    filtering = false;
    for (const tr of $("live-rows").rows) {
      const hide = !matches(tr);
      if (tr.hidden !== hide) tr.hidden = hide;
    }
  });
}

async function initialFill() {
  const { events } = await getJSON(`events?limit=${INITIAL}`);
  performance.mark("live-fill-start");
  const frag = document.createDocumentFragment();
  for (const ev of events) {                        // already newest first
    if (seen.has(ev.event_id)) continue;
    seen.add(ev.event_id);
    frag.append(conversionRow(ev, false));
  }
  $("live-rows").append(frag);
  cap($("live-rows"), MAX_ROWS);
  count();
  performance.measure("live-fill", "live-fill-start");   // what a fill costs, in DevTools
}

// Events the stream did not bring (another worker's, or while it was reconnecting),
// each placed by its time.
async function poll(limit = POLL) {
  if (document.hidden || $("live-pause").checked) return;
  const { events } = await getJSON(`events?limit=${limit}`);
  const body = $("live-rows");
  const fresh = [];
  for (const ev of events) {
    if (seen.has(ev.event_id)) {
      for (const d of ev.deliveries || []) updateChips({ ...d, event_id: ev.event_id });
      continue;
    }
    seen.add(ev.event_id);
    const row = conversionRow(ev, true);
    if (!matches(row)) row.hidden = true;
    fresh.push(row);
  }
  if (!fresh.length) return;
  // One walk down the table (newest first) places every new row.
  fresh.sort((a, b) => Number(b.dataset.time) - Number(a.dataset.time));
  let at = body.firstElementChild;
  for (const row of fresh) {
    while (at && Number(at.dataset.time) > Number(row.dataset.time)) at = at.nextElementSibling;
    body.insertBefore(row, at);
  }
  cap(body, MAX_ROWS);
  count();
}

export function startLive(setConn) {
  $("live-filter").addEventListener("input", applyFilter);
  $("live-deliveries").addEventListener("change", () => {
    $("live-table").classList.toggle("hide-deliveries", !$("live-deliveries").checked);
  });
  $("live-pause").addEventListener("change", () => {
    if (!$("live-pause").checked && queue.length) flush();
  });
  let dropped = false;
  stream(onStream, (state) => {
    setConn(state);
    if (state === "retry") dropped = true;
    else if (state === "live" && dropped) {     // back after a gap: catch up
      dropped = false;
      poll(INITIAL).catch((err) => console.warn("live catch-up:", err.message));
    }
  });
  initialFill().catch((err) => {
    $("live-empty").textContent = `Could not load events: ${err.message}`;
  }).finally(() => {
    setInterval(() => poll().catch((err) => console.warn("live poll:", err.message)), POLL_MS);
  });
  count();
}
