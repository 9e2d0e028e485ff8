// Live: conversions and deliveries as they happen, newest on top.
//
// Rows arriving from the stream are queued and written once per animation frame as
// one DocumentFragment, so a burst costs one layout; the table keeps MAX_ROWS.

import { getJSON, stream } from "./api.js";
import { $, cap, chip, deliveryChip, h, journeyLink, timeCell } from "./dom.js";

const MAX_ROWS = 1000;
const INITIAL = 500;
const chipsByEvent = new Map();   // event_id -> the Deliveries cell of its row
const names = new Map();          // event_id -> event name, for the delivery rows
const seen = new Set();           // event ids already shown (stream and initial fill overlap)
let queue = [];
let scheduled = false;

function conversionRow(ev, fresh) {
  const deliveries = h("td", { class: "wrap" });
  for (const d of ev.deliveries || []) deliveries.append(deliveryChip(d));
  chipsByEvent.set(ev.event_id, deliveries);
  names.set(ev.event_id, ev.event);
  const job = [ev.job_name || ev.job_id, ev.rule].filter(Boolean).join(" · ");
  return h("tr", { class: fresh ? "fresh" : null, dataset: { event: ev.event_id, kind: "conversion" } },
    timeCell(ev.time),
    h("td", {}, chip("conversion", "conversion"), ev.preview ? chip("preview", "preview") : null),
    h("td", { title: ev.event_id }, ev.event),
    h("td", {}, ev.linksClickedId ? journeyLink(ev.linksClickedId) : ""),
    h("td", { title: job }, job),
    deliveries);
}

function deliveryRow(d) {
  const tail = [d.attempts ? `attempt ${d.attempts}` : "",
    d.last_body ? d.last_body.slice(0, 160) : ""].filter(Boolean).join(" — ");
  return h("tr", { class: "sub fresh", dataset: { event: d.event_id, kind: "delivery" } },
    timeCell(d.updated_at || Date.now() / 1000),
    h("td", {}, "delivery"),
    h("td", { title: d.event_id }, names.get(d.event_id) || d.event_id || ""),
    h("td", {}, ""),
    h("td", { title: tail }, tail),
    h("td", {}, deliveryChip(d)));
}

// Replace the sink's chip on the conversion row with the delivery's newest state.
function updateChips(d) {
  const cell = chipsByEvent.get(d.event_id);
  if (!cell) return;
  const next = deliveryChip(d);
  for (const c of cell.children) {
    if (c.dataset.id === String(d.id)) { c.replaceWith(next); return; }
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
    if (!cell.isConnected) { chipsByEvent.delete(id); names.delete(id); seen.delete(id); }
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

export function startLive(setConn) {
  $("live-filter").addEventListener("input", applyFilter);
  $("live-pause").addEventListener("change", () => {
    if (!$("live-pause").checked && queue.length) flush();
  });
  stream(onStream, setConn);
  initialFill().catch((err) => {
    $("live-empty").textContent = `Could not load events: ${err.message}`;
  });
  count();
}
