// Sessions: the gallery of saved sessions, newest first, with a strip of thumbnails per camera.

import { ApiError, apiJson, loadImage } from "./api.js";
import { fillNodeFilter, remoteLinks } from "./fleet.js";
import { sessionLinks, uploadBadge } from "./sessionlinks.js";
import { state } from "./state.js";
import { zoomText } from "./rig.js";
import { $, badge, camName, captureText, deg, h, isoSpan, plural, shortCam } from "./util.js";
import { openSets, openViewer } from "./viewer.js";

const PAGE = 10;
const THUMB_CONCURRENCY = 6;
const SEEK_PAGES = 20; // pages loaded at most to find a session asked for (openSession)

// A link to a session in the gallery (or "–").
export function sessionLink(sessionId) {
  if (!sessionId) return "–";
  return h("a", { href: "#sessions", onclick: () => { state.highlight = sessionId; } }, sessionId);
}

// Shows the gallery with that session highlighted (older pages are loaded until it is listed).
export function openSession(sessionId) {
  state.highlight = sessionId;
  if (location.hash !== "#sessions") location.hash = "#sessions";
  else showSessions();
}

// The view is shown.
export function showSessions() {
  initFilters();
  renderStorage();
  if (state.sessionsStale) refreshSessions(false);
  else if (state.highlight) revealHighlight(0);
}

// Every few seconds while the view is shown: the disk and the upload queue (from the last /status).
export function tickSessions() {
  renderStorage();
}

// -- filters (GET /sessions's query parameters, answered from the catalog) ----------------------
const STATUSES = ["complete", "partial", "failed", "cancelled", "incomplete", "unreadable"];
const X100 = { "sf-pan-min": "pan_min", "sf-pan-max": "pan_max", "sf-tilt-min": "tilt_min", "sf-tilt-max": "tilt_max" };
let filtersReady = false;
let filterQuery = ""; // the filters applied, as "&name=value…"

function initFilters() {
  if (filtersReady || !state.info) return;
  filtersReady = true;
  $("sf-camera").replaceChildren(h("option", { value: "" }, "any camera"),
    ...state.info.cameras.map((c) => h("option", { value: c.camera_id }, shortCam(c.camera_id))));
  $("sf-status").replaceChildren(h("option", { value: "" }, "any status"),
    ...STATUSES.map((v) => h("option", { value: v }, v)));
  fillNodeFilter(); // the fleet's nodes (fleet.js)
  $("sessions-filter").addEventListener("submit", (ev) => {
    ev.preventDefault();
    applyFilters();
  });
  $("sf-clear").addEventListener("click", () => {
    $("sessions-filter").reset();
    applyFilters();
  });
}

// The form as query parameters; degrees become hundredths, local times epoch seconds.
export function filterParams() {
  const params = new URLSearchParams();
  const text = (id, name) => {
    const value = $(id).value.trim();
    if (value) params.set(name, value);
  };
  text("sf-node", "node");
  text("sf-camera", "camera");
  text("sf-status", "status");
  for (const [id, name] of [["sf-since", "since"], ["sf-until", "until"]]) {
    const value = $(id).value;
    if (!value) continue;
    const ms = new Date(value).getTime();
    params.set(name, Number.isFinite(ms) ? String(ms / 1000) : value);
  }
  text("sf-scan", "scan_id");
  for (const [id, name] of Object.entries(X100)) {
    const value = $(id).value.trim();
    if (!value) continue;
    const number = Number(value);
    params.set(name, Number.isFinite(number) ? String(Math.round(number * 100)) : value);
  }
  text("sf-q", "q");
  return params;
}

function applyFilters() {
  const params = filterParams().toString();
  filterQuery = params ? `&${params}` : "";
  refreshSessions(false);
}

// -- the disk and the upload queue (GET /status "disk" and "uploads") --------------------------
function mb(value) {
  if (typeof value !== "number") return "–";
  return value >= 10240 ? `${(value / 1024).toFixed(1)} GB` : `${Math.round(value)} MB`;
}

function bytes(n) {
  if (typeof n !== "number") return "–";
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  return `${Math.round(n / 1e3)} kB`;
}

export function renderStorage() {
  const st = state.status || {};
  const disk = st.disk;
  const diskLine = $("sessions-disk");
  if (disk && typeof disk === "object") {
    const reserve = disk.min_free_mb > 0 ? ` (reserve ${mb(disk.min_free_mb)})` : "";
    diskLine.textContent = `Disk: ${mb(disk.free_mb)} free of ${mb(disk.total_mb)}${reserve}`;
    diskLine.hidden = false;
  } else {
    diskLine.hidden = true;
  }
  const warning = $("sessions-disk-warning");
  warning.textContent = disk && disk.warning ? disk.warning : "";
  warning.hidden = !(disk && disk.warning);
  const up = st.uploads;
  const upLine = $("sessions-uploads");
  if (up && up.enabled) {
    const err = up.last_error;
    upLine.replaceChildren(
      `Uploads to ${up.target}: ${up.activity}, ${plural(up.sessions_pending, "session")}`
        + `${up.scans_pending ? ` and ${plural(up.scans_pending, "scan")}` : ""} pending (${bytes(up.bytes_pending)})`
        + `, ${up.rate_mb_s} MB/s`,
      err ? h("span", { class: "upload-error" }, ` · last error: ${err.message || err}${err.item ? ` (${err.item})` : ""}`) : null);
    upLine.hidden = false;
  } else {
    upLine.hidden = true;
  }
}

// Gallery thumbnails: a few at a time, and only once they scroll into view.
const thumbQueue = [];
let thumbsRunning = 0;

function queueThumb(img, url) {
  thumbQueue.push([img, url]);
  pumpThumbs();
}

function pumpThumbs() {
  while (thumbsRunning < THUMB_CONCURRENCY && thumbQueue.length) {
    const [img, url] = thumbQueue.shift();
    thumbsRunning++;
    loadImage(img, url)
      .then(() => img.classList.add("loaded"))
      .catch(() => { img.alt = "thumbnail unavailable"; })
      .finally(() => {
        thumbsRunning--;
        pumpThumbs();
      });
  }
}

const thumbObserver = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    thumbObserver.unobserve(entry.target);
    queueThumb(entry.target, entry.target.dataset.src);
  }
}, { rootMargin: "200px" });

export async function refreshSessions(more, seeking = 0) {
  const offset = more ? state.sessionsShown : 0;
  const query = filterQuery;
  let body;
  try {
    body = await apiJson(`/sessions?limit=${PAGE}&offset=${offset}${query}`);
  } catch (err) {
    const box = $("sessions-filter-error");
    if (err instanceof ApiError && err.status === 400) {
      box.textContent = `The service refused the filters: ${err.message}`;
      box.hidden = false;
    } else {
      $("sessions-count").textContent = `cannot list sessions: ${err.message}`;
    }
    return;
  }
  if (query !== filterQuery) return; // the filters changed meanwhile: that answer is coming
  $("sessions-filter-error").hidden = true;
  $("sessions-partial").hidden = !body.partial;
  state.sessionsStale = false;
  const list = $("sessions");
  if (!more) {
    for (const img of list.querySelectorAll("img[data-blob]")) URL.revokeObjectURL(img.dataset.blob);
    list.replaceChildren();
  }
  for (const s of body.sessions) list.append(sessionCard(s));
  state.sessionsShown = offset + body.sessions.length;
  state.sessionsTotal = body.total;
  $("sessions-count").textContent = `${state.sessionsShown} of ${plural(body.total, "session")}`
    + `${query ? " matching the filters" : ""}, newest first`;
  $("sessions-more").hidden = state.sessionsShown >= body.total;
  if (state.highlight) revealHighlight(seeking);
}

// Highlights state.highlight's card; loads older pages while it is not listed yet.
function revealHighlight(seeking) {
  const list = $("sessions");
  for (const old of list.querySelectorAll(".session.highlight")) old.classList.remove("highlight");
  const card = list.querySelector(`.session[data-session="${CSS.escape(state.highlight)}"]`);
  if (card) {
    card.classList.add("highlight");
    card.scrollIntoView({ block: "nearest" });
    state.highlight = null;
  } else if (state.sessionsShown < state.sessionsTotal && seeking < SEEK_PAGES) {
    refreshSessions(true, seeking + 1);
  } else {
    state.highlight = null;
  }
}

function sessionCard(s) {
  const pose = s.pose || {};
  const seconds = typeof s.record_ended_at === "number" && typeof s.record_started_at === "number"
    ? `${(s.record_ended_at - s.record_started_at).toFixed(2)} s` : null;
  const zooms = Object.entries(pose.zooms || {}).map(([cam, v]) => zoomText(cam, v)).join(", ");
  const card = h("article", { class: "session", dataset: { session: s.session_id } },
    h("div", { class: "meta" },
      h("span", { class: "sid" }, s.session_id),
      badge(s.status),
      h("span", { class: "window", title: "The recording's window (capture time), local time" },
        isoSpan(s.record_started_at, s.record_ended_at)),
      seconds ? h("span", {}, seconds) : null,
      typeof pose.pan_deg_x100 === "number"
        ? h("span", {}, `pan ${deg(pose.pan_deg_x100)} · tilt ${deg(pose.tilt_deg_x100)}`) : null,
      typeof pose.distance_m === "number" && pose.distance_m > 0 ? h("span", {}, `${pose.distance_m.toFixed(1)} m`) : null,
      zooms ? h("span", { class: "muted" }, zooms) : null,
      typeof s.frame_count === "number" ? h("span", { class: "muted" }, plural(s.frame_count, "frame")) : null,
      s.label ? h("span", { class: "muted" }, s.label) : null,
      s.scan_id ? h("span", { class: "muted small" }, `scan ${s.scan_id}`) : null,
      uploadBadge(s.upload_state, null),
      h("span", { class: "spacer" }),
      ...(s.remote ? remoteLinks(s) : []), // another node's session (fleet.js)
      Object.keys(s.cameras || {}).length > 1 && s.manifest ? h("button", {
        type: "button", class: "sets", title: "Step through the frames taken at the same instant, cameras side by side",
        onclick: () => openSets(s.session_id),
      }, "Sets") : null,
      s.remote ? null : sessionLinks(s.session_id, Boolean(s.manifest))));
  if (s.remote) return card; // its frames are on its node
  if (!s.manifest) {
    card.append(h("p", { class: "muted small" }, s.error || "No session.json yet: still recording, or interrupted."));
  }
  for (const [cam, info] of Object.entries(s.cameras || {})) {
    const strip = h("div", { class: "strip" });
    for (const item of info.strip || []) {
      const url = `/sessions/${encodeURIComponent(s.session_id)}/thumbs/${item.file.split("/").map(encodeURIComponent).join("/")}?size=160`;
      const img = h("img", { alt: `${shortCam(cam)} frame ${item.index + 1}`, dataset: { src: url } });
      strip.append(h("button", {
        type: "button", title: `${item.file} — open full size`,
        onclick: () => openViewer(s.session_id, cam, item.index, info.strip),
      }, img));
      thumbObserver.observe(img);
    }
    card.append(h("div", { class: "cam", dataset: { camera: cam } },
      h("div", { class: "label" }, camName(cam, "strong"),
        h("span", { class: "muted" }, `${plural(info.frame_count, "frame")}, ${info.rejected_frames} rejected`),
        captureInfo(cam, info, s.capture)),
      info.strip && info.strip.length ? strip : h("span", { class: "muted small" }, "no frames")));
  }
  return card;
}

// How a camera's capture times were known, how late its frames came, and what went wrong with them.
function captureInfo(cam, info, capture) {
  const text = captureText(info.time_sources, info.delay_s);
  const clock = info.clock && typeof info.clock === "object" ? info.clock : null;
  const failed = clock && clock.status === "failed";
  const unconfirmed = Boolean(capture && (capture.unconfirmed || []).includes(cam));
  if (!text && !failed && !unconfirmed) return null;
  const title = ["Time source (stamp: the camera's clock; arrival, fallback: arrival less latency)",
    "delay: arrival less capture, median / p99 / max"];
  if (clock && (clock.reasons || []).length) title.push(`camera clock ${clock.status}: ${clock.reasons.join("; ")}`);
  return h("span", { class: `capture${failed || unconfirmed ? " warn" : ""}`, title: title.join(" · ") },
    text,
    failed ? " · camera clock failed" : null,
    unconfirmed ? " · late frames not confirmed" : null);
}
