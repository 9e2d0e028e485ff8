// Rules: how often each rule fired and when it last did.

import { getJSON } from "./api.js";
import { $, clear, fullTime, guard, h, num, relative } from "./dom.js";

export async function showRules() {
  const { rules } = await getJSON("rules");
  const max = Math.max(1, ...rules.map((r) => r.hits));
  const frag = document.createDocumentFragment();
  for (const r of [...rules].sort((a, b) => b.hits - a.hits || a.name.localeCompare(b.name))) {
    const bar = h("div", { class: "hbar" });
    bar.style.width = `${(100 * r.hits) / max}%`;
    frag.append(h("tr", { dataset: { rule: r.name } },
      h("td", { title: r.name }, h("b", {}, r.name)),
      h("td", {}, r.event),
      h("td", { class: "num" }, num(r.hits)),
      h("td", { class: "barcell" }, r.hits ? bar : ""),
      h("td", { title: fullTime(r.last_fired) },
        r.last_fired ? `${relative(r.last_fired)} (${fullTime(r.last_fired)})` : "never")));
  }
  clear($("rules-rows")).append(frag);
  $("rules-empty").hidden = rules.length > 0;
}

export function startRules() {
  $("rules-refresh").addEventListener("click", () => guard($("view-rules"), showRules));
}
