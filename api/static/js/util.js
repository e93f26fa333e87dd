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

// A state field and its value as people read it: a field in hundredths of a degree in degrees
// ("pan_deg_x100", 4500 → "pan 45.00°"), any other as it is ("zoom_step 3").
export function fieldText(key, value) {
  if (String(key).endsWith("_deg_x100") && typeof value === "number") {
    return `${String(key).slice(0, -"_deg_x100".length)} ${deg(value)}`;
  }
  return `${key} ${value}`;
}

// Epoch seconds as a local ISO 8601 time to the second, "2026-11-23T20:30:16" (the browser's zone),
// as every list shows times; the title of its element can carry isoLocal's milliseconds.
export function when(epoch) {
  if (typeof epoch !== "number") return "–";
  return isoLocal(epoch).slice(0, 19);
}

// Epoch seconds as local ISO 8601 to the millisecond, "2026-11-23T20:30:16.412" (the browser's zone).
export function isoLocal(epoch) {
  if (typeof epoch !== "number") return "–";
  const d = new Date(epoch * 1000);
  const p = (n, width = 2) => String(n).padStart(width, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`
    + `:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

// A window as "<start> → <end>" in local ISO; the end's date is left out when it is the start's.
export function isoSpan(start, end) {
  const a = isoLocal(start);
  if (typeof end !== "number") return a;
  const b = isoLocal(end);
  return `${a} → ${b.slice(0, 10) === a.slice(0, 10) ? b.slice(11) : b}`;
}

// A camera's capture times as "stamp · delay 0.400 / 0.430 / 0.450 s" (time sources with their frame
// counts when several; the delay's median / 99th percentile / max, arrival less capture); "" for a
// session saved before capture times were kept.
export function captureText(timeSources, delay) {
  const sources = Object.entries(timeSources || {});
  const bits = [];
  if (sources.length === 1) bits.push(sources[0][0]);
  else if (sources.length) bits.push(sources.map(([name, n]) => `${name} ${n}`).join(", "));
  const s = (v) => (typeof v === "number" ? v.toFixed(3) : "–");
  if (delay && typeof delay === "object") bits.push(`delay ${s(delay.median)} / ${s(delay.p99)} / ${s(delay.max)} s`);
  return bits.join(" · ");
}

// A camera's short name as people read it ("lwir_1" for cameradevice_lwir_1).
export function shortCam(id) {
  return String(id).replace(/^cameradevice_/, "");
}

// A camera's name shown short, the full id in its tooltip.
export function camName(id, tag = "span") {
  return h(tag, { title: String(id) }, shortCam(id));
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
