// Small helpers shared by every view: element lookup and creation, formatting.

export const $ = (id) => document.getElementById(id);
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// h("a", {href: "#x", onclick: fn, dataset: {k: v}}, "text", child, [more]): an element. Attributes
// that are null, undefined or false are left out; "on…" keys add event listeners.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// Hundredths of a degree, as "12.50°".
export function deg(x100) {
  return typeof x100 === "number" ? `${(x100 / 100).toFixed(2)}°` : "–";
}

// Epoch seconds as a local time (with the date unless it is today).
export function when(epoch) {
  if (typeof epoch !== "number") return "–";
  const d = new Date(epoch * 1000);
  const today = new Date();
  const time = d.toLocaleTimeString([], { hour12: false });
  return d.toDateString() === today.toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
}

export function shortCam(id) {
  return String(id).replace(/^cameradevice_/, "");
}

export function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

// The badge class for a job's, a scan's or a request's status.
const BADGES = {
  succeeded: "ok", done: "ok", complete: "ok",
  failed: "bad", rejected: "bad", unreadable: "bad",
  cancelled: "warn", running: "warn", interrupted: "warn", partial: "warn", incomplete: "warn",
};

export function badge(status, text) {
  return h("span", { class: `badge ${BADGES[status] || ""}` }, text ?? status ?? "–");
}

export function badgeClass(status) {
  return `badge ${BADGES[status] || ""}`;
}

// A list of problems (strings) in a box: hidden when there are none.
export function showProblems(box, lines) {
  if (!lines.length) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  box.replaceChildren(lines.length === 1 ? lines[0] : h("ul", {}, lines.map((l) => h("li", {}, l))));
  box.hidden = false;
}

// Whether `value` differs from the last one seen under `key` (as JSON). Lists refreshed by polling
// are rebuilt only when they changed, so a click is never lost to a rebuild under the pointer.
const seen = new Map();

export function changed(key, value) {
  const json = JSON.stringify(value);
  if (seen.get(key) === json) return false;
  seen.set(key, json);
  return true;
}

export function forget(key) {
  seen.delete(key);
}
