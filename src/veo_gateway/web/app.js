// veo-gateway playground: plain JavaScript, no build step, no dependencies.
// The key lives in sessionStorage and only ever travels in the Authorization header.
"use strict";

const KEY_STORE = "veo-gateway.key";
const TASKS_STORE = "veo-gateway.tasks";
const POLL_MS = 1000;
const MODE_NAMES = {
  text: "text to video",
  image: "image to video",
  interpolation: "first and last frame",
  reference: "reference images",
};

const state = {
  models: [],
  files: { first: [], last: [], refs: [] }, // each: {name, type, dataUri}
  blobs: new Map(), // task id -> {url, type, size}
  polling: new Set(),
};

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

// ---- API --------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const error = body && body.error;
    super(error && error.message ? error.message : `HTTP ${status}`);
    this.httpStatus = status;
    this.detail = error || null;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${apiKey()}` }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers, cache: "no-store" }));
  if (!response.ok) {
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    throw new ApiError(response.status, body);
  }
  return response;
}

// The API's own words, with its status and the field it names.
function describeError(error) {
  if (error instanceof ApiError && error.detail) {
    const d = error.detail;
    const where = d.param ? ` (${d.param})` : "";
    return `${d.message}${where} — ${d.status || d.type || "error"} ${d.code || error.httpStatus}`;
  }
  return error && error.message ? error.message : String(error);
}

// ---- key --------------------------------------------------------------------------------------

function setKeyStatus(text, isError = false) {
  const status = $("key-status");
  status.textContent = text;
  status.classList.toggle("error-text", isError);
}

async function useKey(key) {
  if (key) sessionStorage.setItem(KEY_STORE, key);
  $("api-key").value = "";
  $("api-key").placeholder = key ? "key set (hidden)" : "paste your API key";
  await loadModels();
  renderTasks();
}

function forgetKey() {
  sessionStorage.removeItem(KEY_STORE);
  state.models = [];
  $("api-key").placeholder = "paste your API key";
  const select = $("model");
  select.replaceChildren(el("option", { value: "", text: "enter a key to load models" }));
  select.disabled = true;
  $("submit").disabled = true;
  setKeyStatus("Key forgotten.");
}

// ---- models and options -----------------------------------------------------------------------

async function loadModels() {
  if (!apiKey()) return;
  try {
    const body = await (await api("/v1/models")).json();
    state.models = body.data || [];
  } catch (error) {
    state.models = [];
    // A refused key is not kept for the next load; other errors (a restart, say) keep it.
    if (error instanceof ApiError && error.httpStatus === 401) sessionStorage.removeItem(KEY_STORE);
    setKeyStatus(`Could not load models: ${describeError(error)}`, true);
    $("model").disabled = true;
    $("submit").disabled = true;
    return;
  }
  const select = $("model");
  const previous = select.value;
  select.replaceChildren(...state.models.map((m) => el("option", { value: m.id, text: m.id })));
  if (state.models.some((m) => m.id === previous)) select.value = previous;
  select.disabled = state.models.length === 0;
  $("submit").disabled = state.models.length === 0;
  setKeyStatus(`Key accepted: ${state.models.length} models.`);
  modelChanged();
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
  refreshChoices();
}

// Why a value cannot be picked with the other current choices, or null when it can.
function reasons(caps, mode, choice) {
  const long = caps.long_duration;
  const out = { aspect: {}, duration: {}, resolution: {} };
  const needsLong = mode === "interpolation" || mode === "reference";
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
  const model = currentModel();
  const mode = currentMode();
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

function buildBody() {
  const mode = currentMode();
  const metadata = {
    aspectRatio: $("aspect").value,
    durationSeconds: Number($("duration").value),
    resolution: $("resolution").value,
  };
  const negative = $("negative").value.trim();
  if (negative) metadata.negativePrompt = negative;
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
  body.metadata = metadata;
  return body;
}

function showFormError(text) {
  const box = $("form-error");
  box.textContent = text || "";
  box.hidden = !text;
}

async function submit(event) {
  event.preventDefault();
  showFormError("");
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
    const video = await response.json();
    const tasks = loadTasks();
    tasks.unshift({
      id: video.id,
      model: body.model,
      mode: currentMode(),
      prompt: body.prompt,
      created: Date.now(),
      status: video.status,
      progress: video.progress || 0,
    });
    saveTasks(tasks);
    renderTasks();
    poll(video.id);
  } catch (error) {
    showFormError(describeError(error));
  } finally {
    button.disabled = state.models.length === 0;
    button.textContent = "Generate";
  }
}

// ---- tasks ------------------------------------------------------------------------------------

function loadTasks() {
  try {
    return JSON.parse(sessionStorage.getItem(TASKS_STORE) || "[]");
  } catch (_) {
    return [];
  }
}

function saveTasks(tasks) {
  sessionStorage.setItem(TASKS_STORE, JSON.stringify(tasks));
}

function updateTask(id, changes) {
  const tasks = loadTasks();
  const task = tasks.find((t) => t.id === id);
  if (!task) return null;
  Object.assign(task, changes);
  saveTasks(tasks);
  return task;
}

function statusLabel(task) {
  if (task.error) return "error";
  if (task.status === "completed") return "completed";
  if (task.status === "failure") return "failed";
  if (task.status === "in_progress") return `in progress, ${task.progress || 0}%`;
  return "queued";
}

function taskCard(task) {
  const card = el("li", { class: "task", id: `task-${task.id}`, "data-status": task.status || "queued" });
  card.append(
    el("div", { class: "task-head" }, [
      el("strong", { class: "task-status", text: statusLabel(task) }),
      el("span", { class: "muted small", text: `${task.model} · ${MODE_NAMES[task.mode] || task.mode}` }),
    ]),
    el("p", { class: "task-prompt", text: task.prompt || "(no prompt)" }),
    el("code", { class: "small muted", text: task.id })
  );
  if (task.status !== "completed" && task.status !== "failure" && !task.error) {
    card.append(el("progress", { max: 100, value: task.progress || 0 }));
  }
  if (task.status === "failure") {
    card.append(el("p", { class: "error task-error", text: task.fail_reason || "the task failed" }));
  }
  if (task.error) card.append(el("p", { class: "error task-error", text: task.error }));
  if (task.status === "completed") {
    const blob = state.blobs.get(task.id);
    if (blob) {
      const video = el("video", {
        controls: true,
        playsInline: true,
        preload: "metadata",
        src: blob.url,
        "data-blob-type": blob.type,
        "data-blob-size": String(blob.size),
      });
      card.append(
        video,
        el("a", { class: "download", href: blob.url, download: `${task.id}.mp4`, text: "Download MP4" })
      );
    } else if (apiKey()) {
      card.append(el("p", { class: "muted small", text: "Fetching the video…" }));
      fetchVideo(task.id);
    } else {
      card.append(el("p", { class: "muted small", text: "Enter your key to fetch the video." }));
    }
  }
  return card;
}

function renderTasks() {
  const tasks = loadTasks();
  $("no-tasks").hidden = tasks.length > 0;
  $("tasks").replaceChildren(...tasks.map(taskCard));
}

function renderTask(id) {
  const task = loadTasks().find((t) => t.id === id);
  const old = $(`task-${id}`);
  if (task && old) old.replaceWith(taskCard(task));
}

const fetching = new Set();

async function fetchVideo(id) {
  if (fetching.has(id)) return;
  fetching.add(id);
  try {
    // Fetched with the key in a header, then played from a blob URL: the key is never in a URL.
    const blob = await (await api(`/v1/videos/${encodeURIComponent(id)}/content`)).blob();
    state.blobs.set(id, { url: URL.createObjectURL(blob), type: blob.type, size: blob.size });
    updateTask(id, { error: null });
  } catch (error) {
    updateTask(id, { error: `Could not fetch the video: ${describeError(error)}` });
  } finally {
    fetching.delete(id);
    renderTask(id);
  }
}

async function poll(id) {
  if (state.polling.has(id)) return;
  state.polling.add(id);
  try {
    for (;;) {
      let video;
      try {
        video = await (await api(`/v1/videos/${encodeURIComponent(id)}`)).json();
      } catch (error) {
        updateTask(id, { error: describeError(error) });
        renderTask(id);
        return;
      }
      const task = updateTask(id, {
        status: video.status,
        progress: video.progress,
        fail_reason: video.fail_reason || null,
        error: null,
      });
      if (!task) return; // the list was cleared
      renderTask(id);
      if (video.status === "completed" || video.status === "failure") return;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } finally {
    state.polling.delete(id);
  }
}

function clearTasks() {
  for (const blob of state.blobs.values()) URL.revokeObjectURL(blob.url);
  state.blobs.clear();
  saveTasks([]);
  renderTasks();
}

// ---- start ------------------------------------------------------------------------------------

function start() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (key) useKey(key);
  });
  $("key-forget").addEventListener("click", forgetKey);
  $("model").addEventListener("change", modelChanged);
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", refreshChoices);
  }
  for (const id of ["aspect", "duration", "resolution"]) {
    $(id).addEventListener("change", refreshChoices);
  }
  for (const drop of document.querySelectorAll(".drop")) wireDrop(drop);
  $("create-form").addEventListener("submit", submit);
  $("clear-tasks").addEventListener("click", clearTasks);
  renderTasks();
  if (apiKey()) {
    $("api-key").placeholder = "key set (hidden)";
    loadModels().then(() => {
      for (const task of loadTasks()) {
        if (task.status !== "completed" && task.status !== "failure") poll(task.id);
      }
    });
  }
}

document.addEventListener("DOMContentLoaded", start);
