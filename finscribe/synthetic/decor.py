"""Page decoration for composed pages: logos (drawn shapes and monograms, no image files),
header bars and bands, dashed rules and barcodes. None of it is a region's ink: shapes are drawn
outside every `Canvas.region`, and a monogram's letters are spans with region None.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

from finscribe.synthetic.canvas import WHITE, Canvas, Color, Page

LOGO_SHAPES = ("circle", "square", "rounded", "diamond", "bars", "ring", "monogram_text")


@dataclass(frozen=True)
class Logo:
    shape: str  # one of LOGO_SHAPES
    initials: str  # "" for a shape without letters
    size_mm: float


def draw_logo(rng: random.Random, p: Page) -> Logo:
    """A logo for the vendor: a shape, with the vendor's initials on most of them."""
    shape = rng.choice(LOGO_SHAPES)
    words = [w for w in p.inv.vendor.name.replace("-", " ").split() if w[:1].isalpha()]
    initials = "".join(w[0] for w in words[:2]).upper() if words and rng.random() < 0.75 else ""
    if shape == "bars":
        initials = ""
    if shape == "monogram_text" and not initials:  # letters only: it needs some
        shape, initials = ("circle", "") if not words else (shape, words[0][0].upper())
    return Logo(shape, initials, rng.uniform(10, 17))


def logo(c: Canvas, p: Page, spec: Logo, x: float, y: float, colour: Color | None = None,
         letters: Color = WHITE) -> tuple[float, float]:
    """Draw the logo with its top-left at (x, y) in `colour` (the accent by default), initials in
    `letters`; returns its (right, bottom)."""
    colour = colour or p.accent
    size = p.px(spec.size_mm)
    x, y = round(x), round(y)
    if spec.shape == "monogram_text":  # letters only, large, in the accent colour
        font = p.font(2.6, bold=True)
        box = c.text(x, y, spec.initials, font, colour)
        return box[2], max(box[3], y + p.line_h(font) // 2)
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    if spec.shape == "circle":
        draw.ellipse((0, 0, size - 1, size - 1), fill=255)
    elif spec.shape == "square":
        draw.rectangle((0, 0, size - 1, size - 1), fill=255)
    elif spec.shape == "rounded":
        draw.rounded_rectangle((0, 0, size - 1, size - 1), radius=size // 4, fill=255)
    elif spec.shape == "diamond":
        half = size // 2
        draw.polygon([(half, 0), (size - 1, half), (half, size - 1), (0, half)], fill=255)
    elif spec.shape == "ring":
        draw.ellipse((0, 0, size - 1, size - 1), outline=255, width=max(2, size // 8))
    else:  # bars: three stepped bars
        step = size / 3
        for k in range(3):
            draw.rectangle((round(k * step), round(size - (k + 1) * step), round((k + 1) * step - step / 4), size - 1),
                           fill=255)
    c.paste(x, y, mask, colour)
    if spec.initials:
        font = p.font(spec.size_mm / 10 * 1.4, bold=True)
        ink = colour if spec.shape == "ring" else letters
        c.text(x + size / 2, y + (size - font.size) / 2 - font.size * 0.1, spec.initials, font, ink, "center")
    return x + size, y + size


def logo_size(p: Page, spec: Logo) -> tuple[int, int]:
    """(width, height) the logo takes, measured with a dry run."""
    probe = Canvas(None)
    right, bottom = logo(probe, p, spec, 0, 0)
    return round(right), round(bottom)


def band(c: Canvas, y0: float, y1: float, width: float, colour: Color) -> None:
    """A full-width coloured band (page decoration: no region's ink, so it does not grow boxes)."""
    c.rect((0, y0, width, y1), fill=colour, track=False)


def dashed_rule(c: Canvas, p: Page, x0: float, x1: float, y: float, colour: Color) -> None:
    dash = p.px(1.5)
    x = x0
    while x < x1:
        c.hline(x, min(x + dash, x1), y, colour)
        x += 2 * dash


def draw_barcode(rng: random.Random) -> tuple[int, ...]:
    """Bar and gap widths (in thin-bar units) of a barcode-looking stripe pattern."""
    return tuple(rng.choice((1, 1, 2, 3)) for _ in range(rng.randint(36, 52)))


def barcode(c: Canvas, p: Page, bars: tuple[int, ...], x: float, y: float, width: float, height_mm: float = 9) -> float:
    """Draw the bars centred in [x, x + width]; returns the bottom."""
    unit = max(1, int(width * 0.8 / sum(bars)))
    left = x + (width - unit * sum(bars)) / 2
    bottom = y + p.px(height_mm)
    for k, w in enumerate(bars):
        if k % 2 == 0:
            c.rect((left, y, left + w * unit - 1, bottom), fill=p.ink)
        left += w * unit
    return bottom
