// Events on the Live view: the "Event" button saves the seconds before and after now as a session
// (POST /events), and the list shows the events since the service started (GET /events), with what
// the ring holds. Its own entry module (the page loads it beside main.js): it starts itself.

import { apiJson, errorDetails, sendJson } from "./api.js";
import { sessionLink } from "./sessions.js";
import { $, badge, changed, h, isoLocal, isoSpan, shortCam, showProblems, sleep } from "./util.js";

const BUSY_EVERY_MS = 700; // while an event records or saves
const IDLE_EVERY_MS = 3000;
const MIB = 1024 * 1024;
// An event's status as the badge of the session status it stands for (util.js colours).
const BADGE_OF = { saved: "complete", partial: "partial", failed: "failed", collecting: "running", saving: "running" };

function init() {
  $("event-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    trigger();
  });
  loop();
}

async function loop() {
  for (;;) {
    const visible = !document.hidden && !$("view-live").hidden;
    const busy = visible ? await refresh() : false;
    await sleep(busy ? BUSY_EVERY_MS : IDLE_EVERY_MS);
  }
}

// Lists the events; true while one of them is still recording or saving.
async function refresh() {
  let body;
  try {
    body = await apiJson("/events");
  } catch (err) {
    $("events-ring").textContent = err.status ? `events unavailable: ${err.message}` : "";
    return false;
  }
  renderRing(body);
  const events = body.events || [];
  if (changed("events", events)) {
    $("events-table").tBodies[0].replaceChildren(...events.map(eventRow));
    $("events-empty").hidden = events.length > 0;
  }
  return events.some((e) => e.status === "collecting" || e.status === "saving");
}

function renderRing(body) {
  const ring = body.ring || {};
  const cams = Object.entries(ring.cameras || {});
  let text;
  if (body.error) text = `off: ${body.error}`;
  else if (!body.armed) text = "disabled (events.enabled in the configuration)";
  else {
    const held = cams.map(([cam, c]) => `${shortCam(cam)} ${c.seconds.toFixed(1)} s`).join(", ");
    text = `the ring holds ${held || "nothing yet"} · ${(ring.bytes / MIB).toFixed(0)} MiB`;
  }
  $("events-ring").textContent = text;
  $("ev-trigger").disabled = !body.armed;
}

function eventRow(e) {
  const frames = Object.entries(e.frames || {});
  const total = frames.reduce((n, [, count]) => n + count, 0);
  const more = (e.triggers || []).length > 1 ? ` (+${e.triggers.length - 1} trigger${e.triggers.length > 2 ? "s" : ""})` : "";
  return h("tr", { dataset: { event: e.event_id } },
    h("td", { class: "nowrap" }, h("code", {}, e.event_id)),
    h("td", { class: "nowrap" }, `${isoLocal(e.trigger_at)}${more}`),
    h("td", { class: "nowrap" }, isoSpan(e.start_at, e.end_at)),
    h("td", {}, badge(BADGE_OF[e.status], e.status), " ", progressText(e)),
    h("td", {}, e.label || ""),
    h("td", { title: frames.map(([cam, n]) => `${shortCam(cam)}: ${n}`).join("\n") }, String(total)),
    h("td", { class: "nowrap" }, e.status === "collecting" || e.status === "saving" ? "–" : sessionLink(e.session_id)));
}

function progressText(e) {
  const p = e.progress || {};
  if (e.status === "collecting" && typeof p.seconds_left === "number" && p.seconds_left > 0) return `${p.seconds_left.toFixed(1)} s left`;
  if (e.status === "saving" && typeof p.total === "number") return `${p.saved}/${p.total} saved`;
  if (e.error) return e.error;
  return (e.problems || []).map((pr) => pr.type).join(", ");
}

// The form as a POST /events body, and the problems with it.
function readForm() {
  const body = {};
  const problems = [];
  for (const [id, key, name] of [["ev-pre", "pre_s", "Before"], ["ev-post", "post_s", "After"]]) {
    const raw = $(id).value.trim();
    if (!raw) continue;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0) problems.push(`${name}: give a number of seconds, 0 or more.`);
    else body[key] = value;
  }
  const label = $("ev-label").value.trim();
  if (label) body.label = label;
  return { body, problems };
}

async function trigger() {
  const { body, problems } = readForm();
  showProblems($("event-errors"), problems);
  if (problems.length) return;
  $("ev-trigger").disabled = true;
  try {
    const answer = await sendJson("/events", body);
    if (answer.extended) showProblems($("event-errors"), [`Event ${answer.event_id} was still recording: extended.`]);
    await refresh();
  } catch (err) {
    const what = err.status === 409 ? `No event: ${err.message}` : `The service refused the event: ${err.message}`;
    showProblems($("event-errors"), [what, ...errorDetails(err, "item")]);
  } finally {
    $("ev-trigger").disabled = false;
  }
}

init();
