// rigcapture dashboard: plain ES2020, no build step, no library.
//
// Every call goes through api(), which adds "Authorization: Bearer <token>" when a token is kept in
// localStorage and asks for one when the service answers 401. Images are fetched the same way and
// shown through blob URLs, because an <img src> cannot send a header. Live data is polled (an
// EventSource cannot send the Authorization header either).
"use strict";

const TOKEN_KEY = "rigcapture.token";
const STATUS_EVERY_MS = 500;
const LIVE_EVERY_MS = 300; // per camera: about three thumbnails a second
const JOB_EVERY_MS = 300;
const LIST_EVERY_MS = 3000;
const THUMB_CONCURRENCY = 6;
const PHASES = ["queued", "commanding", "settling", "recording", "saving", "done"];
const DEFAULT_CAMERAS = ["swir", "lwir", "rgb"]; // checked on first load, by substring

const state = {
  token: localStorage.getItem(TOKEN_KEY) || "",
  view: "live",
  info: null, // GET /cameras
  status: null, // GET /status
  reachable: true,
  jobId: null,
  job: null,
  jobDuration: null,
  sessionsShown: 0,
  sessionsTotal: 0,
  sessionsStale: true,
  manifests: new Map(), // session id -> manifest promise (for the frame viewer)
  viewer: null, // {sessionId, camera, frames, index}
};

// -- small helpers -----------------------------------------------------------------------------
const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function h(tag, attrs, ...children) {
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

function deg(x100) {
  return typeof x100 === "number" ? `${(x100 / 100).toFixed(2)}°` : "–";
}

function when(epoch) {
  if (typeof epoch !== "number") return "–";
  const d = new Date(epoch * 1000);
  const today = new Date();
  const time = d.toLocaleTimeString([], { hour12: false });
  return d.toDateString() === today.toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
}

function shortCam(id) {
  return String(id).replace(/^cameradevice_/, "");
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// -- the API and the token ---------------------------------------------------------------------
let tokenPrompt = null; // one shared prompt however many calls were refused

function askToken(reason) {
  $("token-reason").textContent = reason;
  $("token-input").value = "";
  $("token-modal").hidden = false;
  $("token-input").focus();
  if (!tokenPrompt) {
    tokenPrompt = new Promise((resolve) => {
      $("token-form").onsubmit = (ev) => {
        ev.preventDefault();
        const value = $("token-input").value.trim();
        if (!value) return;
        setToken(value);
        $("token-modal").hidden = true;
        tokenPrompt = null;
        resolve();
      };
    });
  }
  return tokenPrompt;
}

function setToken(value) {
  state.token = value;
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

async function api(path, options = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = new Headers(options.headers || {});
    if (state.token) headers.set("Authorization", `Bearer ${state.token}`);
    let resp;
    try {
      resp = await fetch(path, { ...options, headers });
    } catch (err) {
      setReachable(false, `cannot reach the service (${err.message})`);
      throw new ApiError(0, "cannot reach the service: is it running?", null);
    }
    setReachable(true);
    if (resp.status === 401 && attempt < 5) {
      const reason = state.token
        ? "The service refused the token kept in this browser. Enter the token set in api.token."
        : "This service needs the token set in api.token.";
      await askToken(reason);
      continue;
    }
    return resp;
  }
}

async function apiJson(path, options = {}) {
  const resp = await api(path, options);
  let body = null;
  try {
    body = await resp.json();
  } catch (err) {
    body = null;
  }
  if (!resp.ok) {
    const message = body && body.error ? body.error : `the service answered ${resp.status} ${resp.statusText}`;
    throw new ApiError(resp.status, message, body);
  }
  return body;
}

// Shows an image fetched with the token; the previous blob URL of that <img> is released.
async function loadImage(img, url) {
  const resp = await api(url);
  if (!resp.ok) {
    let message = `${resp.status}`;
    try {
      message = (await resp.json()).error || message;
    } catch (err) {
      /* not JSON */
    }
    throw new ApiError(resp.status, message, null);
  }
  const blob = await resp.blob();
  const next = URL.createObjectURL(blob);
  // Decode off-screen first, then swap: the <img> never shows a half-loaded (blank) frame.
  const probe = new Image();
  probe.src = next;
  try {
    await probe.decode();
  } catch (err) {
    URL.revokeObjectURL(next);
    throw new ApiError(0, "the image could not be decoded", null);
  }
  img.src = next;
  const previous = img.dataset.blob;
  img.dataset.blob = next;
  if (previous) URL.revokeObjectURL(previous);
  return resp;
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

async function download(url, filename) {
  if (!state.token) {
    // No token: let the browser stream the file to disk itself.
    const a = h("a", { href: url, download: filename });
    document.body.append(a);
    a.click();
    a.remove();
    return;
  }
  // With a token the request needs the header, so it goes through fetch (held in memory).
  const resp = await api(url);
  if (!resp.ok) throw new ApiError(resp.status, `download failed: ${resp.status}`, null);
  const blobUrl = URL.createObjectURL(await resp.blob());
  const a = h("a", { href: blobUrl, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(blobUrl), 60000);
}

function setReachable(ok, why) {
  state.reachable = ok;
  const pill = $("pill-service");
  pill.textContent = ok ? "service up" : "service unreachable";
  pill.className = `pill ${ok ? "ok" : "bad"}`;
  const banner = $("banner");
  if (ok) {
    banner.hidden = true;
  } else {
    banner.textContent = `The dashboard ${why || "cannot reach the service"}; retrying…`;
    banner.hidden = false;
  }
}

// -- views -------------------------------------------------------------------------------------
function showView(name) {
  if (!["live", "jobs", "history", "sessions"].includes(name)) name = "live";
  state.view = name;
  for (const section of document.querySelectorAll("section.view")) {
    section.hidden = section.dataset.view !== name;
  }
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.view === name);
  }
  if (name === "jobs") refreshJobs();
  if (name === "history") refreshHistory();
  if (name === "sessions" && state.sessionsStale) refreshSessions(false);
}

// -- the rig -----------------------------------------------------------------------------------
async function statusLoop() {
  for (;;) {
    try {
      state.status = await apiJson("/status");
      renderStatus(state.status);
    } catch (err) {
      if (err.status) $("status-age").textContent = `status unavailable: ${err.message}`;
    }
    await sleep(state.reachable ? STATUS_EVERY_MS : 2000);
  }
}

function renderStatus(st) {
  const pose = st.pose || {};
  const pantilt = state.info ? state.info.pantilt.device_id : null;
  $("pose-pan").textContent = deg(pose.pan_deg_x100);
  $("pose-tilt").textContent = deg(pose.tilt_deg_x100);
  const dist = pose.distance_m;
  $("pose-distance").textContent = typeof dist === "number" && dist > 0 ? `${dist.toFixed(2)} m` : "no reading";
  const device = (st.devices || {})[pantilt] || {};
  const motion = $("pose-motion");
  if (device.settled === true) {
    motion.textContent = "settled";
    motion.className = "badge ok";
  } else if (device.settled === false) {
    motion.textContent = "moving";
    motion.className = "badge warn";
  } else {
    motion.textContent = device.state ? "unknown" : "no state";
    motion.className = "badge";
  }
  const zooms = $("pose-zooms");
  zooms.replaceChildren(
    ...Object.entries(pose.zooms || {}).map(([cam, value]) => {
      const dev = (st.devices || {})[cam] || {};
      const moving = dev.settled === false ? " (moving)" : "";
      return h("div", {}, h("dt", {}, `${shortCam(cam)} zoom`),
        h("dd", { id: `pose-zoom-${cam}` }, `${value ?? "–"}${moving}`));
    }),
  );
  const broker = st.broker || {};
  const bp = $("pill-broker");
  bp.textContent = broker.connected ? "broker connected" : `broker down${broker.last_error ? `: ${broker.last_error}` : ""}`;
  bp.className = `pill ${broker.connected ? "ok" : "bad"}`;
  bp.title = `${broker.host}:${broker.port}`;
  const streams = st.streams || [];
  const up = streams.filter((s) => s.connected).length;
  const sp = $("pill-streams");
  sp.textContent = streams.length === 1 ? (up ? "stream connected" : "stream down") : `streams ${up}/${streams.length}`;
  sp.className = `pill ${up === streams.length ? "ok" : "bad"}`;
  sp.title = streams.map((s) => `${s.url}: ${s.connected ? "connected" : s.last_error || "down"}`).join("\n");
  const age = device.age_s;
  $("status-age").textContent = typeof age === "number"
    ? `pan-tilt state ${age.toFixed(1)} s old · transport ${st.command_transport} · queue ${st.queue_length}`
    : "no pan-tilt state received yet";
  for (const [cam, info] of Object.entries(st.cameras || {})) {
    const foot = document.querySelector(`.camera[data-camera="${CSS.escape(cam)}"] .foot`);
    if (!foot) continue;
    const last = typeof info.last_frame_age_s === "number" ? `last ${info.last_frame_age_s.toFixed(1)} s ago` : "no frame yet";
    const rate = st.stream_rate === "idle" ? " (stream idle between jobs)" : "";
    foot.textContent = `${info.fps.toFixed(1)} fps${rate} · ${info.frames} frames · ${info.rejected_frames} rejected · ${last}`;
    foot.dataset.fps = info.fps;
  }
  if (!state.formFilled && typeof pose.pan_deg_x100 === "number") {
    state.formFilled = true;
    fillCurrentPose();
  }
}

function buildCameras() {
  const grid = $("cameras");
  grid.replaceChildren();
  for (const cam of state.info.cameras) {
    const img = h("img", { alt: `${cam.camera_id}, live`, hidden: true });
    const note = h("span", { class: "note" }, "waiting for a frame…");
    const card = h("div", { class: "camera", dataset: { camera: cam.camera_id } },
      h("div", { class: "head" }, h("span", { class: "name", title: cam.camera_id }, cam.camera_id),
        h("span", { class: "muted" }, cam.pixel_format)),
      h("div", { class: "frame" }, img, note),
      h("div", { class: "foot" }, "–"));
    grid.append(card);
    liveLoop(cam.camera_id, img, note);
  }
}

async function liveLoop(camera, img, note) {
  for (;;) {
    const started = performance.now();
    // A camera that has sent no frame yet (per /status) is not asked for one: no 404 every second.
    const info = ((state.status || {}).cameras || {})[camera];
    const waiting = !info || !info.frames;
    if (waiting && state.view === "live") {
      img.hidden = true;
      note.hidden = false;
      note.textContent = "no frame received yet";
    } else if (state.view === "live" && !document.hidden && state.reachable) {
      try {
        await loadImage(img, `/cameras/${encodeURIComponent(camera)}/live.jpg?max=480`);
        img.hidden = false;
        note.hidden = true;
      } catch (err) {
        if (err.status) {
          img.hidden = true;
          note.hidden = false;
          note.textContent = err.status === 404 ? "no frame received yet" : err.message;
        }
      }
    }
    await sleep(Math.max(50, LIVE_EVERY_MS - (performance.now() - started)));
  }
}

// -- the capture form --------------------------------------------------------------------------
// The pan and tilt inputs with the command that drives each axis, from GET /cameras (commands are
// the service's configuration; null when none is configured). Values are in hundredths of a degree.
function axes() {
  const pantilt = state.info.pantilt;
  return [
    { id: "f-pan", name: "Pan", spec: pantilt.pan, pose: "pan_deg_x100" },
    { id: "f-tilt", name: "Tilt", spec: pantilt.tilt, pose: "tilt_deg_x100" },
  ];
}

function buildAxes() {
  const present = axes().filter((a) => a.spec);
  for (const { id, spec } of axes()) {
    const input = $(id);
    input.closest("label").hidden = !spec;  // nothing drives this axis: nothing to enter
    input.disabled = !spec;
    for (const bound of ["min", "max"]) {
      if (spec && spec[bound] !== null) input[bound] = spec[bound] / 100;
      else input.removeAttribute(bound);
    }
  }
  $("f-here").hidden = !present.length;
}

function buildForm() {
  buildAxes();
  const zooms = $("f-zooms");
  zooms.replaceChildren();
  for (const cam of state.info.cameras.filter((c) => c.zoom)) {
    const z = cam.zoom;
    zooms.append(h("label", {}, `${shortCam(cam.camera_id)} zoom (${z.arg})`,
      h("input", {
        type: "number", name: `zoom:${cam.camera_id}`, id: `f-zoom-${cam.camera_id}`, placeholder: "keep",
        step: z.integer ? "1" : "any", min: z.min ?? null, max: z.max ?? null,
      })));
  }
  const checks = $("f-cameras");
  checks.replaceChildren();
  for (const cam of state.info.cameras) {
    const checked = DEFAULT_CAMERAS.some((s) => cam.camera_id.includes(s));
    checks.append(h("label", {}, h("input", {
      type: "checkbox", name: "camera", value: cam.camera_id, id: `f-cam-${cam.camera_id}`, checked,
    }), shortCam(cam.camera_id)));
  }
  $("f-duration").max = state.info.recording.max_duration_s;
}

function fillCurrentPose() {
  const pose = (state.status || {}).pose || {};
  if (!state.info) return;
  for (const a of axes()) {
    if (a.spec && typeof pose[a.pose] === "number") $(a.id).value = (pose[a.pose] / 100).toFixed(2);
  }
}

// Reads the form into a batch, or returns the list of problems in plain words.
function readForm(record) {
  const problems = [];
  const requests = [];
  const pantilt = state.info.pantilt;
  const axis = ({ id, name, spec }) => {
    const raw = $(id).value.trim();
    if (!spec || raw === "") return;
    const value = Number(raw);
    if (!Number.isFinite(value)) {
      problems.push(`${name} must be a number of degrees.`);
      return;
    }
    const x100 = Math.round(value * 100);
    if ((spec.min !== null && x100 < spec.min) || (spec.max !== null && x100 > spec.max)) {
      const bound = (b, none) => (b === null ? none : `${b / 100}°`);
      problems.push(`${name} ${value}° is outside ${bound(spec.min, "−∞")} … ${bound(spec.max, "∞")}.`);
      return;
    }
    requests.push({ target_id: "entity", device_id: pantilt.device_id, command_id: spec.command_id, args: { [spec.arg]: x100 } });
  };
  axes().forEach(axis);
  for (const cam of state.info.cameras.filter((c) => c.zoom)) {
    const raw = $(`f-zoom-${cam.camera_id}`).value.trim();
    if (raw === "") continue;
    const z = cam.zoom;
    const value = Number(raw);
    const label = `${shortCam(cam.camera_id)} zoom`;
    if (!Number.isFinite(value) || (z.integer && !Number.isInteger(value))) {
      problems.push(`${label} must be ${z.integer ? "a whole number" : "a number"}.`);
    } else if ((z.min !== null && value < z.min) || (z.max !== null && value > z.max)) {
      problems.push(`${label} ${value} is outside ${z.min ?? "−∞"} … ${z.max ?? "∞"}.`);
    } else {
      requests.push({ target_id: "camera_device", device_id: cam.camera_id, command_id: z.command_id, args: { [z.arg]: value } });
    }
  }
  let duration = null;
  if (record) {
    duration = Number($("f-duration").value);
    const max = state.info.recording.max_duration_s;
    if (!Number.isFinite(duration) || duration <= 0) problems.push("Duration must be more than 0 seconds.");
    else if (duration > max) problems.push(`Duration ${duration} s is above the maximum of ${max} s.`);
    const cameras = [...document.querySelectorAll("#f-cameras input:checked")].map((el) => el.value);
    if (!cameras.length) problems.push("Choose at least one camera to record.");
    if (!problems.length) {
      requests.push({
        target_id: "camera_device", device_id: cameras[0], command_id: state.info.recording.command_id,
        args: { duration_second: duration, camera_ids: cameras },
      });
    }
  } else if (!requests.length && !problems.length) {
    problems.push("Enter a pan, tilt or zoom to move to.");
  }
  return { problems, batch: { requests }, duration };
}

function showFormErrors(lines) {
  const box = $("form-errors");
  if (!lines.length) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  box.replaceChildren(lines.length === 1 ? lines[0] : h("ul", {}, lines.map((l) => h("li", {}, l))));
  box.hidden = false;
}

async function submit(record) {
  const { problems, batch, duration } = readForm(record);
  if (problems.length) {
    showFormErrors(problems);
    return;
  }
  showFormErrors([]);
  for (const id of ["f-capture", "f-move"]) $(id).disabled = true;
  try {
    const body = await apiJson("/process-request?wait=false", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(batch),
    });
    state.jobDuration = duration;
    followJob(body.job_id);
  } catch (err) {
    const details = ((err.body && err.body.details) || []).map((d) => {
      const where = d.index === null || d.index === undefined ? d.field : `command ${d.index + 1}, ${d.field}`;
      return `${where}: ${d.message}`;
    });
    showFormErrors([refusal(err), ...details]);
  } finally {
    for (const id of ["f-capture", "f-move"]) $(id).disabled = false;
  }
}

function refusal(err) {
  if (err.status === 400) return `The service refused the batch: ${err.message}`;
  if (err.status === 503) return `The service cannot take the batch now: ${err.message}`;
  if (err.status === 0) return "The service cannot be reached; nothing was sent.";
  return err.message;
}

// -- the job being followed --------------------------------------------------------------------
let jobLoopRunning = false;

function followJob(jobId) {
  state.jobId = jobId;
  state.job = null;
  $("job-none").hidden = true;
  $("job-body").hidden = false;
  $("job-id").textContent = jobId;
  // Until its first answer, the new job shows as queued (never the last job's outcome).
  renderJob({ job_id: jobId, status: "queued", phase: "queued", results: [], progress: {} });
  if (!jobLoopRunning) jobLoop();
}

async function jobLoop() {
  jobLoopRunning = true;
  try {
    while (state.jobId) {
      const id = state.jobId;
      try {
        const job = await apiJson(`/jobs/${encodeURIComponent(id)}`);
        if (id !== state.jobId) continue;
        state.job = job;
        renderJob(job);
        if (job.phase === "done" || ["succeeded", "failed", "cancelled"].includes(job.status)) {
          state.sessionsStale = true;
          if (state.view === "sessions") refreshSessions(false);
          break;
        }
      } catch (err) {
        if (err.status === 404) {
          renderJobGone(id);
          break;
        }
      }
      await sleep(JOB_EVERY_MS);
    }
  } finally {
    jobLoopRunning = false;
  }
}

function renderJobGone(id) {
  $("job-status").textContent = "unknown";
  $("job-error").textContent = `The service no longer knows job ${id}.`;
  $("job-error").hidden = false;
}

function renderJob(job) {
  const status = $("job-status");
  status.textContent = job.status;
  status.className = `badge ${{ succeeded: "ok", failed: "bad", cancelled: "warn", running: "warn" }[job.status] || ""}`;
  const at = PHASES.indexOf(job.phase);
  const failed = job.status === "failed" || job.status === "cancelled";
  for (const li of document.querySelectorAll("#job-phases li")) {
    const i = PHASES.indexOf(li.dataset.phase);
    li.className = i < at ? "past" : i === at ? (failed && job.phase === "done" ? "failed" : "current") : "";
  }
  const detail = $("job-detail");
  detail.dataset.phase = job.phase;
  const bar = $("job-progress");
  const progress = job.progress || {};
  bar.hidden = true;
  if (job.phase === "queued") {
    detail.textContent = "Waiting for the job before it to finish.";
  } else if (job.phase === "commanding") {
    detail.textContent = `Sending commands (${(job.results || []).length} of ${commandCount(job)} done).`;
  } else if (job.phase === "settling") {
    detail.textContent = "Waiting for the pan-tilt and the zoom to stop at their targets.";
  } else if (job.phase === "recording") {
    const left = typeof progress.seconds_left === "number" ? `, ${progress.seconds_left.toFixed(1)} s left` : "";
    detail.textContent = `Recording: ${plural(progress.frames ?? 0, "frame")} so far${left}.`;
    const total = state.jobId === job.job_id && state.jobDuration ? state.jobDuration : recordingDuration(job);
    if (total && typeof progress.seconds_left === "number") {
      bar.value = Math.min(1, Math.max(0, 1 - progress.seconds_left / total));
      bar.hidden = false;
    }
  } else if (job.phase === "saving") {
    if (typeof progress.saved === "number" && typeof progress.total === "number" && progress.total > 0) {
      detail.textContent = `Saving: ${progress.saved} of ${plural(progress.total, "frame")} written.`;
      bar.value = progress.saved / progress.total;
      bar.hidden = false;
    } else {
      detail.textContent = "Saving the frames and the manifest.";
    }
  } else {
    detail.textContent = {
      succeeded: "Done.",
      failed: "The job failed.",
      cancelled: "The job was stopped.",
    }[job.status] || "Done.";
  }
  const error = $("job-error");
  if (job.error) {
    error.replaceChildren(h("strong", {}, `${errorTitle(job.error)}: `), job.error.message || String(job.error));
    error.hidden = false;
  } else {
    error.hidden = true;
  }
  $("job-cancel").hidden = !(job.status === "queued" || job.status === "running");
  $("job-cancel").textContent = job.status === "queued" ? "Cancel" : job.phase === "recording" ? "Stop recording" : "Cancel";
  renderResult(job);
}

function errorTitle(error) {
  const titles = {
    SettleTimeout: "The rig did not settle",
    SettleError: "The rig did not settle",
    NoStateError: "No state from a device",
    CommandFailed: "A command failed",
    JobCancelled: "Cancelled",
    RecordingError: "Recording failed",
    BrokerUnavailable: "No MQTT broker",
  };
  return titles[error.type] || "Error";
}

function commandCount(job) {
  return ((job.request || {}).requests || []).length || (job.results || []).length || "?";
}

function recordingDuration(job) {
  for (const result of job.results || []) {
    const args = (result.request || {}).args || {};
    if (typeof args.duration_second === "number") return args.duration_second;
  }
  return null;
}

function renderResult(job) {
  const box = $("job-result");
  if (job.phase !== "done") {
    box.replaceChildren();
    return;
  }
  const parts = [];
  const failedCmds = (job.results || []).filter((r) => r.status !== "ok");
  if (failedCmds.length) {
    parts.push(h("p", { class: "small" }, (job.results || []).map((r, i) =>
      `${i + 1}. ${(r.request || {}).command_id}: ${r.status}`).join(" · ")));
  }
  const session = job.session;
  if (session) {
    const rows = Object.entries(session.cameras || {}).map(([cam, c]) =>
      h("tr", {}, h("td", {}, cam), h("td", { class: "num" }, c.frame_count), h("td", { class: "num" }, c.rejected_frames)));
    const seconds = typeof session.record_ended_at === "number" && typeof session.record_started_at === "number"
      ? `${(session.record_ended_at - session.record_started_at).toFixed(2)} s` : "–";
    parts.push(
      h("p", { class: "small" }, "Session ",
        h("a", { href: "#sessions", id: "job-session-link", onclick: () => { state.highlight = session.session_id; } },
          session.session_id),
        ` (${session.status || "saved"}), ${seconds} recorded`),
      h("p", { class: "muted small" }, session.path || ""),
      h("table", { class: "summary", id: "job-summary" },
        h("thead", {}, h("tr", {}, h("th", {}, "camera"), h("th", { class: "num" }, "frames"), h("th", { class: "num" }, "rejected"))),
        h("tbody", {}, rows)),
    );
  } else if (job.final_pose) {
    parts.push(h("p", { class: "small" },
      `The rig came to rest at pan ${deg(job.final_pose.pan_deg_x100)}, tilt ${deg(job.final_pose.tilt_deg_x100)}.`));
  }
  box.replaceChildren(...parts);
}

async function cancelJob(id) {
  try {
    await apiJson(`/jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
  } catch (err) {
    if (err.status !== 409) alert(`Could not stop ${id}: ${err.message}`);
  }
}

// -- jobs and history --------------------------------------------------------------------------
async function listLoop() {
  for (;;) {
    await sleep(LIST_EVERY_MS);
    if (document.hidden) continue;
    if (state.view === "jobs") refreshJobs();
    if (state.view === "history") refreshHistory();
  }
}

function sessionLink(sessionId) {
  if (!sessionId) return "–";
  return h("a", { href: "#sessions", onclick: () => { state.highlight = sessionId; } }, sessionId);
}

function describeCommands(requests) {
  if (!Array.isArray(requests)) return "–";
  return requests.map((r) => {
    const args = r && r.args ? r.args : {};
    if (!r || typeof r !== "object") return "?";
    const axis = state.info && axes().find((a) => a.spec && a.spec.command_id === r.command_id);
    if (axis) return `${axis.name.toLowerCase()} ${deg(args[axis.spec.arg])}`;
    if (state.info && r.command_id === state.info.recording.command_id) {
      return `record ${args.duration_second} s (${(args.camera_ids || []).map(shortCam).join(", ")})`;
    }
    const value = Object.values(args)[0];
    const zoomCam = state.info && state.info.cameras.find((c) => c.zoom && c.zoom.command_id === r.command_id && c.camera_id === r.device_id);
    if (zoomCam) return `${shortCam(r.device_id)} zoom ${value}`;
    return `${r.command_id}${value !== undefined ? ` ${value}` : ""}`;
  }).join(" → ");
}

async function refreshJobs() {
  let body;
  try {
    body = await apiJson("/jobs");
  } catch (err) {
    return;
  }
  const rows = body.jobs.map((job) => {
    const active = job.status === "queued" || job.status === "running";
    return h("tr", { dataset: { job: job.job_id } },
      h("td", { class: "nowrap" }, h("a", { href: "#live", onclick: () => followJob(job.job_id) }, job.job_id)),
      h("td", { class: "nowrap" }, when(job.created_at)),
      h("td", {}, h("span", { class: `badge ${{ succeeded: "ok", failed: "bad", cancelled: "warn", running: "warn" }[job.status] || ""}` }, job.status)),
      h("td", {}, job.phase),
      h("td", {}, describeCommands((job.results || []).map((r) => r.request))),
      h("td", { class: "nowrap" }, sessionLink(job.session && job.session.session_id)),
      h("td", { class: "err" }, job.error ? job.error.message : ""),
      h("td", {}, active ? h("button", { type: "button", onclick: () => cancelJob(job.job_id) }, "Stop") : ""));
  });
  $("jobs-table").tBodies[0].replaceChildren(...rows);
  $("jobs-empty").hidden = rows.length > 0;
}

async function refreshHistory() {
  let body;
  try {
    body = await apiJson("/history?limit=200");
  } catch (err) {
    return;
  }
  const entries = [...body.requests].reverse();
  const rows = entries.map((e) => {
    const sessions = e.sessions || [];
    const error = e.error ? (e.error.error || e.error.message || JSON.stringify(e.error)) : "";
    const client = e.client || {};
    return h("tr", {},
      h("td", { class: "nowrap" }, h("code", {}, e.id)),
      h("td", { class: "nowrap" }, when(e.received_at)),
      h("td", { title: client.user_agent || "" }, client.address || "–"),
      h("td", {}, h("span", { class: `badge ${{ succeeded: "ok", failed: "bad", rejected: "bad", cancelled: "warn", running: "warn" }[e.status] || ""}` }, e.status)),
      h("td", {}, describeCommands(e.request && e.request.requests)),
      h("td", { class: "nowrap" }, sessions.length ? sessions.map((s) => sessionLink(s.session_id)) : "–"),
      h("td", { class: "err" }, error));
  });
  $("history-table").tBodies[0].replaceChildren(...rows);
  $("history-empty").hidden = rows.length > 0;
}

// -- the session gallery -----------------------------------------------------------------------
async function refreshSessions(more) {
  const offset = more ? state.sessionsShown : 0;
  let body;
  try {
    body = await apiJson(`/sessions?limit=10&offset=${offset}`);
  } catch (err) {
    $("sessions-count").textContent = `cannot list sessions: ${err.message}`;
    return;
  }
  state.sessionsStale = false;
  const list = $("sessions");
  if (!more) {
    for (const img of list.querySelectorAll("img[data-blob]")) URL.revokeObjectURL(img.dataset.blob);
    list.replaceChildren();
  }
  for (const s of body.sessions) list.append(sessionCard(s));
  state.sessionsShown = offset + body.sessions.length;
  state.sessionsTotal = body.total;
  $("sessions-count").textContent = `${plural(body.total, "session")}, newest first`;
  $("sessions-more").hidden = state.sessionsShown >= body.total;
  if (state.highlight) {
    const card = list.querySelector(`.session[data-session="${CSS.escape(state.highlight)}"]`);
    if (card) {
      card.classList.add("highlight");
      card.scrollIntoView({ block: "nearest" });
    }
    state.highlight = null;
  }
}

function sessionCard(s) {
  const pose = s.pose || {};
  const seconds = typeof s.record_ended_at === "number" && typeof s.record_started_at === "number"
    ? `${(s.record_ended_at - s.record_started_at).toFixed(2)} s` : null;
  const zooms = Object.entries(pose.zooms || {}).map(([cam, v]) => `${shortCam(cam)} zoom ${v}`).join(", ");
  const statusClass = { complete: "ok", partial: "warn", cancelled: "warn", failed: "bad", incomplete: "warn", unreadable: "bad" }[s.status] || "";
  const card = h("article", { class: "session", dataset: { session: s.session_id } },
    h("div", { class: "meta" },
      h("span", { class: "sid" }, s.session_id),
      h("span", { class: `badge ${statusClass}` }, s.status || "–"),
      h("span", {}, when(s.record_started_at)),
      seconds ? h("span", {}, seconds) : null,
      typeof pose.pan_deg_x100 === "number"
        ? h("span", {}, `pan ${deg(pose.pan_deg_x100)} · tilt ${deg(pose.tilt_deg_x100)}`) : null,
      typeof pose.distance_m === "number" && pose.distance_m > 0 ? h("span", {}, `${pose.distance_m.toFixed(1)} m`) : null,
      zooms ? h("span", { class: "muted" }, zooms) : null,
      typeof s.frame_count === "number" ? h("span", { class: "muted" }, plural(s.frame_count, "frame")) : null,
      h("span", { class: "spacer" }),
      h("button", {
        type: "button", class: "zip",
        onclick: () => download(`/sessions/${encodeURIComponent(s.session_id)}.zip`, `${s.session_id}.zip`)
          .catch((err) => alert(err.message)),
      }, "Download zip")));
  if (!s.manifest) {
    card.append(h("p", { class: "muted small" }, s.error || "No session.json yet: still recording, or interrupted."));
  }
  for (const [cam, info] of Object.entries(s.cameras || {})) {
    const strip = h("div", { class: "strip" });
    for (const item of info.strip || []) {
      const url = `/sessions/${encodeURIComponent(s.session_id)}/thumbs/${item.file.split("/").map(encodeURIComponent).join("/")}?size=160`;
      const img = h("img", { alt: `${cam} frame ${item.index + 1}`, dataset: { src: url } });
      strip.append(h("button", {
        type: "button", title: `${item.file} — open full size`,
        onclick: () => openViewer(s.session_id, cam, item.index, info.strip),
      }, img));
      thumbObserver.observe(img);
    }
    card.append(h("div", { class: "cam", dataset: { camera: cam } },
      h("div", { class: "label" }, h("strong", {}, cam),
        h("span", { class: "muted" }, `${plural(info.frame_count, "frame")}, ${info.rejected_frames} rejected`)),
      info.strip && info.strip.length ? strip : h("span", { class: "muted small" }, "no frames")));
  }
  return card;
}

// -- the frame viewer --------------------------------------------------------------------------
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

async function openViewer(sessionId, camera, index, strip) {
  // Start with the strip's entries; the whole list comes with the manifest.
  state.viewer = { sessionId, camera, index, frames: strip.map((s) => ({ file: s.file, _index: s.index })), partial: true };
  $("viewer").hidden = false;
  await showFrame();
  try {
    const m = await manifest(sessionId);
    const frames = ((m.cameras || {})[camera] || {}).frames;
    if (Array.isArray(frames) && state.viewer && state.viewer.sessionId === sessionId) {
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
  if (!v) return null;
  if (v.partial) return v.frames.find((f) => f._index === v.index) || v.frames[0];
  return v.frames[v.index];
}

async function showFrame() {
  const frame = currentFrame();
  if (!frame) return;
  const v = state.viewer;
  const url = `/sessions/${encodeURIComponent(v.sessionId)}/files/${frame.file.split("/").map(encodeURIComponent).join("/")}?view=1`;
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
  $("viewer-title").textContent = `${v.sessionId} · ${v.camera} · frame ${v.index + 1} of ${total}`;
  const pose = frame.pose || {};
  const bits = [frame.file];
  if (typeof frame.received_at === "number") bits.push(`received ${when(frame.received_at)}`);
  if (frame.frame_index !== undefined && frame.frame_index !== null) bits.push(`camera frame #${frame.frame_index}`);
  if (typeof pose.pan_deg_x100 === "number") bits.push(`pan ${deg(pose.pan_deg_x100)}, tilt ${deg(pose.tilt_deg_x100)}`);
  if (pose.zoom !== undefined && pose.zoom !== null) bits.push(`zoom ${pose.zoom}`);
  if (typeof pose.distance_m === "number" && pose.distance_m > 0) bits.push(`${pose.distance_m} m`);
  $("viewer-caption").textContent = bits.join(" · ");
}

function stepViewer(delta) {
  const v = state.viewer;
  if (!v) return;
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
}

// -- start -------------------------------------------------------------------------------------
async function loadInfo() {
  for (let wait = 500; ; wait = Math.min(wait * 2, 5000)) {
    try {
      state.info = await apiJson("/cameras");
      return;
    } catch (err) {
      await sleep(wait);
    }
  }
}

async function main() {
  $("token-button").addEventListener("click", () => {
    $("token-forget").hidden = !state.token;
    askToken(state.token ? "A token is kept in this browser. Enter another one, or forget it." : "Enter the token set in api.token.");
  });
  // Closing leaves refused calls waiting: they go on once a token is entered (Token button).
  $("token-cancel").addEventListener("click", () => { $("token-modal").hidden = true; });
  $("token-forget").addEventListener("click", () => {
    setToken("");
    $("token-modal").hidden = true;
    location.reload();
  });
  $("capture-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    submit(true);
  });
  $("f-move").addEventListener("click", () => submit(false));
  $("f-here").addEventListener("click", fillCurrentPose);
  $("job-cancel").addEventListener("click", () => state.jobId && cancelJob(state.jobId));
  $("sessions-refresh").addEventListener("click", () => refreshSessions(false));
  $("sessions-more").addEventListener("click", () => refreshSessions(true));
  $("viewer-close").addEventListener("click", closeViewer);
  $("viewer-prev").addEventListener("click", () => stepViewer(-1));
  $("viewer-next").addEventListener("click", () => stepViewer(1));
  $("viewer-original").addEventListener("click", () => {
    const frame = currentFrame();
    if (!frame) return;
    const url = `/sessions/${encodeURIComponent(state.viewer.sessionId)}/files/${frame.file.split("/").map(encodeURIComponent).join("/")}`;
    download(url, frame.file.split("/").pop()).catch((err) => alert(err.message));
  });
  document.addEventListener("keydown", (ev) => {
    if (!state.viewer) return;
    if (ev.key === "Escape") closeViewer();
    if (ev.key === "ArrowLeft") stepViewer(-1);
    if (ev.key === "ArrowRight") stepViewer(1);
  });
  window.addEventListener("hashchange", () => showView(location.hash.slice(1)));
  showView(location.hash.slice(1) || "live");

  await loadInfo();
  buildForm();
  buildCameras();
  statusLoop();
  listLoop();
  // Pick up a job that is running already (started elsewhere, or before a reload).
  try {
    const jobs = (await apiJson("/jobs")).jobs;
    const active = jobs.find((j) => j.status === "queued" || j.status === "running");
    if (active) followJob(active.job_id);
  } catch (err) {
    /* shown by the status line */
  }
  document.body.dataset.ready = "1";
}

main();
