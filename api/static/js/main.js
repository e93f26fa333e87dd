// rigcapture dashboard: native ES modules (ES2020), no build step, no library. This module starts the
// page: it wires the controls, routes #view addresses to views, and polls the list shown.
//
// Modules: util.js (DOM and formatting), state.js (shared state), api.js (calls, token, images),
// rig.js (the configuration's commands in words), live.js + job.js + presets.js (Live), jobs.js,
// history.js, sessions.js + viewer.js + sessionlinks.js (Sessions), scans.js, schedules.js.

import { apiJson, askToken, setToken } from "./api.js";
import { showFleet, tickFleet } from "./fleet.js";
import { refreshHistory } from "./history.js";
import { cancelJob, followJob } from "./job.js";
import { refreshJobs } from "./jobs.js";
import { initLive, startLive } from "./live.js";
import { initPresets, refreshPresets } from "./presets.js";
import { initScans, showScans, startScans, tickScans } from "./scans.js";
import { initSchedules, showSchedules, tickSchedules } from "./schedules.js";
import { refreshSessions, showSessions, tickSessions } from "./sessions.js";
import { state } from "./state.js";
import { $, sleep } from "./util.js";
import { initViewer } from "./viewer.js";

const LIST_EVERY_MS = 3000;

// Each view: what to do when it is shown (`arg`: what follows "/" in the address) and every
// LIST_EVERY_MS while it is shown. Views that need GET /cameras wait for it (state.info).
const VIEWS = {
  live: { show: () => {}, tick: refreshPresets },
  jobs: { show: refreshJobs, tick: refreshJobs },
  history: { show: refreshHistory, tick: refreshHistory },
  sessions: { show: showSessions, tick: tickSessions },
  fleet: { show: showFleet, tick: tickFleet },
  scans: { show: showScans, tick: tickScans },
  schedules: { show: showSchedules, tick: tickSchedules },
};

function showView(hash) {
  const [first, ...rest] = String(hash || "").split("/");
  const name = Object.hasOwn(VIEWS, first) ? first : "live";
  state.view = name;
  for (const section of document.querySelectorAll("section.view")) {
    section.hidden = section.dataset.view !== name;
  }
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.view === name);
  }
  if (name === "live" || state.info) VIEWS[name].show(decodeURIComponent(rest.join("/")));
}

async function listLoop() {
  for (;;) {
    await sleep(LIST_EVERY_MS);
    if (document.hidden) continue;
    VIEWS[state.view].tick();
  }
}

async function loadInfo() {
  for (let wait = 500; ; wait = Math.min(wait * 2, 5000)) {
    try {
      state.info = await apiJson("/cameras");
      return;
    } catch (err) {
      await sleep(wait);
    }
  }
}

function initToken() {
  $("token-button").addEventListener("click", () => {
    $("token-forget").hidden = !state.token;
    askToken(state.token ? "A token is kept in this browser. Enter another one, or forget it." : "Enter the token set in api.token.");
  });
  // Closing leaves refused calls waiting: they go on once a token is entered (Token button).
  $("token-cancel").addEventListener("click", () => { $("token-modal").hidden = true; });
  $("token-forget").addEventListener("click", () => {
    setToken("");
    $("token-modal").hidden = true;
    location.reload();
  });
}

async function main() {
  initToken();
  initLive();
  initPresets();
  initScans();
  initSchedules();
  initViewer();
  $("job-cancel").addEventListener("click", () => state.jobId && cancelJob(state.jobId));
  $("sessions-refresh").addEventListener("click", () => refreshSessions(false));
  $("sessions-more").addEventListener("click", () => refreshSessions(true));
  window.addEventListener("hashchange", () => showView(location.hash.slice(1)));
  showView(location.hash.slice(1) || "live");

  await loadInfo();
  startLive();
  startScans();
  refreshPresets();
  listLoop();
  if (state.view !== "live") showView(location.hash.slice(1)); // it waited for GET /cameras
  // Pick up a job that is running already (started elsewhere, or before a reload).
  try {
    const jobs = (await apiJson("/jobs")).jobs;
    const active = jobs.find((j) => j.status === "queued" || j.status === "running");
    if (active) followJob(active.job_id);
  } catch (err) {
    /* shown by the status line */
  }
  document.body.dataset.ready = "1";
}

main();
