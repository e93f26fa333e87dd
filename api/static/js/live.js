// Live: the rig's pose and connections, a thumbnail per camera, the capture form.

import { apiJson, errorDetails, loadImage, sendJson } from "./api.js";
import { followJob } from "./job.js";
import { axes, zoomUnit } from "./rig.js";
import { state } from "./state.js";
import { $, deg, h, shortCam, showProblems, sleep } from "./util.js";

const STATUS_EVERY_MS = 500;
const LIVE_EVERY_MS = 300; // per camera: about three thumbnails a second
const DEFAULT_CAMERAS = ["swir", "lwir", "rgb"]; // checked on first load, by substring

export function initLive() {
  $("capture-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    submit(true);
  });
  $("f-move").addEventListener("click", () => submit(false));
  $("f-here").addEventListener("click", fillCurrentPose);
}

// Once GET /cameras has answered.
export function startLive() {
  buildForm();
  buildCameras();
  statusLoop();
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
  renderMotion(device);
  const zooms = $("pose-zooms");
  zooms.replaceChildren(
    ...Object.entries(pose.zooms || {}).map(([cam, value]) => {
      const dev = (st.devices || {})[cam] || {};
      const moving = dev.settled === false ? " (moving)" : "";
      const unit = zoomUnit(cam);
      return h("div", {}, h("dt", {}, `${shortCam(cam)} zoom${unit ? ` (${unit})` : ""}`),
        h("dd", { id: `pose-zoom-${cam}` }, `${value ?? "–"}${moving}`));
    }),
  );
  renderLinks(st);
  const age = device.age_s;
  $("status-age").textContent = typeof age === "number"
    ? `pan-tilt state ${age.toFixed(1)} s old · transport ${st.command_transport} · queue ${st.queue_length}`
    : "no pan-tilt state received yet";
  renderCameraFeet(st);
  if (!state.formFilled && typeof pose.pan_deg_x100 === "number") {
    state.formFilled = true;
    fillCurrentPose();
  }
}

function renderMotion(device) {
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
}

// The broker and stream pills of the top bar.
function renderLinks(st) {
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
}

function renderCameraFeet(st) {
  for (const [cam, info] of Object.entries(st.cameras || {})) {
    const foot = document.querySelector(`.camera[data-camera="${CSS.escape(cam)}"] .foot`);
    if (!foot) continue;
    const last = typeof info.last_frame_age_s === "number" ? `last ${info.last_frame_age_s.toFixed(1)} s ago` : "no frame yet";
    const rate = st.stream_rate === "idle" ? " (stream idle between jobs)" : "";
    foot.textContent = `${info.fps.toFixed(1)} fps${rate} · ${info.frames} frames · ${info.rejected_frames} rejected · ${last}`;
    foot.dataset.fps = info.fps;
  }
}

function buildCameras() {
  const grid = $("cameras");
  grid.replaceChildren();
  for (const cam of state.info.cameras) {
    const img = h("img", { alt: `${cam.camera_id}, live`, hidden: true });
    const note = h("span", { class: "note" }, "waiting for a frame…");
    const card = h("div", { class: "camera", dataset: { camera: cam.camera_id } },
      h("div", { class: "head" }, h("span", { class: "name", title: cam.camera_id }, shortCam(cam.camera_id)),
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

// Checkboxes for the configured cameras, into `box`; ids are `${prefix}${camera_id}`.
export function cameraChecks(box, prefix, checked) {
  box.replaceChildren();
  for (const cam of state.info.cameras) {
    box.append(h("label", {}, h("input", {
      type: "checkbox", name: "camera", value: cam.camera_id, id: `${prefix}${cam.camera_id}`,
      checked: checked(cam.camera_id),
    }), shortCam(cam.camera_id)));
  }
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
  cameraChecks($("f-cameras"), "f-cam-", (id) => DEFAULT_CAMERAS.some((s) => id.includes(s)));
  $("f-duration").max = state.info.recording.max_duration_s;
}

function fillCurrentPose() {
  const pose = (state.status || {}).pose || {};
  if (!state.info) return;
  for (const a of axes()) {
    if (a.spec && typeof pose[a.pose] === "number") $(a.id).value = (pose[a.pose] / 100).toFixed(2);
  }
}

function readAxis({ id, name, spec }, problems, requests) {
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
  requests.push({
    target_id: "entity", device_id: state.info.pantilt.device_id, command_id: spec.command_id, args: { [spec.arg]: x100 },
  });
}

function readZooms(problems, requests) {
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
}

// The chosen cameras and the duration, checked; problems in plain words are pushed to `problems`.
export function readRecording(durationInput, checksBox, problems) {
  const duration = Number(durationInput.value);
  const max = state.info.recording.max_duration_s;
  if (!Number.isFinite(duration) || duration <= 0) problems.push("Duration must be more than 0 seconds.");
  else if (duration > max) problems.push(`Duration ${duration} s is above the maximum of ${max} s.`);
  const cameras = [...checksBox.querySelectorAll("input:checked")].map((el) => el.value);
  if (!cameras.length) problems.push("Choose at least one camera to record.");
  return { duration, cameras };
}

// Reads the form into a batch, or returns the list of problems in plain words.
function readForm(record) {
  const problems = [];
  const requests = [];
  axes().forEach((a) => readAxis(a, problems, requests));
  readZooms(problems, requests);
  let duration = null;
  if (record) {
    const rec = readRecording($("f-duration"), $("f-cameras"), problems);
    duration = rec.duration;
    if (!problems.length) {
      requests.push({
        target_id: "camera_device", device_id: rec.cameras[0], command_id: state.info.recording.command_id,
        args: { duration_second: duration, camera_ids: rec.cameras },
      });
    }
  } else if (!requests.length && !problems.length) {
    problems.push("Enter a pan, tilt or zoom to move to.");
  }
  return { problems, batch: { requests }, duration };
}

// Sends a batch without waiting and follows its job in the Job panel; throws ApiError if refused.
export async function sendBatch(batch, duration = null) {
  const body = await sendJson("/process-request?wait=false", batch);
  state.jobDuration = duration;
  followJob(body.job_id);
  return body;
}

async function submit(record) {
  const { problems, batch, duration } = readForm(record);
  if (problems.length) {
    showProblems($("form-errors"), problems);
    return;
  }
  showProblems($("form-errors"), []);
  for (const id of ["f-capture", "f-move"]) $(id).disabled = true;
  try {
    await sendBatch(batch, duration);
  } catch (err) {
    showProblems($("form-errors"), [refusal(err), ...errorDetails(err, "command")]);
  } finally {
    for (const id of ["f-capture", "f-move"]) $(id).disabled = false;
  }
}

export function refusal(err, what = "batch") {
  if (err.status === 400) return `The service refused the ${what}: ${err.message}`;
  if (err.status === 503) return `The service cannot take the ${what} now: ${err.message}`;
  if (err.status === 0) return "The service cannot be reached; nothing was sent.";
  return err.message;
}
