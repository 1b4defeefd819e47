// The "New video" form: models and their options, image drops, and the create request.
import { $, el } from "./dom.js";
import { api, ApiError, describeError, apiKey, KEY_STORE } from "./api.js";

export const MODE_NAMES = {
  text: "text to video",
  image: "image to video",
  interpolation: "first and last frame",
  reference: "reference images",
  extension: "extension",
};

const state = {
  models: [],
  defaultModel: "", // the gateway's, as `GET /v1/models` names it
  files: { first: [], last: [], refs: [] }, // each: {name, type, dataUri}
  refused: false, // the form error shown is missingImages()'s
};

export function setKeyStatus(text, isError = false) {
  const status = $("key-status");
  status.textContent = text;
  status.classList.toggle("error-text", isError);
}

// ---- models and options -----------------------------------------------------------------------

// Loads the key's models into the form; false when the key could not be used.
export async function loadModels() {
  if (!apiKey()) return false;
  try {
    const body = await (await api("/v1/models")).json();
    state.models = body.data || [];
    state.defaultModel = body.default_model || "";
  } catch (error) {
    state.models = [];
    // A refused key is not kept for the next load; other errors (a restart, say) keep it.
    if (error instanceof ApiError && error.httpStatus === 401) sessionStorage.removeItem(KEY_STORE);
    setKeyStatus(`Could not load models: ${describeError(error)}`, true);
    $("model").disabled = true;
    $("submit").disabled = true;
    return false;
  }
  const select = $("model");
  const previous = select.value;
  select.replaceChildren(...state.models.map((m) => el("option", { value: m.id, text: m.id })));
  // The model already picked stays; otherwise the gateway's default (the fast tier), the one
  // the CLI, the Python client and a create that names no model use too.
  const wanted = [previous, state.defaultModel].find((id) => state.models.some((m) => m.id === id));
  if (wanted) select.value = wanted;
  select.disabled = state.models.length === 0;
  $("submit").disabled = state.models.length === 0;
  setKeyStatus(`Key accepted: ${state.models.length} models.`);
  modelChanged();
  return true;
}

export function clearModels() {
  state.models = [];
  const select = $("model");
  select.replaceChildren(el("option", { value: "", text: "enter a key to load models" }));
  select.disabled = true;
  $("submit").disabled = true;
}

// Whether `GET /v1/models` says the model continues a finished video (`video`).
export function modelExtends(id) {
  const model = state.models.find((m) => m.id === id);
  return Boolean(model && model.capabilities.extension);
}

function currentModel() {
  return state.models.find((m) => m.id === $("model").value) || null;
}

function currentMode() {
  const checked = document.querySelector('input[name="mode"]:checked');
  return checked ? checked.value : "text";
}

function fillSelect(select, values, format, fallback) {
  const previous = select.value;
  select.replaceChildren(
    ...values.map((v) => el("option", { value: String(v), text: format(v), "data-label": format(v) }))
  );
  const wanted = values.map(String).includes(previous) ? previous : String(fallback);
  select.value = wanted;
}

function modelChanged() {
  const model = currentModel();
  if (!model) return;
  const caps = model.capabilities;
  fillSelect($("aspect"), caps.aspect_ratios, (v) => v, caps.default_aspect_ratio);
  fillSelect($("duration"), caps.durations, (v) => `${v} s`, caps.default_duration);
  fillSelect($("resolution"), caps.resolutions, (v) => v, caps.default_resolution);
  $("refs-limit").textContent = caps.max_reference_images
    ? `(up to ${caps.max_reference_images})`
    : "";
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    const supported = caps.modes.includes(radio.value);
    radio.disabled = !supported;
    radio.closest("label").title = supported
      ? ""
      : `${model.id} does not support ${MODE_NAMES[radio.value]}`;
    if (!supported && radio.checked) document.querySelector('input[value="text"]').checked = true;
  }
  renderOptions(caps);
  // A model with no negative prompt (Gemini Omni) hides the field, and nothing is sent for it.
  $("negative-field").hidden = caps.negative_prompt === false;
  refreshChoices();
}

// ---- more options: built from the model's `capabilities.options` ------------------------------

// Labels for the options the gateway knows today; one it adds later shows under its own name.
const OPTION_LABELS = {
  sampleCount: "Videos",
  seed: "Seed",
  generateAudio: "Audio",
  enhancePrompt: "Enhance prompt",
  resizeMode: "Resize mode (image)",
  compressionQuality: "Compression",
};

function formatValue(value) {
  if (value === true) return "on";
  if (value === false) return "off";
  return String(value);
}

// One option's control: a select of its values (first "default": the option is not sent), or a
// whole number between its bounds (empty: not sent).
function optionField(key, spec, previous) {
  const id = `option-${key}`;
  let control;
  if (Array.isArray(spec.values)) {
    const choices = [["", "default"], ...spec.values.map((v) => [JSON.stringify(v), formatValue(v)])];
    control = el(
      "select",
      { id, "data-option": key },
      choices.map(([value, text]) => el("option", { value, text }))
    );
    if (choices.some(([value]) => value === previous)) control.value = previous;
  } else {
    control = el("input", {
      id,
      type: "number",
      inputMode: "numeric",
      step: "1",
      min: String(spec.min),
      max: String(spec.max),
      placeholder: spec.default !== undefined ? `default ${spec.default}` : "random",
      "data-option": key,
      "data-json": "number",
    });
    if (previous !== undefined) control.value = previous;
  }
  const label = el("label", { htmlFor: id, text: OPTION_LABELS[key] || key });
  if (!Array.isArray(spec.values)) label.title = `a whole number from ${spec.min} to ${spec.max}`;
  return el("div", { class: "field", "data-needs-image": spec.needs_image ? "true" : "false" }, [
    label,
    control,
  ]);
}

function renderOptions(caps) {
  const previous = {};
  for (const control of document.querySelectorAll("[data-option]")) {
    previous[control.dataset.option] = control.value;
  }
  const offered = Object.entries(caps.options || {});
  $("options").replaceChildren(...offered.map(([key, spec]) => optionField(key, spec, previous[key])));
  $("more-options").hidden = offered.length === 0;
}

// The options set, as `metadata` fields; those that need an image are left out in text modes.
function chosenOptions(mode) {
  const chosen = {};
  const withImage = mode === "image" || mode === "interpolation";
  for (const control of document.querySelectorAll("[data-option]")) {
    const field = control.closest(".field");
    if (field.hidden || control.value === "") continue;
    if (field.dataset.needsImage === "true" && !withImage) continue;
    chosen[control.dataset.option] =
      control.dataset.json === "number" ? Number(control.value) : JSON.parse(control.value);
  }
  return chosen;
}

// Why a value cannot be picked with the other current choices, or null when it can.
function reasons(caps, mode, choice) {
  const long = caps.long_duration;
  const out = { aspect: {}, duration: {}, resolution: {} };
  const needsLong =
    mode === "interpolation" || (mode === "reference" && caps.references_need_long_duration !== false);
  for (const d of caps.durations) {
    if (d === long) continue;
    if (needsLong) out.duration[d] = `${MODE_NAMES[mode]} needs ${long} s`;
    else if (caps.resolutions_need_long_duration.includes(choice.resolution)) {
      out.duration[d] = `${choice.resolution} needs ${long} s`;
    }
  }
  for (const r of caps.resolutions_need_long_duration) {
    if (Number(choice.duration) !== long) out.resolution[r] = `${r} needs ${long} s`;
  }
  if (mode === "reference") {
    for (const a of caps.aspect_ratios) {
      if (!caps.reference_aspect_ratios.includes(a)) {
        out.aspect[a] = `reference images need ${caps.reference_aspect_ratios.join(" or ")}`;
      }
    }
  }
  return out;
}

function applyReasons(select, why) {
  for (const option of select.options) {
    const reason = why[option.value];
    option.disabled = Boolean(reason);
    option.textContent = reason
      ? `${option.dataset.label} — ${reason}`
      : option.dataset.label;
    option.title = reason || "";
  }
  if (select.selectedOptions[0] && select.selectedOptions[0].disabled) {
    const usable = Array.from(select.options).find((o) => !o.disabled);
    if (usable) select.value = usable.value;
  }
}

function refreshChoices() {
  recheckRefusal();
  const model = currentModel();
  const mode = currentMode();
  const withImage = mode === "image" || mode === "interpolation";
  for (const field of document.querySelectorAll('#options [data-needs-image="true"]')) {
    field.hidden = !withImage;
  }
  for (const drop of document.querySelectorAll(".drop")) {
    const slot = drop.dataset.slot;
    drop.hidden = !(
      (slot === "first" && (mode === "image" || mode === "interpolation")) ||
      (slot === "last" && mode === "interpolation") ||
      (slot === "refs" && mode === "reference")
    );
  }
  if (!model) return;
  const caps = model.capabilities;
  // Mode first (it can force a duration and an aspect ratio), then duration, then resolution,
  // twice, so a choice changed by one rule is seen by the others.
  for (let i = 0; i < 2; i += 1) {
    const choice = {
      duration: $("duration").value,
      resolution: $("resolution").value,
    };
    const why = reasons(caps, mode, choice);
    applyReasons($("aspect"), why.aspect);
    applyReasons($("duration"), why.duration);
    applyReasons($("resolution"), why.resolution);
  }
  const notes = [];
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    if (radio.disabled) notes.push(`${MODE_NAMES[radio.value]}: ${radio.closest("label").title}`);
  }
  const why = reasons(caps, mode, {
    duration: $("duration").value,
    resolution: $("resolution").value,
  });
  for (const [field, label] of [["aspect", "Aspect ratio"], ["duration", "Duration"], ["resolution", "Resolution"]]) {
    for (const [value, reason] of Object.entries(why[field])) {
      const shown = field === "duration" ? `${value} s` : value;
      notes.push(`${label} ${shown} unavailable: ${reason}`);
    }
  }
  $("constraints").replaceChildren(...notes.map((text) => el("li", { text })));
}

// ---- files ------------------------------------------------------------------------------------

function readDataUri(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function addFiles(slot, fileList) {
  const files = Array.from(fileList);
  const loaded = await Promise.all(
    files.map(async (f) => ({ name: f.name, type: f.type, dataUri: await readDataUri(f) }))
  );
  if (slot === "refs") {
    const model = currentModel();
    const max = model ? model.capabilities.max_reference_images || 3 : 3;
    state.files.refs = state.files.refs.concat(loaded).slice(-max);
  } else {
    state.files[slot] = loaded.slice(0, 1);
  }
  renderPreviews(slot);
}

function renderPreviews(slot) {
  recheckRefusal();
  const drop = document.querySelector(`.drop[data-slot="${slot}"]`);
  const box = drop.querySelector(".previews");
  box.replaceChildren(
    ...state.files[slot].map((file, index) => {
      const remove = el("button", { type: "button", class: "secondary small", text: "Remove" });
      remove.addEventListener("click", () => {
        state.files[slot].splice(index, 1);
        renderPreviews(slot);
      });
      return el("figure", { class: "preview" }, [
        el("img", { src: file.dataUri, alt: file.name }),
        el("figcaption", { class: "small", text: file.name }),
        remove,
      ]);
    })
  );
}

function wireDrop(drop) {
  const slot = drop.dataset.slot;
  const input = drop.querySelector('input[type="file"]');
  input.addEventListener("change", async () => {
    await addFiles(slot, input.files);
    input.value = "";
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer && event.dataTransfer.files.length) {
      await addFiles(slot, event.dataTransfer.files);
    }
  });
}

// ---- submit -----------------------------------------------------------------------------------

// Why the chosen mode cannot be sent with the images given, or null when it can. Without this
// an image mode with its images missing would go out as plain text to video.
export function missingImages(mode, files) {
  const first = files.first.length > 0;
  const last = files.last.length > 0;
  if (mode === "image" && !first) {
    return "Image (first frame) needs a first frame: drop or choose an image, or pick Text.";
  }
  if (mode === "interpolation" && !(first && last)) {
    const missing = [!first && "a first frame", !last && "a last frame"].filter(Boolean);
    return `First and last frame needs both images; add ${missing.join(" and ")}.`;
  }
  if (mode === "reference" && files.refs.length === 0) {
    return "Reference images needs at least one reference image.";
  }
  return null;
}

function buildBody() {
  const mode = currentMode();
  const metadata = {
    aspectRatio: $("aspect").value,
    durationSeconds: Number($("duration").value),
    resolution: $("resolution").value,
  };
  const negative = $("negative").value.trim();
  if (negative && !$("negative-field").hidden) metadata.negativePrompt = negative;
  const body = { model: $("model").value, prompt: $("prompt").value };
  if (mode === "image" || mode === "interpolation") {
    body.images = state.files.first.map((f) => f.dataUri);
    if (mode === "interpolation") body.images = body.images.concat(state.files.last.map((f) => f.dataUri));
  }
  if (mode === "reference") {
    metadata.referenceImages = state.files.refs.map((f) => ({
      image: { bytesBase64Encoded: f.dataUri },
      referenceType: "asset",
    }));
  }
  body.metadata = { ...metadata, ...chosenOptions(mode) };
  return body;
}

function showFormError(text) {
  const box = $("form-error");
  box.textContent = text || "";
  box.hidden = !text;
}

// After a refusal for missing images, the message follows the images and the mode: it goes once
// they are given.
function recheckRefusal() {
  if (!state.refused) return;
  const missing = missingImages(currentMode(), state.files);
  showFormError(missing);
  state.refused = Boolean(missing);
}

async function submit(event, onCreated) {
  event.preventDefault();
  const missing = missingImages(currentMode(), state.files);
  showFormError(missing);
  state.refused = Boolean(missing);
  if (missing) return; // nothing is sent
  const button = $("submit");
  button.disabled = true;
  button.textContent = "Sending…";
  try {
    const body = buildBody();
    const response = await api("/v1/videos", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    // The spec's reply has no prompt and no mode: the page passes on what it sent.
    onCreated(await response.json(), { prompt: body.prompt, mode: currentMode() });
  } catch (error) {
    showFormError(describeError(error));
  } finally {
    button.disabled = state.models.length === 0;
    button.textContent = "Generate";
  }
}

// Wires the form's controls; `onCreated(video, note)` gets each video the form creates.
export function wireForm(onCreated) {
  $("model").addEventListener("change", modelChanged);
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", refreshChoices);
  }
  for (const id of ["aspect", "duration", "resolution"]) {
    $(id).addEventListener("change", refreshChoices);
  }
  for (const drop of document.querySelectorAll(".drop")) wireDrop(drop);
  $("create-form").addEventListener("submit", (event) => submit(event, onCreated));
}
