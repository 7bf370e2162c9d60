// The region-box editor of one page: the boxes drawn over the page image (SVG in page pixels),
// moved by dragging, resized by their corners, deleted or added from a list beside the page.
// Keyboard: a focused box moves with the arrow keys (Shift+arrows resize it), Delete removes it.
// Plain DOM + SVG, nothing loaded from outside. Used by app.js (window.FinScribeBoxes).
"use strict";

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const REGIONS = ["vendor_block", "client_info", "invoice_meta", "line_items_table", "totals_section"];
  const COLORS = {
    vendor_block: "#1f77b4", client_info: "#9467bd", invoice_meta: "#ff7f0e",
    line_items_table: "#2ca02c", totals_section: "#d62728",
  };
  const CORNERS = ["nw", "ne", "sw", "se"];
  const MIN_SIDE = 8; // page pixels: the server refuses a box with a side under this

  function svgNode(name, attrs) {
    const node = document.createElementNS(SVG_NS, name);
    Object.entries(attrs).forEach(([key, value]) => node.setAttribute(key, value));
    return node;
  }

  // One page's editable boxes. `page` = {number, width, height, boxes: {region: [x0,y0,x1,y1]},
  // scores: {region: number|null}, missing: [region]}; edited in place, `onChange()` after each edit.
  function createBoxEditor(page, onChange) {
    const unit = Math.max(page.width, page.height) / 100; // 1 % of the long side, in page pixels
    page.edited = page.edited || new Set();
    const svg = svgNode("svg", {
      class: "box-layer", viewBox: `0 0 ${page.width} ${page.height}`, preserveAspectRatio: "none",
      role: "group", "aria-label": `Region boxes on page ${page.number}`,
    });
    const panel = document.createElement("div");
    panel.className = "box-tools";
    let drag = null;

    const toPage = (event) => {
      const point = new DOMPoint(event.clientX, event.clientY).matrixTransform(svg.getScreenCTM().inverse());
      return [point.x, point.y];
    };

    // Whole pixels inside the page, at least MIN_SIDE per side.
    function fit(box) {
      let [x0, y0, x1, y1] = box.map(Math.round);
      x0 = Math.max(0, Math.min(x0, page.width - MIN_SIDE));
      y0 = Math.max(0, Math.min(y0, page.height - MIN_SIDE));
      x1 = Math.min(page.width, Math.max(x1, x0 + MIN_SIDE));
      y1 = Math.min(page.height, Math.max(y1, y0 + MIN_SIDE));
      return [x0, y0, x1, y1];
    }

    function moved(box, dx, dy) { // the same size, kept inside the page
      const [x0, y0, x1, y1] = box;
      const sx = Math.max(-x0, Math.min(dx, page.width - x1));
      const sy = Math.max(-y0, Math.min(dy, page.height - y1));
      return [x0 + sx, y0 + sy, x1 + sx, y1 + sy];
    }

    function resized(box, corner, dx, dy) {
      const [x0, y0, x1, y1] = box;
      return [
        corner.includes("w") ? Math.min(x0 + dx, x1 - MIN_SIDE) : x0,
        corner.includes("n") ? Math.min(y0 + dy, y1 - MIN_SIDE) : y0,
        corner.includes("e") ? Math.max(x1 + dx, x0 + MIN_SIDE) : x1,
        corner.includes("s") ? Math.max(y1 + dy, y0 + MIN_SIDE) : y1,
      ];
    }

    function setBox(region, box) {
      page.boxes[region] = fit(box);
      page.scores[region] = null; // edited by hand: no detector score any more
      page.edited.add(region);
      draw();
      onChange();
    }

    function removeBox(region) {
      delete page.boxes[region];
      delete page.scores[region];
      draw();
      onChange();
      const select = panel.querySelector("select");
      if (select) select.focus();
    }

    function labelOf(region) {
      const score = page.scores[region];
      if (typeof score === "number") return `${region} ${score.toFixed(2)}`; // found by the detector
      return `${region} (${page.edited.has(region) ? "edited" : "sent"})`;
    }

    function drawBox(region) {
      const [x0, y0, x1, y1] = page.boxes[region];
      const color = COLORS[region];
      const group = svgNode("g", {
        class: "box", tabindex: "0", "data-region": region, "data-page": page.number, "data-box": page.boxes[region].join(","),
        role: "button", "aria-label": `${region} box on page ${page.number}, ${page.boxes[region].join(", ")}: ` +
          "drag to move, arrow keys move, Shift+arrow keys resize, Delete removes",
      });
      group.appendChild(svgNode("rect", {
        class: "body", x: x0, y: y0, width: x1 - x0, height: y1 - y0, stroke: color, fill: color,
        "fill-opacity": "0.08", "stroke-width": "2", "vector-effect": "non-scaling-stroke",
      }));
      const fontSize = 1.6 * unit;
      const text = labelOf(region);
      const labelY = y0 >= 1.3 * fontSize ? y0 - 1.3 * fontSize : y1; // above the box, or below it at the top edge
      group.appendChild(svgNode("rect", {
        class: "label-bg", x: x0, y: labelY, width: 0.6 * fontSize * text.length + 0.6 * fontSize, height: 1.3 * fontSize, fill: color,
      }));
      const label = svgNode("text", { class: "label", x: x0 + 0.3 * fontSize, y: labelY + fontSize, "font-size": fontSize, fill: "#fff" });
      label.textContent = text;
      group.appendChild(label);
      const handle = 1.4 * unit;
      CORNERS.forEach((corner) => {
        group.appendChild(svgNode("rect", {
          class: `handle ${corner}`, "data-handle": corner, width: handle, height: handle, fill: "#fff", stroke: color,
          x: (corner.includes("w") ? x0 : x1) - handle / 2, y: (corner.includes("n") ? y0 : y1) - handle / 2,
          "vector-effect": "non-scaling-stroke",
        }));
      });
      return group;
    }

    function draw() {
      const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest("g.box");
      const focusedRegion = focused && svg.contains(focused) ? focused.dataset.region : null;
      svg.replaceChildren(...REGIONS.filter((r) => page.boxes[r]).map(drawBox));
      if (focusedRegion && page.boxes[focusedRegion]) svg.querySelector(`g.box[data-region="${focusedRegion}"]`).focus();
      drawPanel();
    }

    function drawPanel() {
      const list = document.createElement("ul");
      list.className = "box-list";
      REGIONS.filter((r) => page.boxes[r]).forEach((region) => {
        const item = document.createElement("li");
        item.dataset.region = region;
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = COLORS[region];
        const name = document.createElement("span");
        name.className = "region-name";
        name.textContent = labelOf(region);
        const coords = document.createElement("code");
        coords.textContent = `[${page.boxes[region].join(", ")}]`;
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "delete-box";
        remove.textContent = "Delete";
        remove.setAttribute("aria-label", `Delete the ${region} box on page ${page.number}`);
        remove.addEventListener("click", () => removeBox(region));
        item.append(swatch, name, coords, remove);
        list.appendChild(item);
      });
      const parts = [list];
      const absent = REGIONS.filter((r) => !page.boxes[r]);
      const notFound = absent.filter((r) => (page.missing || []).includes(r));
      if (notFound.length) {
        const note = document.createElement("p");
        note.className = "missing";
        note.textContent = `Not found by the detector: ${notFound.join(", ")}.`;
        parts.push(note);
      }
      if (absent.length) {
        const row = document.createElement("div");
        row.className = "add-box";
        const label = document.createElement("label");
        label.textContent = "Add a box for ";
        const select = document.createElement("select");
        select.setAttribute("aria-label", `Region to add a box for on page ${page.number}`);
        absent.forEach((region) => select.appendChild(new Option(region, region)));
        label.appendChild(select);
        const add = document.createElement("button");
        add.type = "button";
        add.className = "add-button";
        add.textContent = "Add box";
        add.setAttribute("aria-label", `Add a box on page ${page.number} for the chosen region`);
        add.addEventListener("click", () => { // a box in the middle of the page, to drag where it belongs
          const w = page.width / 3, h = page.height / 8;
          setBox(select.value, [(page.width - w) / 2, (page.height - h) / 2, (page.width + w) / 2, (page.height + h) / 2]);
        });
        row.append(label, add);
        parts.push(row);
      }
      panel.replaceChildren(...parts);
    }

    svg.addEventListener("pointerdown", (event) => {
      const group = event.target.closest("g.box");
      if (!group || event.button !== 0) return;
      event.preventDefault();
      const region = group.dataset.region;
      drag = { region, mode: event.target.dataset.handle || "move", start: toPage(event), box: page.boxes[region].slice() };
      svg.setPointerCapture(event.pointerId);
      group.focus();
    });
    svg.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const [x, y] = toPage(event);
      const dx = x - drag.start[0], dy = y - drag.start[1];
      page.boxes[drag.region] = fit(drag.mode === "move" ? moved(drag.box, dx, dy) : resized(drag.box, drag.mode, dx, dy));
      draw();
    });
    const endDrag = (event) => {
      if (!drag) return;
      const { region, box } = drag;
      drag = null;
      if (svg.hasPointerCapture(event.pointerId)) svg.releasePointerCapture(event.pointerId);
      if (page.boxes[region].join() !== box.join()) setBox(region, page.boxes[region]);
    };
    svg.addEventListener("pointerup", endDrag);
    svg.addEventListener("pointercancel", endDrag);
    svg.addEventListener("keydown", (event) => {
      const group = event.target.closest("g.box");
      if (!group) return;
      const region = group.dataset.region;
      if (event.key === "Delete" || event.key === "Backspace") {
        event.preventDefault();
        removeBox(region);
        return;
      }
      const step = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[event.key];
      if (!step) return;
      event.preventDefault();
      const [dx, dy] = [step[0] * unit, step[1] * unit];
      const box = page.boxes[region];
      setBox(region, event.shiftKey ? resized(box, "se", dx, dy) : moved(box, dx, dy));
    });

    draw();
    return { svg, panel };
  }

  window.FinScribeBoxes = { createBoxEditor, REGIONS, COLORS };
})();
