// FinScribe web page: upload an invoice, POST it to /v1/extract, show each page with its region
// boxes (found by the detector or sent), the fields, line items and the validation result. The
// boxes can be moved, resized, deleted or added (boxes.js) and the file extracted again with them.
// Plain DOM, no framework, nothing loaded from outside.
"use strict";

const form = document.getElementById("upload-form");
const fileInput = document.getElementById("file-input");
const dropZone = document.getElementById("drop-zone");
const button = document.getElementById("extract-button");
const statusLine = document.getElementById("status");
const results = document.getElementById("results");
const template = document.getElementById("page-template");
const againButton = document.getElementById("again-button");
const { createBoxEditor, REGIONS } = window.FinScribeBoxes;
let chosenFile = null;
let pages = []; // the last answer's pages with their (editable) boxes, in page pixels

function setStatus(text, kind) {
  statusLine.textContent = text;
  statusLine.className = kind || "";
}

function chooseFile(file) {
  chosenFile = file || null;
  document.getElementById("file-name").textContent = chosenFile ? chosenFile.name : "";
  button.disabled = !chosenFile;
  pages = []; // a new file: its boxes come from the detector first
  againButton.disabled = true;
}

fileInput.addEventListener("change", () => chooseFile(fileInput.files[0]));
["dragenter", "dragover"].forEach((name) => dropZone.addEventListener(name, (event) => {
  event.preventDefault();
  dropZone.classList.add("dragging");
}));
["dragleave", "drop"].forEach((name) => dropZone.addEventListener(name, (event) => {
  event.preventDefault();
  dropZone.classList.remove("dragging");
}));
dropZone.addEventListener("drop", (event) => chooseFile(event.dataTransfer.files[0]));

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function renderValidation(box, page) {
  if (page.regions && !Object.keys(page.regions).length) {
    box.className = "validation invalid";
    box.textContent = "No region was found on this page: add boxes for its regions below the page, then extract again.";
    return;
  }
  if (!Object.keys(page.document).length) {
    box.className = "validation invalid";
    box.textContent = "No JSON could be read from this page (see the raw model output).";
    return;
  }
  if (!page.fields_read) {
    // JSON came back, but none of its keys is a field of the schema (e.g. flat keys for a page):
    // say what the model returned instead of calling an empty extraction valid.
    box.className = "validation invalid";
    const keys = (page.unrecognised_keys || Object.keys(page.document)).join(", ");
    box.textContent = `No invoice field was read: the model answered with keys the schema does not know (${keys}). ` +
      "See the raw model output.";
    return;
  }
  if (page.valid) {
    box.className = "validation valid";
    box.textContent = "Valid: every arithmetic and consistency check passes.";
    return;
  }
  box.className = "validation invalid";
  const title = document.createElement("strong");
  title.textContent = `${page.violations.length} validation problem(s):`;
  const list = document.createElement("ul");
  page.violations.forEach((v) => {
    const item = document.createElement("li");
    item.textContent = `${v.field || v.rule}: ${v.message}`;
    list.appendChild(item);
  });
  box.replaceChildren(title, list);
}

function renderFields(tbody, documentJson, violations) {
  const badFields = new Set(violations.map((v) => v.field));
  Object.entries(documentJson).forEach(([region, fields]) => {
    if (!fields || typeof fields !== "object") return;
    Object.entries(fields).forEach(([name, value]) => {
      if (name === "line_items") return;
      const row = document.createElement("tr");
      row.dataset.field = `${region}.${name}`;
      cell(row, region, "region");
      cell(row, name);
      cell(row, typeof value === "string" ? value : JSON.stringify(value), "value");
      if (badFields.has(`${region}.${name}`) || badFields.has(name)) row.classList.add("bad");
      tbody.appendChild(row);
    });
  });
}

function renderLineItems(tbody, documentJson) {
  const rows = (documentJson.line_items_table || {}).line_items || [];
  rows.forEach((item) => {
    const row = document.createElement("tr");
    ["description", "quantity", "unit_price", "line_total"].forEach((key) => cell(row, item[key] ?? ""));
    tbody.appendChild(row);
  });
  if (!rows.length) {
    const row = document.createElement("tr");
    cell(row, "no line items extracted", "empty").colSpan = 4;
    tbody.appendChild(row);
  }
}

// The editable state of one answered page: its boxes in page pixels, with the detector's scores.
function pageBoxes(page) {
  const state = { number: page.page, width: page.width, height: page.height, boxes: {}, scores: {},
    missing: page.missing || [], from: page.boxes_from };
  Object.entries(page.regions).forEach(([region, info]) => {
    if (!REGIONS.includes(region) || !info.box) return;
    state.boxes[region] = info.box.slice();
    state.scores[region] = typeof info.score === "number" ? info.score : null;
  });
  return state;
}

function boxNote(page) {
  if (page.boxes_from === "detector") {
    const found = Object.keys(page.regions).length;
    return `The detector found ${found} of ${REGIONS.length} regions on this page.`;
  }
  if (page.boxes_from === "page") return "This page was read whole (no region detector on this server): add boxes to read it by region.";
  return "These are the boxes that were sent.";
}

function renderPage(page, state, count, localUrl) {
  const node = template.content.firstElementChild.cloneNode(true);
  node.querySelector(".page-title").textContent = count > 1 ? `Page ${page.page} of ${count}` : "Result";
  renderValidation(node.querySelector(".validation"), page);
  node.dataset.page = page.page;
  node.querySelector(".page-image").src = page.image || localUrl;
  const editor = createBoxEditor(state, () => setStatus("Boxes edited: press “Extract again” to read them.", ""));
  node.querySelector(".page-frame").appendChild(editor.svg);
  node.querySelector(".box-note").textContent = boxNote(page);
  node.querySelector(".box-editor").appendChild(editor.panel);
  renderFields(node.querySelector(".fields tbody"), page.document, page.violations);
  renderLineItems(node.querySelector(".line-items tbody"), page.document);
  const raw = Object.entries(page.regions).map(([region, info]) =>
    `${region}${info.error ? "  [error: " + info.error + "]" : ""}${info.repetition ? "  [repetition]" : ""}\n${info.raw_text}`);
  node.querySelector(".raw pre").textContent = raw.join("\n\n");
  const t = page.timings;
  node.querySelector(".timings").textContent = `detect ${(t.detect || 0).toFixed(2)} s · ` +
    `extract ${t.extract.toFixed(2)} s · validate ${(1000 * t.validate).toFixed(1)} ms · total ${t.total.toFixed(2)} s`;
  return node;
}

// A multi-page file: the pages merged into one document, validated as a whole (above the pages).
function renderDocument(data) {
  const node = template.content.firstElementChild.cloneNode(true);
  node.querySelector(".page-title").textContent = `Whole document (${data.num_pages} pages merged)`;
  node.classList.add("document");
  renderValidation(node.querySelector(".validation"), data);
  node.querySelector(".page-view").remove();
  renderFields(node.querySelector(".fields tbody"), data.document, data.violations);
  renderLineItems(node.querySelector(".line-items tbody"), data.document);
  const conflicts = (data.conflicts || []).map((c) =>
    `${c.region}.${c.field}: kept page ${c.page} (${JSON.stringify(c.value)}), page ${c.other_page} says ${JSON.stringify(c.other_value)}`);
  node.querySelector(".raw summary").textContent = "Values the pages disagree on";
  node.querySelector(".raw pre").textContent = conflicts.length ? conflicts.join("\n") : "none";
  node.querySelector(".timings").textContent = "";
  return node;
}

// The boxes of every page as the `boxes` field: one map per page; a page left without boxes
// (null) is detected again.
function boxesField() {
  return JSON.stringify(pages.map((p) => (Object.keys(p.boxes).length ? p.boxes : null)));
}

async function extract(withBoxes) {
  if (!chosenFile) return;
  const body = new FormData();
  body.append("file", chosenFile, chosenFile.name);
  if (withBoxes) body.append("boxes", boxesField());
  body.append("return_images", "true");
  button.disabled = againButton.disabled = true;
  setStatus(withBoxes ? "Extracting with the edited boxes…" : "Detecting regions and extracting…", "busy");
  try {
    const response = await fetch("/v1/extract", { method: "POST", body });
    const data = await response.json();
    if (!response.ok) {
      setStatus(`Error ${response.status}: ${data.error}`, "error");
      return;
    }
    const localUrl = URL.createObjectURL(chosenFile);
    pages = data.pages.map(pageBoxes);
    results.replaceChildren();
    if (data.num_pages > 1) results.appendChild(renderDocument(data));
    data.pages.forEach((page, i) => results.appendChild(renderPage(page, pages[i], data.num_pages, localUrl)));
    setStatus(`Done: ${data.num_pages} page(s) in ${data.timings.total.toFixed(2)} s`, "done");
  } catch (err) {
    setStatus(`Request failed: ${err}`, "error");
  } finally {
    button.disabled = !chosenFile;
    againButton.disabled = !chosenFile || !pages.length;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  extract(false);
});
againButton.addEventListener("click", () => extract(true));

fetch("/v1/model").then((r) => r.json()).then((info) => {
  const q = info.quantized ? `INT8 (${info.quantization})` : info.dtype;
  const layout = info.layout_model ? `regions: ${info.layout_model}` : "no region detector";
  if (!info.layout_model) {
    document.getElementById("regions-hint").textContent = "This server has no region detector: a page is read whole. " +
      "Add region boxes on the page below, then extract again with them.";
  }
  document.getElementById("model-info").textContent =
    `model: ${info.model} · ${q} · ${(info.parameters / 1e6).toFixed(1)} M parameters · ${info.device} · ${layout}`;
}).catch(() => {
  document.getElementById("model-info").textContent = "model: unavailable";
});
