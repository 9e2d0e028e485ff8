// Funnel: clicks per click-id source (or job) → ConversationStart →
// ApplicationCompleted → Hire, per day: the whole funnel with its rates, one step per
// day stacked by key, and a table by key.

import { getJSON } from "./api.js";
import { PALETTE, funnel, stackedBars } from "./charts.js";
import { $, clear, guard, h, num, pct } from "./dom.js";

const DAY = 86400;
const TOP_KEYS = PALETTE.length - 1;    // the rest are drawn as "other"
let last = null;

function dayRange(days) {
  const today = Math.floor(Date.now() / 1000 / DAY) * DAY;
  return Array.from({ length: days }, (_, i) =>
    new Date((today - (days - 1 - i) * DAY) * 1000).toISOString().slice(0, 10));
}

function totalsByKey(rows, steps) {
  const byKey = new Map();
  for (const r of rows) {
    const t = byKey.get(r.key) || Object.fromEntries(steps.map((st) => [st, 0]));
    for (const st of steps) t[st] += r[st] || 0;
    byKey.set(r.key, t);
  }
  return byKey;
}

function perDayChart(data, step) {
  const labels = dayRange(data.days);
  const byKey = totalsByKey(data.rows, data.steps);
  const keys = [...byKey.keys()].sort((a, b) => byKey.get(b)[step] - byKey.get(a)[step]
    || a.localeCompare(b));
  const shown = keys.slice(0, TOP_KEYS);
  const index = new Map(labels.map((d, i) => [d, i]));
  const values = new Map([...shown, "other"].map((k) => [k, labels.map(() => 0)]));
  for (const r of data.rows) {
    const i = index.get(r.day);
    if (i === undefined) continue;
    values.get(shown.includes(r.key) ? r.key : "other")[i] += r[step] || 0;
  }
  const series = [...values.entries()]
    .filter(([k, v]) => k !== "other" || v.some(Boolean))
    .map(([k, v], i) => ({ name: k, values: v, color: PALETTE[i % PALETTE.length] }));
  const legend = h("div", { class: "legend" }, ...series.map((se) => {
    const sw = h("i");
    sw.style.background = se.color;
    return h("span", {}, sw, se.name);
  }));
  return h("div", { class: "card" },
    h("div", { class: "card-head" }, h("h3", {}, `${step} per day`),
      h("span", { class: "totals" }, `by ${data.by === "job" ? "job" : "click-id source"}`)),
    stackedBars({ labels, series, width: 760, height: 200, tick: (d) => d.slice(5),
      label: `${step} per day` }),
    legend);
}

function keyTable(data) {
  const { steps } = data;
  const byKey = totalsByKey(data.rows, steps);
  const keys = [...byKey.keys()].sort((a, b) => byKey.get(b)[steps[0]] - byKey.get(a)[steps[0]]
    || a.localeCompare(b));
  const all = Object.fromEntries(steps.map((st) => [st, 0]));
  for (const t of byKey.values()) for (const st of steps) all[st] += t[st];
  const row = (name, t, cls) => h("tr", { class: cls, dataset: { key: name } },
    h("td", { title: name }, name),
    ...steps.map((st, i) => h("td", { class: "num" }, h("span", { class: "n" }, num(t[st])),
      i ? h("span", { class: "rate" }, pct(t[st], t[steps[i - 1]])) : null)),
    h("td", { class: "num" }, pct(t[steps[steps.length - 1]], t[steps[0]])));
  const body = h("tbody", {}, ...keys.map((k) => row(k, byKey.get(k))));
  return h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "funnel-table" },
    h("thead", {}, h("tr", {}, h("th", {}, data.by === "job" ? "Job" : "Source"),
      ...steps.map((st) => h("th", { class: "num" }, st)), h("th", { class: "num" }, "Overall"))),
    body,
    h("tfoot", {}, row("all", all, "total"))));
}

function render(data) {
  const out = clear($("funnel-out"));
  const select = $("funnel-step");
  if (!select.options.length) {
    for (const st of data.steps) select.append(h("option", { value: st }, st));
  }
  const step = select.value || data.steps[0];
  const totals = totalsByKey(data.rows.map((r) => ({ ...r, key: "all" })), data.steps).get("all")
    || Object.fromEntries(data.steps.map((st) => [st, 0]));
  out.append(h("div", { class: "funnel-grid" },
    h("div", { class: "card" },
      h("div", { class: "card-head" }, h("h3", {}, `Last ${data.days} days`)),
      funnel(data.steps.map((st) => ({ name: st, value: totals[st] }))),
      h("p", { class: "muted" }, `${data.steps[data.steps.length - 1]} per ${data.steps[0]}: `,
        h("b", {}, pct(totals[data.steps[data.steps.length - 1]], totals[data.steps[0]])))),
    perDayChart(data, step)));
  if (!data.rows.length) out.append(h("p", { class: "notice" }, "No clicks or events in this window."));
  else out.append(keyTable(data));
}

export async function showFunnel() {
  const by = $("funnel-by").value, days = $("funnel-days").value;
  last = await getJSON(`funnel?days=${days}&by=${by}`);
  render(last);
}

export function startFunnel() {
  const reload = () => guard($("view-funnel"), showFunnel);
  $("funnel-by").addEventListener("change", reload);
  $("funnel-days").addEventListener("change", reload);
  $("funnel-step").addEventListener("change", () => last && render(last));
  $("funnel-refresh").addEventListener("click", reload);
}
