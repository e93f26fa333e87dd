// Every call to the service goes through api(), which adds "Authorization: Bearer <token>" when a
// token is kept in localStorage and asks for one when the service answers 401. Images are fetched
// the same way and shown through blob URLs, because an <img src> cannot send a header. Live data is
// polled (an EventSource cannot send the Authorization header either).

import { state, TOKEN_KEY } from "./state.js";
import { $, h } from "./util.js";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

let tokenPrompt = null; // one shared prompt however many calls were refused

export function askToken(reason) {
  $("token-reason").textContent = reason;
  $("token-input").value = "";
  $("token-modal").hidden = false;
  $("token-input").focus();
  if (!tokenPrompt) {
    tokenPrompt = new Promise((resolve) => {
      $("token-form").onsubmit = (ev) => {
        ev.preventDefault();
        const value = $("token-input").value.trim();
        if (!value) return;
        setToken(value);
        $("token-modal").hidden = true;
        tokenPrompt = null;
        resolve();
      };
    });
  }
  return tokenPrompt;
}

export function setToken(value) {
  state.token = value;
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

export async function api(path, options = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = new Headers(options.headers || {});
    if (state.token) headers.set("Authorization", `Bearer ${state.token}`);
    let resp;
    try {
      resp = await fetch(path, { ...options, headers });
    } catch (err) {
      setReachable(false, `cannot reach the service (${err.message})`);
      throw new ApiError(0, "cannot reach the service: is it running?", null);
    }
    setReachable(true);
    if (resp.status === 401 && attempt < 5) {
      const reason = state.token
        ? "The service refused the token kept in this browser. Enter the token set in api.token."
        : "This service needs the token set in api.token.";
      await askToken(reason);
      continue;
    }
    return resp;
  }
}

// The answer's JSON; an ApiError (with the service's message and body) when it is not 2xx.
export async function apiJson(path, options = {}) {
  const resp = await api(path, options);
  let body = null;
  try {
    body = await resp.json();
  } catch (err) {
    body = null;
  }
  if (!resp.ok) {
    const message = body && body.error ? body.error : `the service answered ${resp.status} ${resp.statusText}`;
    throw new ApiError(resp.status, message, body);
  }
  return body;
}

// A JSON body sent with `method` (POST unless said otherwise); the answer as apiJson gives it.
export function sendJson(path, body, method = "POST") {
  return apiJson(path, {
    method,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

// The error's details ({index, field, message}, as every validator of the service gives them) in
// plain words; `what` names an index ("command", "pose").
export function errorDetails(err, what) {
  const body = err.body || {};
  const details = body.details || body.problems || [];
  return details.map((d) => {
    const where = d.index === null || d.index === undefined ? d.field : `${what} ${d.index + 1}, ${d.field}`;
    return `${where}: ${d.message}`;
  });
}

// Shows an image fetched with the token; the previous blob URL of that <img> is released.
export async function loadImage(img, url) {
  const resp = await api(url);
  if (!resp.ok) {
    let message = `${resp.status}`;
    try {
      message = (await resp.json()).error || message;
    } catch (err) {
      /* not JSON */
    }
    throw new ApiError(resp.status, message, null);
  }
  const blob = await resp.blob();
  const next = URL.createObjectURL(blob);
  // Decode off-screen first, then swap: the <img> never shows a half-loaded (blank) frame.
  const probe = new Image();
  probe.src = next;
  try {
    await probe.decode();
  } catch (err) {
    URL.revokeObjectURL(next);
    throw new ApiError(0, "the image could not be decoded", null);
  }
  img.src = next;
  const previous = img.dataset.blob;
  img.dataset.blob = next;
  if (previous) URL.revokeObjectURL(previous);
  return resp;
}

// A fetch through api() that throws an ApiError naming the service's own message when refused.
export async function fetchOk(url) {
  const resp = await api(url);
  if (!resp.ok) {
    let message = `the service answered ${resp.status}`;
    try {
      message = (await resp.json()).error || message;
    } catch (err) {
      /* not JSON */
    }
    throw new ApiError(resp.status, message, null);
  }
  return resp;
}

// Save ``url`` as ``filename``. Without a token the browser streams it to disk itself. With one the
// request needs the header, so it goes through fetch: with ``stream`` (large files: MCAP, zip) into
// the file the browser's save dialog returns where there is one, else held in memory as a blob.
export async function download(url, filename, { stream = false } = {}) {
  if (!state.token) {
    clickToSave(url, filename);
    return;
  }
  if (stream && typeof window.showSaveFilePicker === "function") {
    let handle;
    try {
      handle = await window.showSaveFilePicker({ suggestedName: filename });
    } catch (err) {
      if (err && err.name === "AbortError") return; // the operator cancelled
      handle = null; // no dialog here: fall back to the blob
    }
    if (handle) {
      const resp = await fetchOk(url);
      await resp.body.pipeTo(await handle.createWritable());
      return;
    }
  }
  const resp = await fetchOk(url);
  const blobUrl = URL.createObjectURL(await resp.blob());
  clickToSave(blobUrl, filename);
  setTimeout(() => URL.revokeObjectURL(blobUrl), 60000);
}

function clickToSave(href, filename) {
  const a = h("a", { href, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
}

export function setReachable(ok, why) {
  state.reachable = ok;
  const pill = $("pill-service");
  pill.textContent = ok ? "service up" : "service unreachable";
  pill.className = `pill ${ok ? "ok" : "bad"}`;
  const banner = $("banner");
  if (ok) {
    banner.hidden = true;
  } else {
    banner.textContent = `The dashboard ${why || "cannot reach the service"}; retrying…`;
    banner.hidden = false;
  }
}
