// The result view: a page's image with every block's box on top (coloured by type, text on hover/focus), the page's
// Markdown beside it (scrolled to the selected block), page switching and downloads.

import { marked } from "./vendor/marked.esm.js";
import DOMPurify from "./vendor/purify.es.mjs";
import { request } from "./api.js";

// Left out of the Markdown by the service (see FURNITURE in app/pipeline/result.py): boxes only.
const FURNITURE = new Set(["header", "footer", "page_number"]);
const TYPES = ["title", "text", "list", "table", "figure", "caption", "header", "footer", "page_number", "formula",
  "reference", "chart"];

const $ = (id) => document.getElementById(id);

// A crop the result links as `images/<name>` (the names app/api/routes/images.py serves, nothing else): served
// behind the API key at /jobs/{id}/images/{name}, so the page fetches it with the key and shows it as a blob URL
// (an <img src> cannot send the key, and the key never goes into a URL).
const FIGURE_LINK = /^images\/(p\d{1,6}-(?:fig|chart|table|formula)\d{1,4}\.(?:png|jpg))$/;

// Letters and digits only: Markdown syntax, table pipes and whitespace differ between a block's text and its
// rendered element; the words do not.
const normalize = (text) => (text || "").toLowerCase().replace(/[^\p{L}\p{N}]+/gu, "");

function baseName(filename, jobId) {
  const name = (filename || jobId).replace(/\.pdf$/i, "");
  return name.replace(/[\\/:*?"<>|]+/g, "_") || jobId;
}

export class ResultViewer {
  constructor(onError) {
    this.onError = onError;
    this.result = null;
    this.jobId = null;
    this.pageIndex = 0;
    this.imageUrl = null;
    this.downloadUrls = [];
    this.figures = new Map(); // crop name -> Promise of its blob URL, for the job shown
    this.blockElements = new Map();
    this.selected = null;
    this.token = 0; // bumps on every page switch: late image responses for an old page are dropped
    $("prev-page").addEventListener("click", () => this.showPage(this.pageIndex - 1));
    $("next-page").addEventListener("click", () => this.showPage(this.pageIndex + 1));
    $("page-select").addEventListener("change", (e) => this.showPage(Number(e.target.value)));
    this.renderLegend();
  }

  renderLegend() {
    const legend = $("legend");
    legend.replaceChildren(...TYPES.map((type) => {
      const item = document.createElement("li");
      item.dataset.type = type;
      item.textContent = type.replace("_", " ");
      return item;
    }));
  }

  clear() {
    this.result = null;
    this.jobId = null;
    $("result").hidden = true;
    for (const url of this.downloadUrls) URL.revokeObjectURL(url);
    this.downloadUrls = [];
    for (const pending of this.figures.values()) pending.then((url) => URL.revokeObjectURL(url), () => {});
    this.figures = new Map();
  }

  // The blob URL of one of the job's crops, fetched once per job (page switches reuse it).
  figureUrl(name) {
    const figures = this.figures;
    if (!figures.has(name)) {
      const pending = request(`/jobs/${this.jobId}/images/${encodeURIComponent(name)}`)
        .then((response) => response.blob())
        .then((blob) => URL.createObjectURL(blob));
      pending.catch(() => figures.delete(name)); // a failed fetch is tried again on the next showing
      figures.set(name, pending);
    }
    return this.figures.get(name);
  }

  // Points the rendered Markdown's crop links at the fetched crops. Called before the elements are in the
  // document, so the browser never requests the relative link (/ui/images/..., which does not exist).
  showFigures(root) {
    const token = this.token;
    for (const img of root.querySelectorAll("img")) {
      const match = FIGURE_LINK.exec(img.getAttribute("src") || "");
      if (!match) continue;
      img.removeAttribute("src");
      img.dataset.figure = match[1];
      img.dataset.loaded = "false";
      this.figureUrl(match[1]).then((url) => {
        if (token !== this.token) return; // another page (or job) is shown by now
        img.onload = () => { img.dataset.loaded = "true"; };
        img.src = url;
      }, (err) => {
        if (token === this.token) this.onError(err);
      });
    }
  }

  // Loads a succeeded job's result (JSON and Markdown, which are also what the download links hand out).
  async load(job) {
    this.clear();
    const [jsonBlob, mdBlob] = await Promise.all([
      request(`/jobs/${job.job_id}/result?format=json`).then((r) => r.blob()),
      request(`/jobs/${job.job_id}/result?format=markdown`).then((r) => r.blob()),
    ]);
    this.result = JSON.parse(await jsonBlob.text());
    this.jobId = job.job_id;
    const name = baseName(job.filename, job.job_id);
    this.setDownload($("download-json"), jsonBlob, `${name}.json`);
    this.setDownload($("download-md"), mdBlob, `${name}.md`);
    this.setZip(job, name);

    const select = $("page-select");
    select.replaceChildren(...this.result.pages.map((page, i) => {
      const option = document.createElement("option");
      option.value = String(i);
      option.textContent = `Page ${page.page} (${i + 1} of ${this.result.pages.length})`;
      return option;
    }));
    $("result-title").textContent = `Result: ${job.filename || job.job_id}`;
    $("result").hidden = false;
    await this.showPage(0);
  }

  setDownload(anchor, blob, filename) {
    const url = URL.createObjectURL(blob);
    this.downloadUrls.push(url);
    anchor.href = url;
    anchor.download = filename;
    anchor.setAttribute("aria-disabled", "false");
  }

  // The zip bundle (result.md, result.json, images/) of a succeeded job: fetched on first click (it can be large).
  setZip(job, name) {
    const anchor = $("download-zip");
    const url = job.status === "succeeded" && job.result_url ? `${job.result_url}?format=zip` : null;
    anchor.hidden = !url;
    anchor.removeAttribute("href");
    anchor.setAttribute("aria-disabled", url ? "false" : "true");
    if (!url) return;
    anchor.href = "#";
    anchor.onclick = async (event) => {
      if (anchor.download) return; // already fetched: the browser downloads the blob
      event.preventDefault();
      try {
        const blob = await (await request(url)).blob();
        this.setDownload(anchor, blob, `${name}.zip`);
        anchor.click();
      } catch (err) {
        this.onError(err);
      }
    };
  }

  async showPage(index) {
    if (!this.result || index < 0 || index >= this.result.pages.length) return;
    this.pageIndex = index;
    const token = ++this.token;
    const page = this.result.pages[index];
    $("page-select").value = String(index);
    $("prev-page").disabled = index === 0;
    $("next-page").disabled = index === this.result.pages.length - 1;
    this.hideTooltip();
    this.renderMarkdown(page);
    this.renderBoxes(page);

    const image = $("page-image");
    image.alt = `Page ${page.page} of the document`;
    image.dataset.page = String(page.page);
    image.removeAttribute("src");
    image.dataset.loaded = "false";
    try {
      const blob = await (await request(`/jobs/${this.jobId}/pages/${page.page}.png`)).blob();
      if (token !== this.token) return;
      if (this.imageUrl) URL.revokeObjectURL(this.imageUrl);
      this.imageUrl = URL.createObjectURL(blob);
      await new Promise((resolve, reject) => {
        image.onload = resolve;
        image.onerror = () => reject(new Error(`page ${page.page}: the image could not be shown`));
        image.src = this.imageUrl;
      });
      image.dataset.loaded = "true";
    } catch (err) {
      if (token === this.token) this.onError(err);
    }
  }

  renderBoxes(page) {
    const layer = $("boxes");
    const blocks = [...page.blocks].sort((a, b) => a.order - b.order);
    layer.replaceChildren(...blocks.map((block) => {
      const [x0, y0, x1, y1] = block.bbox;
      const box = document.createElement("button");
      box.type = "button";
      box.className = "box";
      box.dataset.testid = "block-box";
      box.dataset.type = block.type;
      box.dataset.order = String(block.order);
      box.style.left = `${(100 * x0) / page.width}%`;
      box.style.top = `${(100 * y0) / page.height}%`;
      box.style.width = `${(100 * (x1 - x0)) / page.width}%`;
      box.style.height = `${(100 * (y1 - y0)) / page.height}%`;
      box.setAttribute("aria-label", `${block.type}: ${block.text.slice(0, 120)}`);
      box.addEventListener("mouseenter", () => this.showTooltip(block, box));
      box.addEventListener("mouseleave", () => this.hideTooltip());
      box.addEventListener("focus", () => { this.showTooltip(block, box); this.select(block, box); });
      box.addEventListener("blur", () => this.hideTooltip());
      box.addEventListener("click", () => this.select(block, box));
      return box;
    }));
  }

  // The page's Markdown, rendered and sanitised; each body block is tied to the first element (from where the
  // previous block was found) whose words start with the block's words, so selecting a box can scroll to it.
  renderMarkdown(page) {
    const view = $("markdown-view");
    const rendered = DOMPurify.sanitize(marked.parse(page.markdown || ""), { RETURN_DOM_FRAGMENT: true });
    this.showFigures(rendered);
    view.replaceChildren(rendered);
    if (!page.markdown) view.textContent = "(no text on this page)";
    this.blockElements = new Map();
    this.selected = null;
    const elements = [...view.children];
    const texts = elements.map((el) => normalize(el.textContent));
    let cursor = 0;
    for (const block of [...page.blocks].sort((a, b) => a.order - b.order)) {
      if (FURNITURE.has(block.type)) continue;
      const key = normalize(block.text).slice(0, 32);
      if (!key) continue;
      const found = texts.findIndex((text, i) => i >= cursor && text.includes(key));
      if (found < 0) continue;
      cursor = found;
      elements[found].dataset.type ||= block.type;
      this.blockElements.set(block.order, elements[found]);
    }
  }

  select(block, box) {
    for (const el of document.querySelectorAll(".selected")) el.classList.remove("selected");
    box.classList.add("selected");
    this.selected = block;
    const target = this.blockElements.get(block.order);
    if (target) {
      target.classList.add("selected");
      const view = $("markdown-view");
      view.scrollTop = target.offsetTop - view.clientHeight / 3; // .markdown is positioned: offsets are inside it
    }
  }

  showTooltip(block, box) {
    const tooltip = $("tooltip");
    const label = document.createElement("b");
    label.textContent = block.type.replace("_", " ");
    tooltip.replaceChildren(label, document.createTextNode(`\n${block.text || "(no text)"}`));
    tooltip.dataset.order = String(block.order);
    tooltip.hidden = false;
    const frame = $("page-frame");
    tooltip.style.left = `${Math.max(0, box.offsetLeft)}px`;
    const below = box.offsetTop + box.offsetHeight + 6;
    tooltip.style.top = `${below + tooltip.offsetHeight > frame.offsetHeight ? Math.max(0, box.offsetTop - tooltip.offsetHeight - 6) : below}px`;
  }

  hideTooltip() {
    $("tooltip").hidden = true;
  }
}
