// veo-gateway playground: plain JavaScript modules, no build step, no dependencies.
// The key lives in sessionStorage and only ever travels in the Authorization header.
import { $ } from "./dom.js";
import { apiKey, KEY_STORE } from "./api.js";
import { clearModels, loadModels, setKeyStatus, wireForm } from "./form.js";
import { addCreated, clearTasks, loadTasks, wireTasks } from "./tasks.js";

// A key (typed in, or kept from earlier in the tab) loads its models and its videos.
async function useKey(key) {
  if (key) sessionStorage.setItem(KEY_STORE, key);
  $("api-key").value = "";
  clearTasks();
  const usable = await loadModels(); // a refused key is dropped there
  $("api-key").placeholder = apiKey() ? "key set (hidden)" : "paste your API key";
  if (usable) await loadTasks();
  else clearTasks();
}

function forgetKey() {
  sessionStorage.removeItem(KEY_STORE);
  $("api-key").placeholder = "paste your API key";
  clearModels();
  clearTasks();
  setKeyStatus("Key forgotten.");
}

function start() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (key) useKey(key);
  });
  $("key-forget").addEventListener("click", forgetKey);
  wireForm(addCreated);
  wireTasks();
  if (apiKey()) useKey(null);
}

start();
