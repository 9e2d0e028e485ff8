// The operators' UI: one page, one view per hash (#live, #journey/ID, #sinks,
// #rules, #funnel). The live stream runs from the start, whichever view is shown.

import { forgetToken, hasToken } from "./api.js";
import { $, guard } from "./dom.js";
import { showFunnel, startFunnel } from "./funnel.js";
import { showJourney, startJourney } from "./journey.js";
import { startLive } from "./live.js";
import { showRules, startRules } from "./rules.js";
import { showSinks, startSinks } from "./sinks.js";

const VIEWS = {
  live: null,
  journey: (arg) => showJourney(arg),
  sinks: () => showSinks(),
  rules: () => showRules(),
  funnel: () => showFunnel(),
};
const CONN = { live: "live", retry: "reconnecting…", auth: "token needed", off: "offline" };

function go(hash) {
  if (location.hash === `#${hash}`) route();
  else location.hash = hash;
}

function route() {
  const raw = location.hash.slice(1) || "live";
  const [name, ...rest] = raw.split("/");
  const view = name in VIEWS ? name : "live";
  let arg = "";
  try { arg = decodeURIComponent(rest.join("/")); } catch { /* a mangled link: no argument */ }
  for (const key of Object.keys(VIEWS)) $(`view-${key}`).hidden = key !== view;
  for (const a of document.querySelectorAll(".tabs a")) {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const show = VIEWS[view];
  if (show) guard($(`view-${view}`), () => show(arg));
}

function setConn(state) {
  const el = $("conn");
  el.dataset.state = state;
  el.textContent = CONN[state] || state;
}

// "/" focuses the shown view's search or filter box, as on most consoles.
function onKey(e) {
  if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.target.closest("input, select, textarea, dialog")) return;
  const box = document.querySelector(".view:not([hidden]) input[type=search]");
  if (box) { e.preventDefault(); box.focus(); }
}

function start() {
  $("forget-token").hidden = !hasToken();
  $("forget-token").addEventListener("click", () => { forgetToken(); location.reload(); });
  startLive(setConn);
  startJourney(go);
  startSinks();
  startRules();
  startFunnel();
  window.addEventListener("hashchange", route);
  document.addEventListener("keydown", onKey);
  route();
}

start();
