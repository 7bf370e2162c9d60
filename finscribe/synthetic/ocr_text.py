"""OCR samples from rendered invoices: a crop of printed text and the text itself.

The real PaddleOCR-VL is an OCR model first (prompt `OCR:` -> the text of the image); the tiny
reader is pretrained on the same task with crops of synthetic invoices:

    from finscribe.synthetic.ocr_text import page_samples
    for sample in page_samples(seed=7, index=0, dpi=150):
        sample.image, sample.text, sample.kind, sample.region  # kind: "line" | "block"

A *line* is every span of one region that shares a visual line, joined left to right by one
space ("Subtotal $1,234.56"); a *block* is a whole region crop whose text is its lines top to
bottom, joined by "\\n". Sample i of (seed, ...) depends only on (seed, i): the invoice, the
layout, the font, the degradation and the crop padding all come from local RNGs.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageOps

from finscribe.synthetic.augment import STRENGTHS, degrade, plan, transform_box
from finscribe.synthetic.canvas import Box, TextSpan
from finscribe.synthetic.generator import (
    SUPPORTED_LOCALES,
    generate_invoice,
    random_invoice_spec,
)
from finscribe.synthetic.renderer import LAYOUTS, render_invoice

OCR_PROMPT = "OCR:"  # the real model's base task prompt (data.formatters holds the same constant)
MIN_LINE_WIDTH = 56  # narrower line crops are padded with their background, never upscaled
MAX_TILT_GROWTH = 5  # pixels a rotated line box may grow in height before it would cut a neighbour


@dataclass(frozen=True)
class OcrSample:
    image: Image.Image
    text: str
    kind: str  # "line" or "block"
    region: str | None  # the invoice region the text belongs to; None outside every region
    layout: str
    locale: str


def group_lines(spans: Sequence[TextSpan]) -> list[tuple[Box, str]]:
    """Spans grouped into visual lines (vertical overlap ≥ half the smaller height), top to bottom;
    each line's text is its spans left to right joined by one space, with its union box."""
    lines: list[list[TextSpan]] = []
    for span in sorted(spans, key=lambda s: (s.box[1] + s.box[3]) / 2):
        y0, y1 = span.box[1], span.box[3]
        for line in lines:
            ly0, ly1 = min(s.box[1] for s in line), max(s.box[3] for s in line)
            overlap = min(y1, ly1) - max(y0, ly0)
            if overlap >= 0.5 * min(y1 - y0, ly1 - ly0):
                line.append(span)
                break
        else:
            lines.append([span])
    grouped = []
    for line in lines:
        line.sort(key=lambda s: s.box[0])
        box = (min(s.box[0] for s in line), min(s.box[1] for s in line),
               max(s.box[2] for s in line), max(s.box[3] for s in line))
        grouped.append((box, " ".join(s.text.strip() for s in line)))
    grouped.sort(key=lambda item: item[0][1])
    return grouped


def _background(image: Image.Image) -> tuple[int, ...]:
    """The median colour of the crop's border: what padding should look like."""
    rgb = image.convert("RGB")
    w, h = rgb.size
    border = [rgb.getpixel((x, y)) for x in range(w) for y in (0, h - 1)]
    border += [rgb.getpixel((x, y)) for y in range(h) for x in (0, w - 1)]
    return tuple(sorted(channel)[len(channel) // 2] for channel in zip(*border))


def _line_crop(page: Image.Image, box: Box, rng: random.Random) -> Image.Image:
    x0, y0, x1, y1 = box
    pad_x, pad_y = rng.randint(2, 10), rng.randint(2, 5)
    crop = page.crop((max(0, x0 - pad_x), max(0, y0 - pad_y), min(page.width, x1 + pad_x),
                      min(page.height, y1 + pad_y)))
    if crop.width < MIN_LINE_WIDTH:  # pad, keep the glyph size: a stretched "7" is not a "7"
        extra = MIN_LINE_WIDTH - crop.width
        crop = ImageOps.expand(crop, (extra // 2, 0, extra - extra // 2, 0), fill=_background(crop))
    return crop


def page_samples(seed: int, index: int, *, dpi: int = 150, degrade_probability: float = 0.3,
                 locales: Sequence[str] = SUPPORTED_LOCALES, layouts: Sequence[str] = LAYOUTS,
                 block_regions: Sequence[str] = ("vendor_block", "client_info", "invoice_meta", "totals_section"),
                 ) -> list[OcrSample]:
    """Every line and every block (of `block_regions`) of invoice `index` of the set `seed`."""
    spec = random_invoice_spec(seed, index, layouts=layouts, locales=locales)
    invoice = generate_invoice(spec.num_items, spec.currency, spec.seed, spec.locale)
    rendered = render_invoice(invoice, spec.layout, dpi=dpi, seed=spec.seed)
    rng = random.Random(f"ocr:{seed}:{index}")
    image, boxes = rendered.image, dict(rendered.boxes)
    move = None
    if rng.random() < degrade_probability:
        strength = rng.choice(STRENGTHS)
        image = degrade(image, seed=spec.seed, strength=strength)
        if plan(spec.seed, strength).angle is not None:  # the page is slightly rotated: so are the boxes
            def move(box: Box, strength: str = strength) -> Box:
                return transform_box(box, image.size, seed=spec.seed, strength=strength)
            boxes = {r: move(b) for r, b in boxes.items()}
    samples = []
    by_region: dict[str | None, list[TextSpan]] = {}
    for span in rendered.spans:
        by_region.setdefault(span.region, []).append(span)
    for region, spans in by_region.items():
        lines = group_lines(spans)
        for box, text in lines:
            if move is not None:
                moved = move(box)
                # A long line tilted by a degree reaches into its neighbours' height: leave it out.
                if (moved[3] - moved[1]) - (box[3] - box[1]) > MAX_TILT_GROWTH:
                    continue
                box = moved
            samples.append(OcrSample(_line_crop(image, box, rng), text, "line", region, spec.layout, spec.locale))
        if region in block_regions and region in boxes:
            samples.append(OcrSample(image.crop(boxes[region]), "\n".join(t for _, t in lines), "block", region,
                                     spec.layout, spec.locale))
    return samples
