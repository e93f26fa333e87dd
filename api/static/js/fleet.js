// Fleet: every node of the fleet (GET /fleet) — online or not, when it was last heard of, the job it
// runs, its broker and stream, its catalog's outbox — with a link to each node's own dashboard; and
// the choices of the Sessions view's node filter. See docs/operations/fleet.md.

import { apiJson } from "./api.js";
import { state } from "./state.js";
import { $, badge, h, plural, when } from "./util.js";

let fleet = null; // the last GET /fleet answer

export async function refreshFleet() {
  const box = $("fleet-error");
  try {
    fleet = await apiJson("/fleet");
  } catch (err) {
    box.textContent = `The fleet cannot be listed: ${err.message}`;
    box.hidden = false;
    return;
  }
  box.hidden = true;
  const online = fleet.nodes.filter((n) => n.online).length;
  $("fleet-summary").textContent = fleet.shared
    ? `${online} of ${plural(fleet.nodes.length, "node")} online · a node is offline after three heartbeats missed`
    : "no shared catalog (catalog.url): this node alone";
  $("fleet-table").tBodies[0].replaceChildren(...fleet.nodes.map(nodeRow));
  $("fleet-empty").hidden = fleet.nodes.length > 0;
  $("fleet-outbox").replaceChildren(outboxLine());
  fillNodeFilter();
}

export const showFleet = refreshFleet;
export const tickFleet = refreshFleet;

function nodeRow(n) {
  const here = fleet && n.node_id === fleet.node_id;
  const job = n.job;
  const lag = (n.catalog || {}).lag;
  return h("tr", { dataset: { node: n.node_id } },
    h("td", { class: "nowrap" }, h("strong", {}, n.node_id), here ? h("span", { class: "muted" }, " (this node)") : null),
    h("td", {}, h("span", { class: `badge ${n.online ? "ok" : "bad"}` }, n.online ? "online" : "offline")),
    h("td", { class: "nowrap", title: `${n.age_s} s ago` }, when(n.last_seen)),
    h("td", {}, job ? [badge(job.status), ` ${job.phase || ""} `, h("code", {}, job.job_id)] : "idle",
      n.jobs_waiting ? h("span", { class: "muted" }, ` · ${n.jobs_waiting} waiting`) : null),
    h("td", {}, connected(n.broker)),
    h("td", {}, connected(n.streams)),
    h("td", { class: "nowrap" }, lag && lag.rows ? `${plural(lag.rows, "row")} to send` : "up to date"),
    h("td", {}, n.version || "–"),
    h("td", { class: "nowrap" }, n.url && !here ? h("a", { href: `${n.url}/`, target: "_blank", rel: "noopener" }, "open") : ""));
}

function connected(part) {
  if (!part || typeof part.connected !== "boolean") return "–";
  return h("span", { class: `badge ${part.connected ? "ok" : "bad"}` }, part.connected ? "connected" : "down");
}

// This node's catalog from the last /status: the outbox's lag and its last error (long work shows
// its progress: a backlog after an outage drains here).
function outboxLine() {
  const cat = (state.status || {}).catalog;
  if (!cat || !cat.shared) return "";
  const lag = cat.lag || {};
  const err = cat.last_error;
  return h("span", {},
    `This node's outbox to ${cat.shared.url}: ${plural(lag.rows || 0, "row")} waiting`
      + `${lag.oldest_age_s ? ` (oldest ${lag.oldest_age_s} s)` : ""}, ${cat.shared.rate_rows_s} rows/s`,
    err ? h("span", { class: "upload-error" }, ` · last error: ${err.message}`) : null);
}

// The Sessions view's node filter: this node (the default, its own catalog), every node, or one.
export async function fillNodeFilter() {
  const select = $("sf-node");
  if (!fleet) {
    try {
      fleet = await apiJson("/fleet");
    } catch (err) {
      return;
    }
  }
  const chosen = select.value;
  const others = fleet.nodes.filter((n) => n.node_id !== fleet.node_id);
  select.replaceChildren(
    h("option", { value: "" }, `this node (${fleet.node_id})`),
    h("option", { value: "all" }, fleet.shared ? "every node" : "every node (only this one known)"),
    ...others.map((n) => h("option", { value: n.node_id }, `${n.node_id}${n.online ? "" : " (offline)"}`)));
  select.value = [...select.options].some((o) => o.value === chosen) ? chosen : "";
}

// A session of another node in the gallery: where it is, and a link to it (its report on its node,
// or its copy in the object store once uploaded).
export function remoteLinks(s) {
  const bits = [h("span", { class: "badge" }, `on ${s.node_id}`)];
  if (s.link && /^https?:/.test(s.link)) {
    bits.push(h("a", { href: s.link, target: "_blank", rel: "noopener" }, "open on its node"));
  } else if (s.link) {
    bits.push(h("code", { class: "small", title: "its copy in the object store" }, s.link));
  }
  return bits;
}
