// What the views share: the service's configuration (GET /cameras), the last status, the view shown.

export const TOKEN_KEY = "rigcapture.token";

export const state = {
  token: localStorage.getItem(TOKEN_KEY) || "",
  view: "live",
  info: null, // GET /cameras
  status: null, // GET /status
  reachable: true,
  formFilled: false,
  jobId: null,
  job: null,
  jobDuration: null,
  sessionsShown: 0,
  sessionsTotal: 0,
  sessionsStale: true,
  highlight: null, // a session to show in the gallery once it is listed
  presets: [], // GET /presets
  manifests: new Map(), // session id -> manifest promise (for the frame viewer)
  viewer: null, // {sessionId, camera, frames, index}
};
