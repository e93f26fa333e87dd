// A session's report, MCAP and zip links, and its upload state as a badge.
//
// Without a token these are plain links: the browser opens the report and streams a download to disk
// itself. With a token a link cannot send the Authorization header, so the file is fetched with it:
// the report (one self-contained page) opens from a blob URL in a new tab; a download is streamed to a
// file chosen in a save dialog where the browser offers one (File System Access API: Chromium, on
// https or localhost), else held in memory as a blob before it is saved (a multi-GB session needs that
// much memory then; see docs/sessions.md).

import { download, fetchOk } from "./api.js";
import { state } from "./state.js";
import { h } from "./util.js";

const UPLOAD_BADGES = {
  pending: "warn", uploading: "warn", uploaded: "ok", "local-deleted": "ok", failed: "bad",
};

// The badge for a session's upload state (null: no object store, nothing shown).
export function uploadBadge(uploadState, detail) {
  if (!uploadState) return null;
  const bits = [`upload ${uploadState}`];
  if (detail && detail.location) bits.push(detail.location);
  if (detail && detail.last_error) bits.push(`last error: ${detail.last_error}`);
  return h("span", {
    class: `badge upload ${UPLOAD_BADGES[uploadState] || ""}`, dataset: { upload: uploadState }, title: bits.join(" · "),
  }, uploadState === "local-deleted" ? "uploaded, local copy deleted" : `upload ${uploadState}`);
}

export function sessionUrl(sessionId, what) {
  const id = encodeURIComponent(sessionId);
  return what === "report" ? `/sessions/${id}/report` : `/sessions/${id}.${what}`;
}

// Report, MCAP and zip links for a session (report and MCAP need its session.json).
export function sessionLinks(sessionId, hasManifest = true) {
  const links = [];
  if (hasManifest) {
    links.push(h("a", {
      href: sessionUrl(sessionId, "report"), target: "_blank", rel: "noopener", class: "report",
      title: "Plots of the recording: pan and tilt, settle, frame intervals, gaps, range", onclick: openReport,
    }, "Report"));
    links.push(downloadLink(sessionId, "mcap", "MCAP", "The session as MCAP, for Foxglove"));
  }
  links.push(downloadLink(sessionId, "zip", "Zip", "The session folder as a zip"));
  return h("span", { class: "session-links" }, links);
}

function downloadLink(sessionId, ext, text, title) {
  const filename = `${sessionId}.${ext}`;
  return h("a", {
    href: sessionUrl(sessionId, ext), download: filename, class: ext, title,
    onclick: (ev) => {
      if (!state.token) return; // the browser streams it to disk
      ev.preventDefault();
      download(ev.currentTarget.href, filename, { stream: true }).catch((err) => alert(err.message));
    },
  }, text);
}

function openReport(ev) {
  if (!state.token) return;
  ev.preventDefault();
  const url = ev.currentTarget.href;
  // Opened now, while the click counts as one (a window opened after the fetch would be blocked).
  const tab = window.open("about:blank", "_blank");
  if (tab) tab.opener = null; // the report's page gets no handle on the dashboard (nor its token)
  fetchOk(url).then((resp) => resp.blob()).then((blob) => {
    const blobUrl = URL.createObjectURL(new Blob([blob], { type: "text/html" }));
    if (tab) tab.location.href = blobUrl;
    else window.location.href = blobUrl;
    setTimeout(() => URL.revokeObjectURL(blobUrl), 60000);
  }).catch((err) => {
    if (tab) tab.close();
    alert(err.message);
  });
}

