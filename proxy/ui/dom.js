// DOM building and formatting. Data from visitors (click ids, job names, response
// bodies) only ever reaches the page as text nodes: `h` never parses HTML.

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.setAttribute("class", v);
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") {
      for (const [dk, dv] of Object.entries(v)) if (dv !== null && dv !== undefined) el.dataset[dk] = dv;
    }
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// h("td", {class: "num"}, "text", childNode…)
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function $(id) {
  return document.getElementById(id);
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

const pad = (n) => String(n).padStart(2, "0");

// "14:03:07" today, "12-01 14:03" before; the full local time in the tooltip.
const today = () => new Date().toDateString();
export function clock(t) {
  if (t === null || t === undefined) return "";
  const d = new Date(t * 1000);
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === today()) return hms;
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// One formatter: toLocaleString would build a new one per call, a cost per row.
const FULL = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
  second: "2-digit", hour12: false });
export function fullTime(t) {
  if (t === null || t === undefined) return "";
  return FULL.format(new Date(t * 1000));
}

// "in 42 s", "3 min ago"
export function relative(t) {
  if (t === null || t === undefined) return "";
  const diff = t - Date.now() / 1000, a = Math.abs(diff);
  const span = a < 90 ? `${Math.round(a)} s` : a < 5400 ? `${Math.round(a / 60)} min`
    : a < 129600 ? `${Math.round(a / 3600)} h` : `${Math.round(a / 86400)} d`;
  return diff >= 0 ? `in ${span}` : `${span} ago`;
}

export function timeCell(t, attrs = {}) {
  return h("td", { ...attrs, title: fullTime(t) }, clock(t));
}

const NUMBER = new Intl.NumberFormat();
export function num(n) {
  return NUMBER.format(n || 0);
}

export function pct(part, whole) {
  if (!whole) return "–";
  const p = (100 * part) / whole;
  return `${p >= 10 || p === 0 ? Math.round(p) : p.toFixed(1)}%`;
}

export function chip(text, cls) {
  return h("span", { class: `chip ${cls || ""}` }, text);
}

// A status chip for a delivery: "meta · sent 200".
export function deliveryChip(d) {
  const code = d.last_code ? ` ${d.last_code}` : "";
  const title = [`${d.sink}: ${d.status}`, d.attempts ? `${d.attempts} attempt(s)` : "",
    d.next_attempt_at && d.status === "retry" ? `next ${relative(d.next_attempt_at)}` : ""]
    .filter(Boolean).join(", ");
  return h("span", { class: `chip ${d.status}`, title, dataset: { sink: d.sink } },
    `${d.sink} · ${d.status}${code}`);
}

export function journeyLink(id) {
  return h("a", { href: `#journey/${encodeURIComponent(id)}`, class: "mono", title: id }, id);
}

// Keep at most `max` children of `tbody`, dropping from the end (oldest).
export function cap(tbody, max) {
  while (tbody.childElementCount > max) tbody.lastElementChild.remove();
}

// Run a view's loader; a failure is shown under the view's toolbar, never thrown.
export function guard(section, load) {
  section.querySelector(".load-error")?.remove();
  section.setAttribute("aria-busy", "true");
  return Promise.resolve().then(load)
    .catch((err) => {
      section.querySelector(".toolbar").after(
        h("p", { class: "notice error load-error" }, `Could not load: ${err.message}`));
    })
    .finally(() => section.removeAttribute("aria-busy"));
}
