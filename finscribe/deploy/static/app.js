// FinScribe web page: upload an invoice, POST it to /v1/extract, show page, boxes, fields,
// line items and the validation result. Plain DOM, no framework, nothing loaded from outside.
"use strict";

const form = document.getElementById("upload-form");
const fileInput = document.getElementById("file-input");
const dropZone = document.getElementById("drop-zone");
const button = document.getElementById("extract-button");
const statusLine = document.getElementById("status");
const results = document.getElementById("results");
const template = document.getElementById("page-template");
const REGION_COLORS = {
  vendor_block: "#1f77b4", client_info: "#9467bd", invoice_meta: "#ff7f0e",
  line_items_table: "#2ca02c", totals_section: "#d62728", page: "#7f7f7f",
};
let chosenFile = null;

function setStatus(text, kind) {
  statusLine.textContent = text;
  statusLine.className = kind || "";
}

function chooseFile(file) {
  chosenFile = file || null;
  document.getElementById("file-name").textContent = chosenFile ? chosenFile.name : "";
  button.disabled = !chosenFile;
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

function renderBoxes(frame, page) {
  Object.entries(page.regions).forEach(([region, info]) => {
    if (region === "page" || !info.box) return;
    const [x0, y0, x1, y1] = info.box;
    const div = document.createElement("div");
    div.className = "region-box" + (info.error ? " failed" : "");
    div.style.left = `${(100 * x0) / page.width}%`;
    div.style.top = `${(100 * y0) / page.height}%`;
    div.style.width = `${(100 * (x1 - x0)) / page.width}%`;
    div.style.height = `${(100 * (y1 - y0)) / page.height}%`;
    div.style.borderColor = REGION_COLORS[region] || "#333";
    div.title = info.error ? `${region}: ${info.error}` : region;
    const label = document.createElement("span");
    label.textContent = region;
    label.style.background = REGION_COLORS[region] || "#333";
    div.appendChild(label);
    frame.appendChild(div);
  });
}

function renderPage(page, count, localUrl) {
  const node = template.content.firstElementChild.cloneNode(true);
  node.querySelector(".page-title").textContent = count > 1 ? `Page ${page.page} of ${count}` : "Result";
  renderValidation(node.querySelector(".validation"), page);
  node.querySelector(".page-image").src = page.image || localUrl;
  renderBoxes(node.querySelector(".page-frame"), page);
  renderFields(node.querySelector(".fields tbody"), page.document, page.violations);
  renderLineItems(node.querySelector(".line-items tbody"), page.document);
  const raw = Object.entries(page.regions).map(([region, info]) =>
    `${region}${info.error ? "  [error: " + info.error + "]" : ""}${info.repetition ? "  [repetition]" : ""}\n${info.raw_text}`);
  node.querySelector(".raw pre").textContent = raw.join("\n\n");
  const t = page.timings;
  node.querySelector(".timings").textContent =
    `extract ${t.extract.toFixed(2)} s · validate ${(1000 * t.validate).toFixed(1)} ms · total ${t.total.toFixed(2)} s`;
  return node;
}

// A multi-page file: the pages merged into one document, validated as a whole (above the pages).
function renderDocument(data) {
  const node = template.content.firstElementChild.cloneNode(true);
  node.querySelector(".page-title").textContent = `Whole document (${data.num_pages} pages merged)`;
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

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!chosenFile) return;
  const body = new FormData();
  body.append("file", chosenFile, chosenFile.name);
  const boxes = document.getElementById("boxes-input").value.trim();
  if (boxes) body.append("boxes", boxes);
  body.append("return_images", "true");
  button.disabled = true;
  setStatus("Extracting…", "busy");
  results.replaceChildren();
  try {
    const response = await fetch("/v1/extract", { method: "POST", body });
    const data = await response.json();
    if (!response.ok) {
      setStatus(`Error ${response.status}: ${data.error}`, "error");
      return;
    }
    const localUrl = URL.createObjectURL(chosenFile);
    if (data.num_pages > 1) results.appendChild(renderDocument(data));
    data.pages.forEach((page) => results.appendChild(renderPage(page, data.num_pages, localUrl)));
    setStatus(`Done: ${data.num_pages} page(s) in ${data.timings.total.toFixed(2)} s`, "done");
  } catch (err) {
    setStatus(`Request failed: ${err}`, "error");
  } finally {
    button.disabled = !chosenFile;
  }
});

fetch("/v1/model").then((r) => r.json()).then((info) => {
  const q = info.quantized ? `INT8 (${info.quantization})` : info.dtype;
  document.getElementById("model-info").textContent =
    `model: ${info.model} · ${q} · ${(info.parameters / 1e6).toFixed(1)} M parameters · ${info.device}`;
}).catch(() => {
  document.getElementById("model-info").textContent = "model: unavailable";
});
