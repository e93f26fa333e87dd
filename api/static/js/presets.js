// Presets on the Live view: a button per preset moves the rig there (goto_preset in a batch, followed
// in the Job panel like any batch); "Save current" stores the pose the rig holds now.

import { apiJson, errorDetails } from "./api.js";
import { refusal, sendBatch } from "./live.js";
import { GOTO_PRESET } from "./rig.js";
import { state } from "./state.js";
import { $, changed, deg, forget, h, showProblems, shortCam, when } from "./util.js";

const listeners = []; // called with the presets whenever they are listed again

export function onPresets(fn) {
  listeners.push(fn);
}

export function initPresets() {
  $("preset-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    saveCurrent();
  });
}

export async function refreshPresets() {
  let body;
  try {
    body = await apiJson("/presets");
  } catch (err) {
    $("presets-note").textContent = `Presets unavailable: ${err.message}`;
    forget("presets");
    return;
  }
  if (!changed("presets", body)) return;
  state.presets = body.presets || [];
  $("presets-note").textContent = body.warning || (state.presets.length ? "" : "No presets yet: save the current pose under a name.");
  $("presets").replaceChildren(...state.presets.map(presetItem));
  for (const fn of listeners) fn(state.presets);
}

function describe(p) {
  const zooms = Object.entries(p.zoom || {}).map(([cam, v]) => `${shortCam(cam)} zoom ${v}`);
  const saved = typeof p.saved_at === "number" ? [`saved ${when(p.saved_at)}`] : [];
  return [`pan ${deg(p.pan_deg_x100)}`, `tilt ${deg(p.tilt_deg_x100)}`, ...zooms, ...saved].join(" · ");
}

function presetItem(p) {
  return h("span", { class: "preset", dataset: { preset: p.name } },
    h("button", { type: "button", class: "go", title: `Go to ${p.name}: ${describe(p)}`, onclick: () => goto(p.name) }, p.name),
    h("button", { type: "button", class: "quiet del", title: `Delete preset ${p.name}`, "aria-label": `Delete preset ${p.name}`, onclick: () => remove(p.name) }, "×"));
}

async function goto(name) {
  showProblems($("preset-errors"), []);
  const batch = {
    requests: [{ target_id: "entity", device_id: state.info.pantilt.device_id, command_id: GOTO_PRESET, args: { preset: name } }],
  };
  try {
    await sendBatch(batch);
  } catch (err) {
    showProblems($("preset-errors"), [refusal(err), ...errorDetails(err, "command")]);
  }
}

async function saveCurrent() {
  const input = $("preset-name");
  const name = input.value.trim();
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) {
    showProblems($("preset-errors"), ["A preset name is 1 to 64 letters, digits, '_', '.' or '-'."]);
    return;
  }
  showProblems($("preset-errors"), []);
  $("preset-save").disabled = true;
  try {
    await apiJson(`/presets/${encodeURIComponent(name)}?from=current`, { method: "POST" });
    input.value = "";
    await refreshPresets();
  } catch (err) {
    showProblems($("preset-errors"), [`Not saved: ${err.message}`, ...errorDetails(err, "item")]);
  } finally {
    $("preset-save").disabled = false;
  }
}

async function remove(name) {
  if (!confirm(`Delete preset ${name}? Scans and schedules that name it will be refused.`)) return;
  try {
    await apiJson(`/presets/${encodeURIComponent(name)}`, { method: "DELETE" });
  } catch (err) {
    if (err.status !== 404) showProblems($("preset-errors"), [`Not deleted: ${err.message}`]);
  }
  await refreshPresets();
}
