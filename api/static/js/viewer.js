// The frame viewer: one frame full size; ← → step through every frame of that camera. In "sets" mode
// (GET /sessions/<id>/frame_sets) it shows one frame per camera taken at the same instant, side by
// side; ← →, the buttons and the slider step through the sets.

import { apiJson, download, loadImage } from "./api.js";
import { sessionLinks, uploadBadge } from "./sessionlinks.js";
import { state } from "./state.js";
import { zoomText } from "./rig.js";
import { $, deg, h, isoLocal, plural, shortCam, when } from "./util.js";

const SET_IMAGE_SIZE = 960; // the side of each camera's image in a set (a cached thumbnail)

function manifest(sessionId) {
  if (!state.manifests.has(sessionId)) {
    const p = apiJson(`/sessions/${encodeURIComponent(sessionId)}`).catch((err) => {
      state.manifests.delete(sessionId);
      throw err;
    });
    state.manifests.set(sessionId, p);
  }
  return state.manifests.get(sessionId);
}

function fileUrl(sessionId, file) {
  return `/sessions/${encodeURIComponent(sessionId)}/files/${file.split("/").map(encodeURIComponent).join("/")}`;
}

// The session's links and upload state in the viewer's bar (once its manifest is here).
async function showSessionBar(sessionId) {
  $("viewer-links").replaceChildren(sessionLinks(sessionId));
  try {
    const m = await manifest(sessionId);
    if (!state.viewer || state.viewer.sessionId !== sessionId) return;
    const upload = m.upload && typeof m.upload === "object" ? m.upload : null;
    $("viewer-links").replaceChildren(uploadBadge(upload && upload.state, upload) || "", sessionLinks(sessionId));
  } catch (err) {
    /* the links stay */
  }
}

function setMode(sets) {
  $("viewer-sets").hidden = !sets;
  $("viewer-slider").hidden = !sets;
  $("viewer-img").hidden = sets;
  $("viewer-original").hidden = sets;
}

export async function openViewer(sessionId, camera, index, strip) {
  // Start with the strip's entries; the whole list comes with the manifest.
  state.viewer = { sessionId, camera, index, frames: strip.map((s) => ({ file: s.file, _index: s.index })), partial: true };
  setMode(false);
  $("viewer").hidden = false;
  showSessionBar(sessionId);
  await showFrame();
  try {
    const m = await manifest(sessionId);
    const frames = ((m.cameras || {})[camera] || {}).frames;
    if (Array.isArray(frames) && state.viewer && state.viewer.sessionId === sessionId && state.viewer.mode !== "sets") {
      state.viewer.frames = frames;
      state.viewer.partial = false;
      renderCaption();
    }
  } catch (err) {
    /* the strip is enough to look around */
  }
}

function currentFrame() {
  const v = state.viewer;
  if (!v || v.mode === "sets") return null;
  if (v.partial) return v.frames.find((f) => f._index === v.index) || v.frames[0];
  return v.frames[v.index];
}

async function showFrame() {
  const frame = currentFrame();
  if (!frame) return;
  const url = `${fileUrl(state.viewer.sessionId, frame.file)}?view=1`;
  renderCaption();
  try {
    const img = $("viewer-img");
    await loadImage(img, url);
    img.classList.toggle("small", img.naturalWidth > 0 && img.naturalWidth < 800);
  } catch (err) {
    $("viewer-caption").textContent = `Cannot show ${frame.file}: ${err.message}`;
  }
}

function renderCaption() {
  const v = state.viewer;
  const frame = currentFrame();
  if (!v || !frame) return;
  const total = v.partial ? "…" : v.frames.length;
  $("viewer-title").textContent = `${v.sessionId} · ${shortCam(v.camera)} · frame ${v.index + 1} of ${total}`;
  const pose = frame.pose || {};
  const bits = [frame.file];
  if (typeof frame.captured_at === "number") {
    bits.push(`captured ${isoLocal(frame.captured_at).slice(11)}${frame.time_source ? ` (${frame.time_source})` : ""}`);
  }
  if (typeof frame.received_at === "number") bits.push(`received ${when(frame.received_at)}`);
  if (frame.frame_index !== undefined && frame.frame_index !== null) bits.push(`camera frame #${frame.frame_index}`);
  if (typeof pose.pan_deg_x100 === "number") bits.push(`pan ${deg(pose.pan_deg_x100)}, tilt ${deg(pose.tilt_deg_x100)}`);
  if (pose.zoom !== undefined && pose.zoom !== null) bits.push(zoomText(v.camera, pose.zoom));
  if (typeof pose.distance_m === "number" && pose.distance_m > 0) bits.push(`${pose.distance_m} m`);
  $("viewer-caption").textContent = bits.join(" · ");
}

// -- sets mode ----------------------------------------------------------------------------------
export async function openSets(sessionId) {
  state.viewer = { mode: "sets", sessionId, index: 0, sets: null, shown: 0 };
  setMode(true);
  $("viewer-sets").replaceChildren();
  $("viewer-title").textContent = `${sessionId} · frame sets`;
  $("viewer-caption").textContent = "Loading the frame sets…";
  $("viewer").hidden = false;
  showSessionBar(sessionId);
  let body;
  try {
    body = await apiJson(`/sessions/${encodeURIComponent(sessionId)}/frame_sets`);
  } catch (err) {
    if (state.viewer && state.viewer.sessionId === sessionId) {
      $("viewer-caption").textContent = `No frame sets: ${err.message}`;
    }
    return;
  }
  const v = state.viewer;
  if (!v || v.mode !== "sets" || v.sessionId !== sessionId) return;
  v.sets = body;
  const slider = $("viewer-slider");
  slider.min = "0";
  slider.max = String(Math.max(0, body.sets.length - 1));
  slider.value = "0";
  $("viewer-sets").replaceChildren(...body.cameras.map((cam) => h("figure", { class: "set-cam", dataset: { camera: cam } },
    h("img", { alt: shortCam(cam) }), h("figcaption", { title: cam }, shortCam(cam)))));
  showSet();
}

// A set's time: a wall-clock time to the millisecond when the clock is one (capture and arrival
// times, and cameras stamping epoch time), else the camera's seconds.
const SET_CLOCKS = { capture: "captured", arrival: "received", camera: "camera time" };

function setTime(sets, set) {
  const what = SET_CLOCKS[sets.clock] || sets.clock;
  const seconds = set.timestamp_ns / 1e9;
  if (seconds < 1e9) return `${what} ${seconds.toFixed(3)} s`;
  const millis = String(Math.floor(set.timestamp_ns / 1e6) % 1000).padStart(3, "0");
  return `${what} ${when(seconds)}.${millis}`;
}

async function showSet() {
  const v = state.viewer;
  const sets = v.sets;
  if (!sets.sets.length) {
    $("viewer-title").textContent = `${v.sessionId} · no frame sets`;
    const unmatched = Object.entries(sets.unmatched || {}).map(([c, n]) => `${shortCam(c)}: ${n}`).join(", ");
    $("viewer-caption").textContent = `No frames of these cameras were taken within ${sets.tolerance_ms} ms of each other`
      + `${unmatched ? ` (unmatched ${unmatched})` : ""}.`;
    return;
  }
  const set = sets.sets[v.index];
  $("viewer-slider").value = String(v.index);
  $("viewer-title").textContent = `${v.sessionId} · set ${v.index + 1} of ${sets.sets.length}`;
  const unmatched = Object.entries(sets.unmatched || {}).filter(([, n]) => n > 0).map(([c, n]) => `${shortCam(c)} ${n}`);
  $("viewer-caption").textContent = [
    setTime(sets, set),
    `spread ${set.spread_ms.toFixed(2)} ms (tolerance ${sets.tolerance_ms} ms)`,
    plural(sets.sets.length, "set"),
    unmatched.length ? `unmatched frames: ${unmatched.join(", ")}` : null,
  ].filter(Boolean).join(" · ");
  const shown = ++v.shown; // a later step wins over a slower image of an earlier one
  await Promise.all(Array.from($("viewer-sets").querySelectorAll("figure")).map(async (fig) => {
    const cam = fig.dataset.camera;
    const file = set.frames[cam];
    fig.querySelector("figcaption").textContent = `${shortCam(cam)} · ${file ? file.split("/").pop() : "–"}`;
    const img = fig.querySelector("img");
    if (!file) return;
    const url = `/sessions/${encodeURIComponent(v.sessionId)}/thumbs/${file.split("/").map(encodeURIComponent).join("/")}?size=${SET_IMAGE_SIZE}`;
    try {
      if (state.viewer === v && v.shown === shown) await loadImage(img, url);
      img.dataset.file = file;
    } catch (err) {
      img.alt = `${file}: ${err.message}`;
    }
  }));
}

function stepSets(to) {
  const v = state.viewer;
  if (!v.sets || !v.sets.sets.length) return;
  const next = Math.min(Math.max(to, 0), v.sets.sets.length - 1);
  if (next === v.index) return;
  v.index = next;
  showSet();
}

function stepViewer(delta) {
  const v = state.viewer;
  if (!v) return;
  if (v.mode === "sets") {
    stepSets(v.index + delta);
    return;
  }
  if (v.partial) {
    const pos = v.frames.findIndex((f) => f._index === v.index) + delta;
    if (pos < 0 || pos >= v.frames.length) return;
    v.index = v.frames[pos]._index;
  } else {
    const next = v.index + delta;
    if (next < 0 || next >= v.frames.length) return;
    v.index = next;
  }
  showFrame();
}

function closeViewer() {
  state.viewer = null;
  $("viewer").hidden = true;
  const img = $("viewer-img");
  if (img.dataset.blob) URL.revokeObjectURL(img.dataset.blob);
  delete img.dataset.blob;
  img.removeAttribute("src");
  for (const setImg of $("viewer-sets").querySelectorAll("img[data-blob]")) URL.revokeObjectURL(setImg.dataset.blob);
  $("viewer-sets").replaceChildren();
  $("viewer-links").replaceChildren();
  setMode(false);
}

export function initViewer() {
  $("viewer-close").addEventListener("click", closeViewer);
  $("viewer-prev").addEventListener("click", () => stepViewer(-1));
  $("viewer-next").addEventListener("click", () => stepViewer(1));
  $("viewer-slider").addEventListener("input", (ev) => {
    if (state.viewer && state.viewer.mode === "sets") stepSets(Number(ev.target.value));
  });
  $("viewer-original").addEventListener("click", () => {
    const frame = currentFrame();
    if (!frame) return;
    download(fileUrl(state.viewer.sessionId, frame.file), frame.file.split("/").pop()).catch((err) => alert(err.message));
  });
  document.addEventListener("keydown", (ev) => {
    if (!state.viewer) return;
    if (ev.target === $("viewer-slider") && ev.key !== "Escape") return; // the slider steps itself
    if (ev.key === "Escape") closeViewer();
    if (ev.key === "ArrowLeft") stepViewer(-1);
    if (ev.key === "ArrowRight") stepViewer(1);
  });
}
