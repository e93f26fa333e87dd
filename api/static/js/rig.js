// What the configuration says about the rig (GET /cameras), and commands described in words.

import { state } from "./state.js";
import { deg, plural, shortCam } from "./util.js";

export const GOTO_PRESET = "goto_preset"; // the batch command that moves the rig to a preset

// The pan and tilt inputs with the command that drives each axis, from GET /cameras (commands are
// the service's configuration; null when none is configured). Values are in hundredths of a degree.
export function axes() {
  const pantilt = state.info.pantilt;
  return [
    { id: "f-pan", name: "Pan", spec: pantilt.pan, pose: "pan_deg_x100" },
    { id: "f-tilt", name: "Tilt", spec: pantilt.tilt, pose: "tilt_deg_x100" },
  ];
}

export function describeCommands(requests) {
  if (!Array.isArray(requests)) return "–";
  return requests.map((r) => {
    if (!r || typeof r !== "object") return "?";
    const args = r.args || {};
    const axis = state.info && axes().find((a) => a.spec && a.spec.command_id === r.command_id);
    if (axis) return `${axis.name.toLowerCase()} ${deg(args[axis.spec.arg])}`;
    if (state.info && r.command_id === state.info.recording.command_id) {
      return `record ${args.duration_second} s (${(args.camera_ids || []).map(shortCam).join(", ")})`;
    }
    if (r.command_id === GOTO_PRESET) return `preset ${args.preset}`;
    const value = Object.values(args)[0];
    const zoomCam = state.info && state.info.cameras.find((c) => c.zoom && c.zoom.command_id === r.command_id && c.camera_id === r.device_id);
    if (zoomCam) return zoomText(r.device_id, value);
    return `${r.command_id}${value !== undefined ? ` ${value}` : ""}`;
  }).join(" → ");
}

// A camera's zoom as people read it, with the configured argument that names its unit:
// "swir_1 zoom 3 (zoom_step)", "rgb_1 zoom 2.5 (zoom_value)"; a zoom no command drives: "zoom 3".
export function zoomText(cameraId, value) {
  const unit = zoomUnit(cameraId);
  return `${shortCam(cameraId)} zoom ${value ?? "–"}${unit ? ` (${unit})` : ""}`;
}

// The argument of the command that drives a camera's zoom (zoom_step, zoom_value), or null.
export function zoomUnit(cameraId) {
  const cam = state.info && state.info.cameras.find((c) => c.camera_id === cameraId);
  return cam && cam.zoom ? cam.zoom.arg : null;
}

// A request as history keeps it: a batch's commands, or a scan in a few words.
export function describeRequest(req) {
  if (!req || typeof req !== "object") return "–";
  if (Array.isArray(req.requests)) return describeCommands(req.requests);
  if (req.grid && typeof req.grid === "object") {
    const axis = (r) => (r && typeof r === "object" ? `${deg(r.from)} … ${deg(r.to)} step ${deg(r.step)}` : "?");
    return `scan: pan ${axis(req.grid.pan_deg_x100)}, tilt ${axis(req.grid.tilt_deg_x100)}, ${req.duration_second} s a pose`;
  }
  if (Array.isArray(req.poses)) return `scan: ${plural(req.poses.length, "pose")}, ${req.duration_second} s a pose`;
  return "–";
}
