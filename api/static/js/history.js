// History: every request received (history.json), newest first. A scan shows as a scan: its
// progress, and per pose its session (each a link of its own), as in Jobs.

import { apiJson } from "./api.js";
import { jobSessions, scanText } from "./jobs.js";
import { describeRequest } from "./rig.js";
import { $, badge, changed, h, isoLocal, when } from "./util.js";

export async function refreshHistory() {
  let body;
  try {
    body = await apiJson("/history?limit=200");
  } catch (err) {
    return;
  }
  if (!changed("history", body.requests)) return; // rebuilt only when it changed: no click lost
  const entries = [...body.requests].reverse();
  const rows = entries.map((e) => {
    const error = e.error ? (e.error.error || e.error.message || JSON.stringify(e.error)) : "";
    const client = e.client || {};
    const scan = e.scan && e.scan.scan_id ? e.scan : null;
    const req = e.request || {};
    const kind = e.kind || (req.poses || req.grid ? "scan" : "batch"); // entries from before "kind"
    return h("tr", { dataset: { entry: e.id, kind } },
      h("td", { class: "nowrap" }, h("code", {}, e.id)),
      h("td", { class: "nowrap", title: isoLocal(e.received_at) }, when(e.received_at)),
      h("td", { title: client.user_agent || "" }, client.address || "–"),
      h("td", {}, badge(e.status)),
      h("td", {}, describeRequest(e.request), scan ? h("br") : null, scan ? scanText(scan) : null),
      h("td", {}, jobSessions(e)),
      h("td", { class: "err" }, error));
  });
  $("history-table").tBodies[0].replaceChildren(...rows);
  $("history-empty").hidden = rows.length > 0;
}
