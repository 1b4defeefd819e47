// "Your videos": the key's videos as the gateway lists them (`GET /v1/videos`), newest first, a
// page at a time, whichever client made them. Unfinished ones are polled; finished ones are
// fetched with the key in a header and played from a blob URL.
import { $, el } from "./dom.js";
import { api, apiKey, ApiError, describeError } from "./api.js";
import { MODE_NAMES, modelExtends } from "./form.js";

const POLL_MS = 1000;
const PAGE_SIZE = 20;
// What the page sent for the videos it made (prompt, mode): the spec's reply carries neither.
const NOTES_STORE = "veo-gateway.notes";
const MAX_NOTES = 200;

// Both dialects' words in one set: the spec says ""/in_progress/completed/failure, OpenAI's
// Video queued/in_progress/completed/failed.
const STATUS_WORDS = {
  "": "queued",
  queued: "queued",
  in_progress: "in_progress",
  completed: "completed",
  failure: "failed",
  failed: "failed",
};

const list = {
  // newest first: {id, model, prompt, mode, status, progress, failReason, samples, error, gone}
  tasks: [],
  hasMore: false,
  loading: false,
  // Bumped when the key changes or the list reloads: polls and pages of an older list stop.
  generation: 0,
  blobs: new Map(), // task id -> [{url, type, size}], one per sample
  polling: new Set(),
  fetching: new Set(),
  observer: null,
};

// `?page_size=N` in the page's address sets how many videos a page loads (1 to 100).
function pageSize() {
  const asked = Number(new URLSearchParams(window.location.search).get("page_size"));
  return Number.isInteger(asked) && asked >= 1 && asked <= 100 ? asked : PAGE_SIZE;
}

function notes() {
  try {
    return JSON.parse(sessionStorage.getItem(NOTES_STORE) || "{}");
  } catch (_) {
    return {};
  }
}

function saveNote(id, note) {
  const all = notes();
  all[id] = note;
  const ids = Object.keys(all);
  for (const old of ids.slice(0, Math.max(0, ids.length - MAX_NOTES))) delete all[old];
  sessionStorage.setItem(NOTES_STORE, JSON.stringify(all));
}

function forgetNote(id) {
  const all = notes();
  delete all[id];
  sessionStorage.setItem(NOTES_STORE, JSON.stringify(all));
}

// A video object of either dialect as the list keeps it.
function fromServer(video) {
  const note = notes()[video.id] || {};
  return {
    id: video.id,
    model: video.model,
    prompt: typeof video.prompt === "string" ? video.prompt : note.prompt ?? null,
    mode: note.mode || null,
    status: STATUS_WORDS[video.status] ?? String(video.status),
    progress: video.progress || 0,
    failReason: video.fail_reason || (video.error && video.error.message) || null,
    // The videos it makes (`metadata.sampleCount`); when done, those the filters let through.
    samples: Number.isInteger(video.sample_count) && video.sample_count > 0 ? video.sample_count : 1,
    error: null,
    gone: null,
  };
}

const isFinished = (task) => task.status === "completed" || task.status === "failed";

function find(id) {
  return list.tasks.find((t) => t.id === id) || null;
}

function update(id, changes) {
  const task = find(id);
  if (task) Object.assign(task, changes);
  return task;
}

function statusLabel(task) {
  if (task.error) return "error";
  if (task.status === "completed") return "completed";
  if (task.status === "failed") return "failed";
  if (task.status === "in_progress") return `in progress, ${task.progress}%`;
  if (task.status === "queued") return "queued";
  return task.status;
}

// ---- rendering --------------------------------------------------------------------------------

// Completed videos are fetched when their card comes near the screen, not all at once.
function observer() {
  if (!list.observer) {
    list.observer = new IntersectionObserver(
      (entries) => {
        for (const entry of entries) {
          if (!entry.isIntersecting) continue;
          list.observer.unobserve(entry.target);
          fetchVideo(entry.target.dataset.id);
        }
      },
      { rootMargin: "200px" }
    );
  }
  return list.observer;
}

function player(task) {
  const blobs = list.blobs.get(task.id);
  if (blobs) {
    const several = blobs.length > 1;
    return blobs.flatMap((blob, index) => [
      el("video", {
        controls: true,
        playsInline: true,
        preload: "metadata",
        src: blob.url,
        "data-blob-type": blob.type,
        "data-blob-size": String(blob.size),
        "data-sample": String(index),
      }),
      el("a", {
        class: "download",
        href: blob.url,
        download: several ? `${task.id}-${index}.mp4` : `${task.id}.mp4`,
        text: several ? `Download MP4 (video ${index + 1} of ${blobs.length})` : "Download MP4",
      }),
    ]);
  }
  // The retention deleted the video: the gateway's own words instead of a player.
  if (task.gone) return [el("p", { class: "muted task-gone", text: task.gone })];
  if (task.error) return [];
  return [el("p", { class: "muted small", text: "Fetching the video…" })];
}

function taskCard(task) {
  const card = el("li", {
    class: "task",
    id: `task-${task.id}`,
    "data-id": task.id,
    "data-status": task.status,
  });
  const remove = el("button", {
    type: "button",
    class: "secondary small task-delete",
    text: "Delete",
  });
  remove.addEventListener("click", () => deleteTask(task.id));
  const about = [task.model, MODE_NAMES[task.mode]].filter(Boolean).join(" · ");
  card.append(
    el("div", { class: "task-head" }, [
      el("strong", { class: "task-status", text: statusLabel(task) }),
      el("span", { class: "muted small task-about", text: about }),
      remove,
    ])
  );
  // A spec-created video made elsewhere has no prompt in its object: nothing to show.
  if (task.prompt !== null) {
    card.append(el("p", { class: "task-prompt", text: task.prompt || "(no prompt)" }));
  }
  card.append(el("code", { class: "small muted task-id", text: task.id }));
  if (!isFinished(task) && !task.error) {
    card.append(el("progress", { max: 100, value: task.progress }));
  }
  if (task.status === "failed") {
    card.append(el("p", { class: "error task-error", text: task.failReason || "the task failed" }));
  }
  if (task.error) card.append(el("p", { class: "error task-problem", text: task.error }));
  if (task.status === "completed") {
    card.append(...player(task));
    if (list.blobs.has(task.id) && modelExtends(task.model)) card.append(extendForm(task));
    if (!list.blobs.has(task.id) && !task.gone && !task.error) observer().observe(card);
  }
  return card;
}

function renderTasks() {
  const keyed = Boolean(apiKey());
  $("no-tasks").hidden = list.tasks.length > 0 || list.loading;
  $("no-tasks").textContent = keyed
    ? "No videos yet: the ones this key makes, here or elsewhere, appear here."
    : "Enter your key to see its videos.";
  $("tasks").replaceChildren(...list.tasks.map(taskCard));
  $("load-more").hidden = !list.hasMore;
  $("load-more").disabled = list.loading;
  $("refresh-tasks").disabled = !keyed || list.loading;
}

function renderTask(id) {
  const task = find(id);
  const old = $(`task-${id}`);
  if (task && old) {
    if (list.observer) list.observer.unobserve(old);
    old.replaceWith(taskCard(task));
  }
}

function showListError(text) {
  const box = $("tasks-error");
  box.textContent = text || "";
  box.hidden = !text;
}

// ---- server -----------------------------------------------------------------------------------

async function loadPage() {
  const generation = list.generation;
  const query = new URLSearchParams({ limit: String(pageSize()), order: "desc" });
  // The oldest video shown is the cursor (the last page's last_id, unless it was deleted since:
  // the gateway refuses a deleted one).
  const oldest = list.tasks[list.tasks.length - 1];
  if (oldest) query.set("after", oldest.id);
  list.loading = true;
  renderTasks();
  try {
    const page = await (await api(`/v1/videos?${query}`)).json();
    if (generation !== list.generation) return;
    const known = new Set(list.tasks.map((t) => t.id));
    for (const video of page.data) if (!known.has(video.id)) list.tasks.push(fromServer(video));
    list.hasMore = Boolean(page.has_more);
    showListError("");
  } catch (error) {
    if (generation !== list.generation) return;
    showListError(`Could not list your videos: ${describeError(error)}`);
  } finally {
    if (generation === list.generation) {
      list.loading = false;
      renderTasks();
    }
  }
  for (const task of list.tasks) if (!isFinished(task)) poll(task.id);
}

// Empties the list (a key was forgotten or changed); videos fetched so far are let go.
export function clearTasks() {
  list.generation += 1;
  list.tasks = [];
  list.hasMore = false;
  list.loading = false;
  for (const blobs of list.blobs.values()) forgetBlobs(blobs);
  list.blobs.clear();
  showListError("");
  renderTasks();
}

// The newest page of the key's videos, in place of whatever was shown.
export async function loadTasks() {
  clearTasks();
  if (apiKey()) await loadPage();
}

// A video the form just created goes on top at once.
export function addCreated(video, note) {
  saveNote(video.id, note);
  if (!find(video.id)) list.tasks.unshift(fromServer(video));
  renderTasks();
  poll(video.id);
}

function forgetBlobs(blobs) {
  for (const blob of blobs) URL.revokeObjectURL(blob.url);
}

// Every sample of a finished video, in order (`/content?index=N`).
async function fetchVideo(id) {
  if (list.fetching.has(id)) return;
  list.fetching.add(id);
  const generation = list.generation;
  try {
    const count = (find(id) || { samples: 1 }).samples;
    const path = `/v1/videos/${encodeURIComponent(id)}/content`;
    const fetched = await Promise.all(
      Array.from({ length: count }, (_, index) =>
        api(index === 0 ? path : `${path}?index=${index}`).then((response) => response.blob())
      )
    );
    const blobs = fetched.map((blob) => ({
      url: URL.createObjectURL(blob),
      type: blob.type,
      size: blob.size,
    }));
    if (generation !== list.generation) {
      forgetBlobs(blobs);
      return;
    }
    list.blobs.set(id, blobs);
    update(id, { error: null, gone: null });
  } catch (error) {
    if (error instanceof ApiError && error.httpStatus === 410) {
      update(id, { gone: error.message });
    } else {
      update(id, { error: `Could not fetch the video: ${describeError(error)}` });
    }
  } finally {
    list.fetching.delete(id);
    renderTask(id);
  }
}

async function poll(id) {
  if (list.polling.has(id)) return;
  list.polling.add(id);
  const generation = list.generation;
  try {
    for (;;) {
      let video;
      try {
        video = await (await api(`/v1/videos/${encodeURIComponent(id)}`)).json();
      } catch (error) {
        if (generation === list.generation && update(id, { error: describeError(error) })) {
          renderTask(id);
        }
        return;
      }
      // Stopped when the list was reloaded or the video deleted.
      if (generation !== list.generation || !find(id)) return;
      const fresh = fromServer(video);
      const { status, progress, failReason, samples } = fresh;
      update(id, { status, progress, failReason, samples, error: null });
      renderTask(id);
      if (isFinished(fresh)) return;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } finally {
    list.polling.delete(id);
  }
}

// "Extend": a new task that continues this one's video with the prompt given (the spec's
// `video` field); Google's rules are the gateway's to check, and its refusal is shown here.
function extendForm(task) {
  const input = el("input", {
    type: "text",
    class: "extend-prompt",
    placeholder: "what happens next",
    ariaLabel: `Prompt to extend video ${task.id}`,
  });
  const button = el("button", { type: "submit", class: "secondary small", text: "Extend +7 s" });
  const form = el("form", { class: "extend" }, [input, button]);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const prompt = input.value.trim();
    if (!prompt) {
      input.focus();
      return;
    }
    button.disabled = true;
    try {
      const response = await api("/v1/videos", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ model: task.model, prompt, video: task.id }),
      });
      addCreated(await response.json(), { prompt, mode: "extension" });
    } catch (error) {
      update(task.id, { error: `Could not extend the video: ${describeError(error)}` });
      renderTask(task.id);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

async function deleteTask(id) {
  if (!window.confirm(`Delete video ${id} from the gateway? This cannot be undone.`)) return;
  try {
    await api(`/v1/videos/${encodeURIComponent(id)}`, { method: "DELETE" });
  } catch (error) {
    update(id, { error: `Could not delete the video: ${describeError(error)}` });
    renderTask(id);
    return;
  }
  const blobs = list.blobs.get(id);
  if (blobs) forgetBlobs(blobs);
  list.blobs.delete(id);
  list.tasks = list.tasks.filter((t) => t.id !== id);
  forgetNote(id);
  renderTasks();
}

export function wireTasks() {
  $("load-more").addEventListener("click", loadPage);
  $("refresh-tasks").addEventListener("click", loadTasks);
  renderTasks();
}
