// The page's wiring: API key dialog, file drop and submit, a job's live progress from its event stream, recent
// jobs, and the result viewer (viewer.js). Everything goes through the public API (api.js).

import { ApiError, apiKey, getJson, readEvents, request } from "./api.js";
import { ResultViewer } from "./viewer.js";

const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const $ = (id) => document.getElementById(id);

const viewer = new ResultViewer(showError);
let current = null; // {jobId, abort: AbortController} of the job shown in the progress panel

// --- errors and the API key -----------------------------------------------------------------------------------
function showError(err) {
  const box = $("error");
  if (err instanceof ApiError && err.status === 401) {
    askForKey(apiKey.get() ? "The service refused this key." : "");
  }
  if (err && err.name === "AbortError") return;
  const message = err instanceof ApiError ? err.message : `Unexpected problem: ${err && err.message}`;
  box.textContent = message;
  box.dataset.type = err instanceof ApiError ? err.type : "client_error";
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function askForKey(message) {
  $("key-message").textContent = message;
  $("key-button").hidden = false;
  const dialog = $("key-dialog");
  if (!dialog.open) dialog.showModal();
  $("key-input").focus();
}

$("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  apiKey.set($("key-input").value.trim());
  try {
    await refreshRecent({ quiet: false });
    $("key-dialog").close();
    $("key-input").value = "";
    clearError();
  } catch (err) {
    $("key-message").textContent = err.message;
  }
});
$("key-forget").addEventListener("click", () => {
  apiKey.clear();
  $("key-input").value = "";
  $("key-message").textContent = "Key forgotten.";
});
$("key-button").addEventListener("click", () => askForKey(""));

// --- choosing a file ------------------------------------------------------------------------------------------
const drop = $("drop-zone");
const fileInput = $("file-input");
function showChosen() {
  const file = fileInput.files[0];
  $("drop-text").textContent = file ? `${file.name} (${(file.size / 1048576).toFixed(2)} MB)` : "Drop a PDF here or choose one";
}
fileInput.addEventListener("change", showChosen);
for (const kind of ["dragenter", "dragover"]) {
  drop.addEventListener(kind, (event) => { event.preventDefault(); drop.classList.add("over"); });
}
for (const kind of ["dragleave", "drop"]) {
  drop.addEventListener(kind, () => drop.classList.remove("over"));
}
// A file dropped beside the drop zone must not make the browser leave the page to show it.
for (const kind of ["dragover", "drop"]) window.addEventListener(kind, (event) => event.preventDefault());
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  if (event.dataTransfer.files.length) {
    fileInput.files = event.dataTransfer.files;
    showChosen();
  }
});

// --- submitting -----------------------------------------------------------------------------------------------
$("submit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearError();
  const file = fileInput.files[0];
  if (!file) {
    showError(new ApiError(0, "no_file", "Choose a PDF first."));
    fileInput.focus();
    return;
  }
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("mode", $("mode").value);
  if ($("pages").value.trim()) form.append("pages", $("pages").value.trim());
  if ($("dpi").value.trim()) form.append("dpi", $("dpi").value.trim());
  if ($("lang").value.trim()) form.append("lang", $("lang").value.trim());
  const button = $("submit");
  button.disabled = true;
  try {
    const accepted = await getJson("/jobs", { method: "POST", body: form });
    viewer.clear();
    location.hash = `job=${accepted.job_id}`;
    refreshRecent({ quiet: true });
    openJob(accepted.job_id).catch(showError); // runs until the job ends; the form is free meanwhile
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
});

// --- a job's progress -----------------------------------------------------------------------------------------
function selectedPages(job) {
  // The pages the job converts, from its `pages` option ("1-3,7", "5-"), as the service reads it.
  const spec = job.options && job.options.pages;
  const all = Array.from({ length: job.page_count }, (_, i) => i + 1);
  if (!spec || !spec.trim()) return all;
  const chosen = new Set();
  for (const part of spec.split(",")) {
    const match = part.trim().match(/^(\d+)\s*(?:-\s*(\d*))?$/);
    if (!match) return all;
    const start = Number(match[1]);
    const end = match[2] === undefined ? start : match[2] === "" ? job.page_count : Number(match[2]);
    for (let p = start; p <= end; p++) chosen.add(p);
  }
  return [...chosen].sort((a, b) => a - b);
}

function renderJob(job, donePages = null) {
  $("job-panel").hidden = false;
  $("job-name").textContent = `${job.filename || "document"} · ${job.job_id}`;
  const progress = $("progress");
  progress.setAttribute("aria-valuemax", String(Math.max(1, job.pages_total)));
  progress.setAttribute("aria-valuenow", String(job.pages_done));
  progress.dataset.status = job.status;
  $("progress-fill").style.width = `${(100 * job.pages_done) / Math.max(1, job.pages_total)}%`;
  $("progress-text").textContent = `${job.status}: ${job.pages_done} of ${job.pages_total} pages done`;
  $("cancel").hidden = FINAL.has(job.status);

  const list = $("page-states");
  if (list.dataset.job !== job.job_id) {
    list.dataset.job = job.job_id;
    list.replaceChildren(...selectedPages(job).map((page) => {
      const item = document.createElement("li");
      item.dataset.page = String(page);
      item.dataset.state = "waiting";
      item.textContent = String(page);
      item.title = `page ${page}: waiting`;
      return item;
    }));
  }
  const items = [...list.children];
  if (job.status === "succeeded") donePages = items.map((item) => Number(item.dataset.page));
  for (const page of donePages || []) {
    const item = list.querySelector(`[data-page="${page}"]`);
    if (item) {
      item.dataset.state = "done";
      item.title = `page ${page}: done`;
    }
  }
}

async function openJob(jobId) {
  if (current) current.abort.abort();
  const abort = new AbortController();
  current = { jobId, abort };
  let job = await getJson(`/jobs/${jobId}`, { signal: abort.signal });
  renderJob(job);
  $("cancel").onclick = () => cancelJob(jobId);
  // Follow the event stream to the final status; reconnect if it drops (the server replays the current state).
  while (!FINAL.has(job.status) && !abort.signal.aborted) {
    try {
      await readEvents(`/jobs/${jobId}/events`, (kind, data) => {
        if (kind === "status") job = data;
        if (kind === "page") {
          job = { ...job, pages_done: data.pages_done, pages_total: data.pages_total };
          renderJob(job, [data.page]);
          return;
        }
        renderJob(job);
      }, abort.signal);
    } catch (err) {
      if (err.name === "AbortError") return;
      if (err instanceof ApiError && err.status !== 0 && err.status < 500) throw err;
    }
    if (!FINAL.has(job.status)) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      job = await getJson(`/jobs/${jobId}`, { signal: abort.signal });
      renderJob(job);
    }
  }
  if (abort.signal.aborted) return;
  refreshRecent({ quiet: true });
  if (job.status === "succeeded") {
    await viewer.load(job);
  } else if (job.status === "failed" && job.error) {
    showError(new ApiError(0, job.error.type, job.error.message));
  }
}

async function cancelJob(jobId) {
  try {
    const response = await request(`/jobs/${jobId}`, { method: "DELETE" });
    if (response.status === 200) renderJob(await response.json());
  } catch (err) {
    showError(err);
  }
}

// --- recent jobs ----------------------------------------------------------------------------------------------
async function refreshRecent({ quiet }) {
  let body;
  try {
    body = await getJson("/jobs?limit=20");
  } catch (err) {
    if (!quiet) throw err;
    showError(err);
    return;
  }
  $("recent").replaceChildren(...body.jobs.map((job) => {
    const item = document.createElement("li");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "link";
    open.textContent = job.filename || job.job_id;
    open.title = `open job ${job.job_id}`;
    open.addEventListener("click", () => {
      clearError();
      viewer.clear();
      location.hash = `job=${job.job_id}`;
      openJob(job.job_id).catch(showError);
    });
    const state = document.createElement("span");
    state.className = `status-${job.status}`;
    state.textContent = `${job.status} · ${job.pages_done}/${job.pages_total}`;
    item.append(open, state);
    return item;
  }));
  if (!body.jobs.length) {
    const item = document.createElement("li");
    item.className = "muted";
    item.textContent = "No jobs yet.";
    $("recent").append(item);
  }
}

// --- start ----------------------------------------------------------------------------------------------------
if (apiKey.get()) $("key-button").hidden = false;
refreshRecent({ quiet: true }).then(() => {
  const match = location.hash.match(/job=([A-Za-z0-9_-]+)/);
  if (match) openJob(match[1]).catch(showError);
});
