// History: every request received (history.json), newest first.

import { apiJson } from "./api.js";
import { describeRequest } from "./rig.js";
import { sessionLink } from "./sessions.js";
import { $, badge, h, when } from "./util.js";

export async function refreshHistory() {
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
      h("td", {}, badge(e.status)),
      h("td", {}, describeRequest(e.request)),
      h("td", { class: "nowrap" }, sessions.length ? sessions.map((s) => sessionLink(s.session_id)) : "–"),
      h("td", { class: "err" }, error));
  });
  $("history-table").tBodies[0].replaceChildren(...rows);
  $("history-empty").hidden = rows.length > 0;
}
