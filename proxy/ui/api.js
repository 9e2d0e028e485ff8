// The operators' JSON API and its bearer token.
//
// The page is served at {prefix}/ui/ and the API lives at {prefix}/api/, so every URL
// is relative to the page: whatever the prefix, nothing needs configuring. With
// `[admin] token` set the API answers 401; the page then asks for the token once,
// keeps it in sessionStorage (this tab only) and sends it as `Authorization: Bearer`.
// The live stream is read with fetch() rather than EventSource, because EventSource
// cannot send that header.

import { $ } from "./dom.js";
import { SseParser } from "./sse.js";

const KEY = "careers-edge.admin-token";
const BASE = new URL("../api/", document.baseURI);
let asking = null;          // one prompt shared by every request that met a 401

export function apiURL(path) {
  return new URL(path, BASE).href;
}

function headers(extra) {
  const token = sessionStorage.getItem(KEY);
  const h = { Accept: "application/json", ...extra };
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
}

export function hasToken() {
  return sessionStorage.getItem(KEY) !== null;
}

// Resolves once the operator has entered a token (shown with `error` when one failed).
export function askToken(error) {
  if (asking) return asking;
  const dialog = $("token-dialog"), form = $("token-form"), input = $("token-input");
  const message = $("token-error");
  message.hidden = !error;
  message.textContent = error || "";
  input.value = "";
  asking = new Promise((resolve) => {
    const done = () => {
      form.removeEventListener("submit", submit);
      dialog.removeEventListener("close", done);
      asking = null;
      resolve();
    };
    const submit = (e) => {
      e.preventDefault();
      sessionStorage.setItem(KEY, input.value.trim());
      $("forget-token").hidden = false;
      dialog.close();       // "close" runs done()
    };
    form.addEventListener("submit", submit);
    // Closed without a token (Escape): the request that asked tries again, and asks again.
    dialog.addEventListener("close", done);
  });
  dialog.showModal();
  input.focus();
  return asking;
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

// fetch() with the token; a 401 asks for the token and tries again.
export async function request(path, init = {}) {
  for (;;) {
    const hadToken = hasToken();
    const r = await fetch(apiURL(path), { ...init, headers: headers(init.headers), cache: "no-store" });
    if (r.status !== 401) return r;
    await askToken(hadToken ? "That token was refused." : "");
  }
}

async function parse(r) {
  let body = null;
  try { body = await r.json(); } catch { /* not JSON: described by the status */ }
  if (!r.ok) throw new ApiError(r.status, body && (body.detail || body.error));
  return body;
}

export async function getJSON(path) {
  return parse(await request(path));
}

export async function postJSON(path) {
  return parse(await request(path, { method: "POST" }));
}

// The server-sent events of /api/stream (sse.js) over a fetch() that carries the token; reconnects after the server's `retry:` delay.
// `onState` hears "live", "retry" and "auth".
export function stream(onEvent, onState) {
  let delay = 2000;
  const connect = async () => {
    try {
      const r = await fetch(apiURL("stream"), {
        headers: headers({ Accept: "text/event-stream" }), cache: "no-store" });
      if (r.status === 401) {
        onState("auth");
        await askToken(hasToken() ? "That token was refused." : "");
        return connect();
      }
      if (!r.ok || !r.body) throw new ApiError(r.status);
      onState("live");
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      const parser = new SseParser(onEvent, (ms) => { delay = ms; });
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(value);
      }
    } catch (err) {
      console.warn("live stream:", err.message || err);
    }
    onState("retry");
    setTimeout(connect, delay);
  };
  connect();
}
