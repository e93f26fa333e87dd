// Schedules: scans and batches run again every N seconds or on a cron expression (GET/POST/DELETE
// /schedules). Each run is queued like any job, so it never overlaps a capture.

import { apiJson, sendJson } from "./api.js";
import { followJob } from "./job.js";
import { describeRequest } from "./rig.js";
import { readScanForm } from "./scans.js";
import { state } from "./state.js";
import { $, badge, changed, forget, h, showProblems, when } from "./util.js";

const templates = {}; // kind -> the JSON last filled in, to tell an edited body from a template

export function initSchedules() {
  $("schedule-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    createSchedule();
  });
  for (const radio of document.querySelectorAll("input[name='schedule-kind']")) {
    radio.addEventListener("change", () => fillTemplate(false));
  }
  $("sc-from-scan").addEventListener("click", () => {
    const { problems, body } = readScanForm();
    if (problems.length) {
      showProblems($("schedule-errors"), ["The scan composed in Scans is not complete:", ...problems]);
      return;
    }
    $("sc-kind-scan").checked = true;
    setBody("scan", body);
  });
}

export function showSchedules() {
  if (state.info) fillTemplate(false);
  refreshSchedules();
}

export function tickSchedules() {
  refreshSchedules();
}

function kind() {
  return document.querySelector("input[name='schedule-kind']:checked").value;
}

function setBody(k, body) {
  templates[k] = JSON.stringify(body, null, 2);
  $("sc-body").value = templates[k];
}

// An example body of the kind chosen, unless the operator has written one of their own.
function fillTemplate(force) {
  const current = $("sc-body").value.trim();
  if (!force && current && !Object.values(templates).includes(current)) return;
  const cam = state.info.cameras.length ? state.info.cameras[0].camera_id : "camera";
  if (kind() === "scan") {
    setBody("scan", {
      cameras: [cam], duration_second: 1, on_pose_failure: "skip",
      grid: {
        pan_deg_x100: { from: -1000, to: 1000, step: 1000 },
        tilt_deg_x100: { from: 0, to: 0, step: 100 },
        order: "serpentine",
      },
    });
  } else {
    const pantilt = state.info.pantilt;
    const requests = [];
    if (pantilt.pan) {
      requests.push({ target_id: "entity", device_id: pantilt.device_id, command_id: pantilt.pan.command_id, args: { [pantilt.pan.arg]: 0 } });
    }
    requests.push({
      target_id: "camera_device", device_id: cam, command_id: state.info.recording.command_id,
      args: { duration_second: 1, camera_ids: [cam] },
    });
    setBody("batch", { requests });
  }
}

function every(s) {
  if (s.every_s !== null && s.every_s !== undefined) {
    const n = s.every_s;
    if (n % 86400 === 0) return `every ${n / 86400} d`;
    if (n % 3600 === 0) return `every ${n / 3600} h`;
    if (n % 60 === 0) return `every ${n / 60} min`;
    return `every ${n} s`;
  }
  return s.cron ? h("span", {}, "cron ", h("code", {}, s.cron)) : "–";
}

function lastRun(run) {
  if (!run) return "never";
  const link = run.scan_id
    ? h("a", { href: `#scans/${run.scan_id}` }, run.scan_id)
    : run.job_id ? h("a", { href: "#live", onclick: () => followJob(run.job_id) }, run.job_id) : null;
  const error = run.error ? h("span", { class: "err" }, ` ${run.error.message || run.error.error || ""}`) : null;
  return [when(run.at), " ", badge(run.status), link ? " " : null, link, error];
}

export async function refreshSchedules() {
  const note = $("schedules-error");
  let body;
  try {
    body = await apiJson("/schedules");
  } catch (err) {
    note.textContent = err.status === 404
      ? "This service has no schedules API (GET /schedules answered 404): it is older than this dashboard. Update and restart the service to use schedules."
      : `Cannot list schedules: ${err.message}`;
    note.hidden = false;
    $("schedules-table").tBodies[0].replaceChildren();
    $("schedules-empty").hidden = true;
    forget("schedules");
    return;
  }
  note.textContent = body.warning || "";
  note.hidden = !body.warning;
  if (!changed("schedules", body.schedules)) return;
  const rows = (body.schedules || []).map((s) => h("tr", { dataset: { schedule: s.schedule_id } },
    h("td", { class: "nowrap" }, h("code", {}, s.schedule_id)),
    h("td", {}, s.label || ""),
    h("td", { title: JSON.stringify(s.request, null, 2) }, s.kind === "batch" ? `batch: ${describeRequest(s.request)}` : describeRequest(s.request)),
    h("td", { class: "nowrap" }, every(s)),
    h("td", { class: "nowrap" }, when(s.next_run_at)),
    h("td", {}, lastRun(s.last_run)),
    h("td", { class: "num" }, s.runs ?? 0),
    h("td", {}, h("button", { type: "button", class: "del", onclick: () => remove(s) }, "Delete"))));
  $("schedules-table").tBodies[0].replaceChildren(...rows);
  $("schedules-empty").hidden = rows.length > 0;
}

async function remove(s) {
  if (!confirm(`Delete schedule ${s.label || s.schedule_id}? A run already queued goes on.`)) return;
  try {
    await apiJson(`/schedules/${encodeURIComponent(s.schedule_id)}`, { method: "DELETE" });
  } catch (err) {
    if (err.status !== 404) showProblems($("schedule-errors"), [`Not deleted: ${err.message}`]);
  }
  refreshSchedules();
}

// The form as the body of POST /schedules, or the problems in plain words.
function readForm() {
  const problems = [];
  const out = {};
  const label = $("sc-label").value.trim();
  if (label) out.label = label;
  const everyRaw = $("sc-every").value.trim();
  const cron = $("sc-cron").value.trim();
  if (everyRaw && cron) problems.push("Give either every (s) or a cron expression, not both.");
  else if (!everyRaw && !cron) problems.push("Give every (s) or a cron expression.");
  else if (everyRaw) {
    const n = Number(everyRaw);
    if (!Number.isFinite(n) || n <= 0) problems.push("Every must be a number of seconds above 0.");
    out.every_s = n;
  } else {
    out.cron = cron;
  }
  try {
    const parsed = JSON.parse($("sc-body").value);
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) problems.push(`The ${kind()} must be a JSON object.`);
    out[kind()] = parsed;
  } catch (err) {
    problems.push(`The ${kind()} is not valid JSON: ${err.message}`);
  }
  return { problems, body: out };
}

async function createSchedule() {
  const box = $("schedule-errors");
  const { problems, body } = readForm();
  if (problems.length) {
    showProblems(box, problems);
    return;
  }
  showProblems(box, []);
  $("sc-create").disabled = true;
  try {
    const answer = await sendJson("/schedules", body);
    $("sc-label").value = "";
    $("schedule-created").textContent = `Schedule ${answer.schedule_id} created; next run ${when(answer.next_run_at)}.`;
    refreshSchedules();
  } catch (err) {
    const details = ((err.body && err.body.details) || []).slice(1).map((d) => `${d.field}: ${d.message}`);
    const what = err.status === 404 ? "This service has no schedules API (POST /schedules answered 404)." : `Not created: ${err.message}`;
    showProblems(box, [what, ...details]);
  } finally {
    $("sc-create").disabled = false;
  }
}
