// Inline SVG charts: stacked bars over time, and a funnel of horizontal bars.
// Every label is a text node; hovering a bar shows its <title>.

import { num, pct, s } from "./dom.js";

// 8 hues that stay apart in light and dark mode and for common colour blindness.
export const PALETTE = ["#3b78c3", "#e08a2c", "#3a9e6b", "#c8505a", "#8a63c6", "#3ea3b0",
  "#b5892a", "#7f8a96"];

// The top of the axis: four gridline steps of 1, 2 or 5 × 10^k, so labels are round.
function niceMax(v) {
  const raw = Math.max(1, v / 4);
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((x) => x >= raw);
  return 4 * step;
}

// labels: x values (strings); series: [{name, values, cls?, color?}] stacked bottom-up.
export function stackedBars({ labels, series, width = 640, height = 160, tick = (l) => l,
  ticks = 6, label = "" }) {
  const left = 34, bottom = 18, top = 6, plotW = width - left - 4, plotH = height - top - bottom;
  const totals = labels.map((_, i) => series.reduce((a, se) => a + (se.values[i] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": label || null });
  for (let k = 0; k <= 4; k++) {
    const y = top + plotH - (plotH * k) / 4;
    svg.append(s("line", { class: k ? "gridline" : "axis", x1: left, x2: width - 4, y1: y, y2: y }),
      s("text", { x: left - 4, y: y + 3, "text-anchor": "end" }, num((max * k) / 4)));
  }
  const step = plotW / Math.max(1, labels.length);
  const barW = Math.max(1, Math.min(28, step * 0.78));
  const every = Math.max(1, Math.ceil(labels.length / ticks));
  labels.forEach((label, i) => {
    const x = left + i * step + (step - barW) / 2;
    let y = top + plotH;
    const parts = [];
    for (const se of series) {
      const v = se.values[i] || 0;
      if (!v) continue;
      const bh = (plotH * v) / max;
      y -= bh;
      const rect = s("rect", { x: x.toFixed(1), y: y.toFixed(1), width: barW.toFixed(1),
        height: Math.max(0.5, bh).toFixed(1), class: se.cls || null, fill: se.color || null });
      rect.append(s("title", {}, `${tick(label)} · ${se.name}: ${num(v)}`));
      parts.push(rect);
    }
    svg.append(...parts);
    if (i % every === 0) {
      svg.append(s("text", { x: (left + i * step + step / 2).toFixed(1), y: height - 5,
        "text-anchor": "middle" }, tick(label)));
    }
  });
  return svg;
}

// steps: [{name, value}]; each bar's width is its share of the first step, with the
// rate from the step before and from the first.
export function funnel(steps, width = 420) {
  const rowH = 30, labelW = 150, height = steps.length * rowH + 4;
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": steps.map((st) => `${st.name} ${st.value}`).join(", ") });
  const first = steps[0] ? steps[0].value : 0;
  const plotW = width - labelW - 110;
  steps.forEach((st, i) => {
    const y = 2 + i * rowH;
    const w = first ? Math.max(st.value ? 2 : 0, (plotW * st.value) / first) : 0;
    const bar = s("rect", { x: labelW, y: y + 4, width: w.toFixed(1), height: rowH - 10, rx: 2,
      fill: PALETTE[i % PALETTE.length] });
    bar.append(s("title", {}, `${st.name}: ${num(st.value)}`));
    const rate = i === 0 ? "" : `${pct(st.value, steps[i - 1].value)} of previous`;
    svg.append(s("text", { x: 0, y: y + rowH / 2 + 3, class: "label" }, st.name), bar,
      s("text", { x: labelW + w + 6, y: y + rowH / 2 + 3, class: "label" }, num(st.value)),
      s("text", { x: width, y: y + rowH / 2 + 3, "text-anchor": "end" }, rate));
  });
  return svg;
}
