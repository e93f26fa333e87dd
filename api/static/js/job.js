// The job the Live view follows: its phases, progress, error and the session it saved.

import { apiJson } from "./api.js";
import { refreshSessions, sessionLink } from "./sessions.js";
import { state } from "./state.js";
import { $, badgeClass, camName, deg, h, plural, sleep } from "./util.js";

const JOB_EVERY_MS = 300;
const PHASES = ["queued", "commanding", "settling", "recording", "saving", "done"];

let jobLoopRunning = false;

export function followJob(jobId) {
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
  status.className = badgeClass(job.status);
  const at = PHASES.indexOf(job.phase);
  const failed = job.status === "failed" || job.status === "cancelled";
  for (const li of document.querySelectorAll("#job-phases li")) {
    const i = PHASES.indexOf(li.dataset.phase);
    li.className = i < at ? "past" : i === at ? (failed && job.phase === "done" ? "failed" : "current") : "";
  }
  renderDetail(job);
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

// The line under the phases, and the progress bar while recording or saving.
function renderDetail(job) {
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
      h("tr", {}, h("td", {}, camName(cam)), h("td", { class: "num" }, c.frame_count), h("td", { class: "num" }, c.rejected_frames)));
    const seconds = typeof session.record_ended_at === "number" && typeof session.record_started_at === "number"
      ? `${(session.record_ended_at - session.record_started_at).toFixed(2)} s` : "–";
    const link = sessionLink(session.session_id);
    link.id = "job-session-link";
    parts.push(
      h("p", { class: "small" }, "Session ", link, ` (${session.status || "saved"}), ${seconds} recorded`),
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

export async function cancelJob(id) {
  try {
    await apiJson(`/jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
  } catch (err) {
    if (err.status !== 409) alert(`Could not stop ${id}: ${err.message}`);
  }
}
