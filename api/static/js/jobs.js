// Jobs: the service's jobs since it started, newest first. A scan job shows as a scan (its progress,
// and per pose its target, status and session); every session is a link of its own.

import { apiJson } from "./api.js";
import { cancelJob, followJob } from "./job.js";
import { describeCommands } from "./rig.js";
import { sessionLink } from "./sessions.js";
import { $, badge, changed, deg, h, isoLocal, plural, when } from "./util.js";

const POSES_SHOWN = 8; // a scan with more poses lists them folded (a <details> to open)

export async function refreshJobs() {
  let body;
  try {
    body = await apiJson("/jobs");
  } catch (err) {
    return;
  }
  if (!changed("jobs", body.jobs)) return; // rebuilt only when it changed: no click lost
  const rows = body.jobs.map((job) => {
    const active = job.status === "queued" || job.status === "running";
    const scan = job.kind === "scan" ? job.scan : null;
    return h("tr", { dataset: { job: job.job_id, kind: job.kind || "batch" } },
      h("td", { class: "nowrap" }, h("a", { href: "#live", onclick: () => followJob(job.job_id) }, job.job_id)),
      h("td", { class: "nowrap", title: isoLocal(job.created_at) }, when(job.created_at)),
      h("td", {}, badge(job.status)),
      h("td", {}, job.phase),
      h("td", {}, scan ? scanText(scan) : describeCommands((job.results || []).map((r) => r.request))),
      h("td", {}, jobSessions(job)),
      h("td", { class: "err" }, job.error ? job.error.message : ""),
      h("td", {}, active ? h("button", { type: "button", onclick: () => cancelJob(job.job_id) }, "Stop") : ""));
  });
  $("jobs-table").tBodies[0].replaceChildren(...rows);
  $("jobs-empty").hidden = rows.length > 0;
}

// A scan job's scan in words, with a link to it in the Scans view: "scan gate row (scan-…): 2 of 3
// poses done".
export function scanText(scan) {
  const progress = scan.progress || {};
  return h("span", { class: "scan-text" }, "scan ",
    h("a", { href: `#scans/${encodeURIComponent(scan.scan_id)}`, class: "scan-link" },
      scan.label ? `${scan.label} (${scan.scan_id})` : scan.scan_id),
    `: ${progress.done ?? "?"} of ${plural(progress.total ?? 0, "pose")} done`);
}

// The sessions of a job or a history entry, each a link of its own: a scan's per pose (pose 1 …, its
// target and status; people count poses from 1), a batch's one per recording.
export function jobSessions(item) {
  const scan = item.scan;
  if (scan && Array.isArray(scan.poses)) {
    const list = h("ul", { class: "job-sessions poses" }, scan.poses.map(poseItem));
    if (scan.poses.length <= POSES_SHOWN) return list;
    const saved = scan.poses.filter((p) => p.session_id).length;
    return h("details", {}, h("summary", {}, `${plural(scan.poses.length, "pose")}, ${plural(saved, "session")}`), list);
  }
  const sessions = (item.sessions || []).filter((s) => s && s.session_id);
  if (!sessions.length) return "–";
  return h("ul", { class: "job-sessions" }, sessions.map((s) => h("li", {}, sessionLink(s.session_id))));
}

function poseItem(pose) {
  const target = `pan ${deg(pose.pan_deg_x100)} · tilt ${deg(pose.tilt_deg_x100)}`;
  return h("li", { dataset: { pose: pose.index } },
    h("span", { class: "pose-n" }, `pose ${pose.index + 1}`), " ",
    h("span", { class: "target" }, pose.preset ? `${pose.preset} (${target})` : target), " ",
    badge(pose.status), " ",
    pose.session_id ? sessionLink(pose.session_id) : null);
}
