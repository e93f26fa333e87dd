// Jobs: the service's jobs since it started, newest first.

import { apiJson } from "./api.js";
import { cancelJob, followJob } from "./job.js";
import { describeCommands } from "./rig.js";
import { sessionLink } from "./sessions.js";
import { $, badge, h, when } from "./util.js";

export async function refreshJobs() {
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
      h("td", {}, badge(job.status)),
      h("td", {}, job.phase),
      h("td", {}, describeCommands((job.results || []).map((r) => r.request))),
      h("td", { class: "nowrap" }, sessionLink(job.session && job.session.session_id)),
      h("td", { class: "err" }, job.error ? job.error.message : ""),
      h("td", {}, active ? h("button", { type: "button", onclick: () => cancelJob(job.job_id) }, "Stop") : ""));
  });
  $("jobs-table").tBodies[0].replaceChildren(...rows);
  $("jobs-empty").hidden = rows.length > 0;
}
