// Scans: compose a grid or a list of poses, start it (POST /scans), list the scans, and follow one as
// a grid of tiles (one per pose, colored by its status); a done tile opens its session.

import { apiJson, download, sendJson } from "./api.js";
import { cameraChecks, readRecording } from "./live.js";
import { onPresets, refreshPresets } from "./presets.js";
import { openSession } from "./sessions.js";
import { state } from "./state.js";
import { $, badge, badgeClass, changed, deg, fieldText, forget, h, plural, shortCam, showProblems, sleep, when } from "./util.js";

const SCAN_EVERY_MS = 1000; // the scan shown, while it is queued or running
const ACTIVE = ["queued", "running"];
const RESUMABLE = ["failed", "cancelled", "interrupted"];
const MAX_POSES = 500; // as the service (service/scan_plan.py MAX_POSES)

let selected = null; // the scan id shown
let scanLoopRunning = false;

export function initScans() {
  for (const radio of document.querySelectorAll("input[name='scan-kind']")) {
    radio.addEventListener("change", showKind);
  }
  for (const id of ["s-pan-from", "s-pan-to", "s-pan-step", "s-tilt-from", "s-tilt-to", "s-tilt-step"]) {
    $(id).addEventListener("input", showCount);
  }
  $("s-poses").addEventListener("input", showCount);
  $("scan-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    startScan();
  });
  $("s-add-current").addEventListener("click", addCurrentPose);
  $("s-add-preset").addEventListener("click", () => {
    const name = $("s-preset").value;
    if (name) appendPoseLine(name);
  });
  $("scan-cancel").addEventListener("click", () => act("DELETE", ""));
  $("scan-resume").addEventListener("click", () => act("POST", "/resume"));
  $("scan-xml").addEventListener("click", (ev) => {
    if (!state.token || !selected) return; // without a token the link downloads by itself
    ev.preventDefault();
    download(xmlUrl(selected), `${selected}-papywizard.xml`).catch((err) => alert(err.message));
  });
  onPresets((presets) => {
    $("s-preset").replaceChildren(...presets.map((p) => h("option", { value: p.name }, p.name)));
    $("s-add-preset").disabled = !presets.length;
  });
  showKind();
}

// Once GET /cameras has answered.
export function startScans() {
  cameraChecks($("s-cameras"), "s-cam-", () => false);
  $("s-duration").max = state.info.recording.max_duration_s;
  const pantilt = state.info.pantilt;
  for (const [axis, spec] of [["pan", pantilt.pan], ["tilt", pantilt.tilt]]) {
    for (const end of ["from", "to"]) {
      const input = $(`s-${axis}-${end}`);
      if (spec && spec.min !== null) input.min = spec.min / 100;
      if (spec && spec.max !== null) input.max = spec.max / 100;
    }
  }
}

// The view is shown; `arg` is a scan id from the address (#scans/<id>).
export function showScans(arg) {
  if (arg && arg !== selected) selectScan(arg);
  refreshScans();
  refreshPresets(); // for the list's preset menu
}

export function tickScans() {
  refreshScans();
}

// -- composing ---------------------------------------------------------------------------------
function kind() {
  return document.querySelector("input[name='scan-kind']:checked").value;
}

function showKind() {
  $("s-grid").hidden = kind() !== "grid";
  $("s-list").hidden = kind() !== "list";
  showCount();
}

// Degrees in an input as whole hundredths, or null (with a problem pushed) when not a number.
function x100(id, name, problems) {
  const raw = $(id).value.trim();
  const value = Number(raw);
  if (raw === "" || !Number.isFinite(value)) {
    problems.push(`${name} must be a number of degrees.`);
    return null;
  }
  return Math.round(value * 100);
}

function readRange(axis, problems) {
  const name = axis[0].toUpperCase() + axis.slice(1);
  const range = {
    from: x100(`s-${axis}-from`, `${name} from`, problems),
    to: x100(`s-${axis}-to`, `${name} to`, problems),
    step: x100(`s-${axis}-step`, `${name} step`, problems),
  };
  if (range.step !== null && range.step <= 0) problems.push(`${name} step must be more than 0°.`);
  return range;
}

// How many values a range gives (as the service counts them: from, then toward to, to included
// only when a step lands on it).
function rangeCount(r) {
  if ([r.from, r.to, r.step].some((v) => v === null) || r.step <= 0) return null;
  return Math.floor(Math.abs(r.to - r.from) / r.step) + 1;
}

// The list's lines as poses: "pan tilt" in degrees (a comma may separate them), or a preset's name.
function readPoseLines(problems) {
  const poses = [];
  $("s-poses").value.split("\n").forEach((line, i) => {
    const text = line.trim();
    if (!text) return;
    const parts = text.split(/[\s,;]+/);
    if (parts.length === 2 && parts.every((p) => p !== "" && Number.isFinite(Number(p)))) {
      poses.push({ pan_deg_x100: Math.round(Number(parts[0]) * 100), tilt_deg_x100: Math.round(Number(parts[1]) * 100) });
    } else if (/^[A-Za-z0-9_.-]{1,64}$/.test(text) && !Number.isFinite(Number(text))) {
      poses.push({ preset: text });
    } else {
      problems.push(`Line ${i + 1} ("${text}"): write "pan tilt" in degrees, or a preset's name.`);
    }
  });
  if (!poses.length && !problems.length) problems.push("Enter at least one pose: \"pan tilt\" in degrees, or a preset's name.");
  return poses;
}

function showCount() {
  const problems = [];
  let text = "";
  if (kind() === "grid") {
    const pan = rangeCount(readRange("pan", problems));
    const tilt = rangeCount(readRange("tilt", problems));
    if (pan !== null && tilt !== null) text = `${pan} × ${tilt} = ${plural(pan * tilt, "pose")}`;
  } else {
    const poses = readPoseLines(problems);
    if (!problems.length) text = plural(poses.length, "pose");
  }
  $("s-count").textContent = text;
}

// The form as the body of POST /scans, or the problems in plain words.
export function readScanForm() {
  const problems = [];
  const body = {};
  const rec = readRecording($("s-duration"), $("s-cameras"), problems);
  body.cameras = rec.cameras;
  body.duration_second = rec.duration;
  let count = null;
  if (kind() === "grid") {
    const pan = readRange("pan", problems);
    const tilt = readRange("tilt", problems);
    body.grid = { pan_deg_x100: pan, tilt_deg_x100: tilt, order: $("s-order").value };
    const a = rangeCount(pan);
    const b = rangeCount(tilt);
    count = a !== null && b !== null ? a * b : null;
  } else {
    body.poses = readPoseLines(problems);
    count = body.poses.length;
  }
  if (count !== null && count > MAX_POSES) problems.push(`${count} poses; at most ${MAX_POSES} in one scan.`);
  body.on_pose_failure = $("s-failure").value;
  const retries = Number($("s-retries").value || "0");
  if (!Number.isInteger(retries) || retries < 0) problems.push("Retries must be a whole number, 0 or more.");
  body.retries = retries;
  const label = $("s-label").value.trim();
  if (label) body.label = label;
  return { problems, body };
}

function appendPoseLine(line) {
  const area = $("s-poses");
  const text = area.value.replace(/\s+$/, "");
  area.value = text ? `${text}\n${line}\n` : `${line}\n`;
  showCount();
}

function addCurrentPose() {
  const pose = (state.status || {}).pose || {};
  if (typeof pose.pan_deg_x100 !== "number" || typeof pose.tilt_deg_x100 !== "number") {
    showProblems($("scan-errors"), ["The rig's pose is not known yet."]);
    return;
  }
  appendPoseLine(`${(pose.pan_deg_x100 / 100).toFixed(2)} ${(pose.tilt_deg_x100 / 100).toFixed(2)}`);
}

async function startScan() {
  const box = $("scan-errors");
  const { problems, body } = readScanForm();
  if (problems.length) {
    showProblems(box, problems);
    return;
  }
  showProblems(box, []);
  $("s-start").disabled = true;
  try {
    const answer = await sendJson("/scans", body);
    selectScan(answer.scan_id);
    refreshScans();
  } catch (err) {
    const details = ((err.body && (err.body.details || err.body.problems)) || [])
      .slice(1) // the message names the first
      .map((d) => `${d.field}: ${d.message}`);
    const what = err.status === 400 ? "The service refused the scan: " : err.status === 0 ? "" : "Not started: ";
    showProblems(box, [`${what}${err.message}`, ...details]);
  } finally {
    $("s-start").disabled = false;
  }
}

// -- the list ----------------------------------------------------------------------------------
async function refreshScans() {
  let body;
  try {
    body = await apiJson("/scans");
  } catch (err) {
    $("scans-empty").textContent = `Cannot list scans: ${err.message}`;
    $("scans-empty").hidden = false;
    forget("scans");
    return;
  }
  if (!changed("scans", [body.scans, selected])) return;
  const rows = body.scans.map((scan) => h("tr", {
    dataset: { scan: scan.scan_id }, class: scan.scan_id === selected ? "selected" : null,
  },
  h("td", { class: "nowrap" }, h("a", { href: `#scans/${scan.scan_id}` }, scan.scan_id)),
  h("td", {}, scan.label || ""),
  h("td", { class: "nowrap" }, when(scan.created_at)),
  h("td", {}, badge(scan.status)),
  h("td", { class: "nowrap" }, `${scan.progress.done} / ${scan.progress.total}`)));
  $("scans-table").tBodies[0].replaceChildren(...rows);
  $("scans-empty").textContent = "No scans yet.";
  $("scans-empty").hidden = rows.length > 0;
}

// -- the scan shown ----------------------------------------------------------------------------
function xmlUrl(scanId) {
  return `/scans/${encodeURIComponent(scanId)}/papywizard.xml`;
}

function selectScan(scanId) {
  selected = scanId;
  if (location.hash !== `#scans/${scanId}`) history.replaceState(null, "", `#scans/${scanId}`);
  for (const tr of document.querySelectorAll("#scans-table tbody tr")) {
    tr.classList.toggle("selected", tr.dataset.scan === scanId);
  }
  $("scan-panel").hidden = false;
  $("scan-id").textContent = scanId;
  $("scan-tiles").replaceChildren();
  forget("tiles");
  showProblems($("scan-act-errors"), []);
  $("scan-xml").href = xmlUrl(scanId);
  $("scan-xml").download = `${scanId}-papywizard.xml`;
  if (!scanLoopRunning) scanLoop();
}

async function scanLoop() {
  scanLoopRunning = true;
  let lastDone = null;
  try {
    while (selected) {
      const id = selected;
      let scan;
      try {
        scan = await apiJson(`/scans/${encodeURIComponent(id)}`);
      } catch (err) {
        if (id === selected) renderGone(id, err);
        break;
      }
      if (id !== selected) continue;
      renderScan(scan);
      if (scan.progress.done !== lastDone) {
        state.sessionsStale = true; // a pose saved a session
        lastDone = scan.progress.done;
      }
      if (!ACTIVE.includes(scan.status)) {
        refreshScans();
        break;
      }
      await sleep(SCAN_EVERY_MS);
    }
  } finally {
    scanLoopRunning = false;
  }
}

function renderGone(id, err) {
  $("scan-status").textContent = "unknown";
  $("scan-status").className = "badge bad";
  $("scan-error").textContent = err.status === 404 ? `The service knows no scan ${id}.` : `Cannot read ${id}: ${err.message}`;
  $("scan-error").hidden = false;
  for (const b of ["scan-cancel", "scan-resume"]) $(b).hidden = true;
}

function renderScan(scan) {
  $("scan-label").textContent = scan.label || "";
  const status = $("scan-status");
  status.textContent = scan.status;
  status.className = badgeClass(scan.status);
  $("scan-progress").textContent = `${scan.progress.done} of ${plural(scan.progress.total, "pose")} done`;
  const times = [`created ${when(scan.created_at)}`];
  if (typeof scan.started_at === "number") times.push(`started ${when(scan.started_at)}`);
  if (typeof scan.finished_at === "number") times.push(`finished ${when(scan.finished_at)}`);
  $("scan-times").textContent = times.join(" · ");
  const error = $("scan-error");
  error.hidden = !scan.error;
  if (scan.error) error.textContent = scan.error.message || JSON.stringify(scan.error);
  $("scan-cancel").hidden = !ACTIVE.includes(scan.status);
  $("scan-resume").hidden = !RESUMABLE.includes(scan.status);
  renderTiles(scan.poses || []);
}

// A full lattice of distinct (pan, tilt) targets is laid out by pan (columns, left to right) and
// tilt (rows, highest on top); anything else is shown in pose order.
function lattice(poses) {
  const pans = [...new Set(poses.map((p) => p.target.pan_deg_x100))].sort((a, b) => a - b);
  const tilts = [...new Set(poses.map((p) => p.target.tilt_deg_x100))].sort((a, b) => b - a);
  const cells = new Set(poses.map((p) => `${p.target.pan_deg_x100}/${p.target.tilt_deg_x100}`));
  const ok = poses.length > 1 && cells.size === poses.length && pans.length * tilts.length === poses.length;
  return ok ? { pans, tilts } : null;
}

// The settle proof in a few words: per device the time to settle and the residual to each target.
function settleLines(settle) {
  if (!settle || typeof settle !== "object") return [];
  return Object.entries(settle.devices || {}).map(([dev, p]) => {
    const took = typeof p.time_to_settle_s === "number" ? `settled in ${p.time_to_settle_s.toFixed(2)} s` : "settled";
    const residual = Object.entries(p.residual || {}).map(([k, v]) => fieldText(k, v)).join(", ");
    return `${shortCam(dev)}: ${took}${residual ? `, residual ${residual}` : ""}`;
  });
}

function tile(pose) {
  const t = pose.target || {};
  const where = pose.preset ? pose.preset : `${deg(t.pan_deg_x100)} / ${deg(t.tilt_deg_x100)}`;
  const title = [`pose ${pose.index + 1}: ${pose.status}`, `pan ${deg(t.pan_deg_x100)}, tilt ${deg(t.tilt_deg_x100)}`];
  if (pose.preset) title.push(`preset ${pose.preset}`);
  if (pose.session_id) title.push(`session ${pose.session_id}: click to open`);
  if (pose.error) title.push(pose.error.message || JSON.stringify(pose.error));
  title.push(...settleLines(pose.settle));
  const open = pose.status === "done" && pose.session_id;
  return h(open ? "button" : "div", {
    type: open ? "button" : null,
    class: `tile ${pose.status}`,
    title: title.join("\n"),
    dataset: { index: pose.index, status: pose.status, session: pose.session_id || null },
    onclick: open ? () => openSession(pose.session_id) : null,
  }, h("span", { class: "n" }, `#${pose.index + 1}`), h("span", { class: "where" }, where), h("span", { class: "st" }, pose.status));
}

function renderTiles(poses) {
  if (!changed("tiles", poses)) return;
  const box = $("scan-tiles");
  const grid = lattice(poses);
  if (!grid) {
    box.className = "tiles flow";
    box.style.gridTemplateColumns = "";
    box.replaceChildren(...poses.map(tile));
    return;
  }
  box.className = "tiles lattice";
  box.style.gridTemplateColumns = `auto repeat(${grid.pans.length}, minmax(5.5rem, 9rem))`;
  const cells = [h("span", { class: "axis corner" }, "tilt \\ pan")];
  grid.pans.forEach((pan, i) => cells.push(h("span", { class: "axis pan", style: `grid-row: 1; grid-column: ${i + 2}` }, deg(pan))));
  grid.tilts.forEach((tilt, j) => cells.push(h("span", { class: "axis tilt", style: `grid-row: ${j + 2}; grid-column: 1` }, deg(tilt))));
  for (const pose of poses) {
    const el = tile(pose);
    el.style.gridColumn = String(grid.pans.indexOf(pose.target.pan_deg_x100) + 2);
    el.style.gridRow = String(grid.tilts.indexOf(pose.target.tilt_deg_x100) + 2);
    cells.push(el);
  }
  box.replaceChildren(...cells);
}

async function act(method, suffix) {
  if (!selected) return;
  const id = selected;
  const box = $("scan-act-errors");
  showProblems(box, []);
  try {
    await apiJson(`/scans/${encodeURIComponent(id)}${suffix}`, { method });
  } catch (err) {
    showProblems(box, [`${suffix ? "Not resumed" : "Not cancelled"}: ${err.message}`]);
  }
  if (!scanLoopRunning) scanLoop();
  refreshScans();
}
