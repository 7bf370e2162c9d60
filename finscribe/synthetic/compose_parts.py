"""The composer's building blocks: the five region blocks (from `blocks.py`), the title, logos and
distractors as *slots*, each a function `draw(c, x, y, width) -> bottom` that keeps its ink inside
[x, x + width] and below y. The composed layouts place slots in rows and columns separated by
at least `Style.gap` (more than twice the region box padding), which is what keeps region boxes
from overlapping each other and the distractors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from finscribe.synthetic.blocks import (
    kv_block,
    kv_width,
    meta_rows,
    meta_strip,
    party_block,
    receipt_table_block,
    table_block,
    totals_block,
    totals_min_width,
    totals_width,
)
from finscribe.synthetic.canvas import Canvas, Color, Page, text_width
from finscribe.synthetic.decor import Logo, logo, logo_size
from finscribe.synthetic.distractors import Stamp, TextBlock, natural_width, stamp, stamp_size, text_block

Slot = Callable[[Canvas, float, float, float], float]
TABLE_STYLES = ("fill", "grid", "zebra", "rules", "lines", "plain")
TOTALS_STYLES = ("rule", "box", "grid")


@dataclass(frozen=True)
class Style:
    """Spacing of a composed page: gap between stacked blocks, gap between columns."""

    gap: int
    col_gap: int


def min_gap(p: Page) -> int:
    """Smallest gap that keeps two padded region boxes apart (renderer pads by max(2, 1.2 mm)),
    with a few pixels to spare for rules drawn a pixel or two below a block's returned bottom."""
    return 2 * max(2, p.px(1.2)) + max(4, p.px(1))


def vendor(p: Page, *, align: str = "left", scale: float = 1.25, colour: Color | None = None) -> Slot:
    return lambda c, x, y, w: party_block(c, p, "vendor_block", x, y, w, align=align, name_scale=scale, color=colour)


def client(p: Page, *, align: str = "left", heading: bool = True, scale: float = 1.05) -> Slot:
    head = p.labels["bill_to"] if heading else None
    return lambda c, x, y, w: party_block(c, p, "client_info", x, y, w, heading=head, align=align, name_scale=scale)


def meta(p: Page, mode: str, *, side: str = "left") -> Slot:
    """invoice_meta: mode 'aligned' (value column), 'right' (values flush right), 'panel' (values
    flush right on a tinted panel), 'stacked' (label above value), 'strip' / 'strip_boxed' (a row
    of cells). A label/value block no wider than its content sits at `side` of its slot."""
    def draw(c: Canvas, x: float, y: float, w: float) -> float:
        if mode.startswith("strip"):
            return meta_strip(c, p, x, y, w, boxed=mode == "strip_boxed")
        rows = meta_rows(p)
        if mode == "stacked":
            return kv_block(c, p, "invoice_meta", rows, x, y, w, stacked=True, label_font=p.font(0.8))
        inner = p.px(2.5) if mode == "panel" else 0
        natural = kv_width(p, rows, p.font(0.95), p.font(0.95, bold=True)) + (p.px(6) if mode != "aligned" else 0)
        width = min(w, natural + 2 * inner)
        left = x + w - width if side == "right" else x
        if mode != "panel":
            return kv_block(c, p, "invoice_meta", rows, left, y, width, values_right=mode == "right")
        # The panel goes under the text, so its height is measured first; it is the region's ink.
        bottom = kv_block(Canvas(None), p, "invoice_meta", rows, left + inner, y + inner, width - 2 * inner,
                          values_right=True) + inner
        with c.region("invoice_meta"):
            c.rect((left, y, left + width, bottom), fill=p.tint)
        kv_block(c, p, "invoice_meta", rows, left + inner, y + inner, width - 2 * inner, values_right=True)
        return bottom
    return draw


def table(p: Page, style: str) -> Slot:
    if style == "receipt":
        return lambda c, x, y, w: receipt_table_block(c, p, x, y, w)
    if style == "receipt_dashed":
        return lambda c, x, y, w: receipt_table_block(c, p, x, y, w, dashed=True)
    return lambda c, x, y, w: table_block(c, p, x, y, w, style)


def totals_size(p: Page, style: str, cap: float) -> int:
    """Width of the totals block: its natural width, capped at `cap` pixels, never narrower than
    its labels and amounts need."""
    return max(min(totals_width(p), round(cap)), totals_min_width(p, style))


def totals(p: Page, style: str, width: int, align: str = "right") -> Slot:
    def draw(c: Canvas, x: float, y: float, w: float) -> float:
        tw = min(width, w)
        left = {"right": x + w - tw, "left": x, "center": x + (w - tw) / 2}[align]
        return totals_block(c, p, left, y, tw, style)
    return draw


def title(p: Page, *, scale: float, align: str = "left", colour: Color | None = None, bold: bool = True) -> Slot:
    def draw(c: Canvas, x: float, y: float, w: float) -> float:
        anchor = {"left": x, "right": x + w, "center": x + w / 2}[align]
        fitted = scale
        while fitted > 0.8 and title_width(p, fitted, bold) > w:  # a long title in a narrow slot
            fitted -= 0.1
        return c.text(anchor, y, p.labels["title"], p.font(fitted, bold=bold), colour or p.accent, align)[3]
    return draw


def title_width(p: Page, scale: float, bold: bool = True) -> int:
    return text_width(p.font(scale, bold=bold), p.labels["title"])


def logo_slot(p: Page, spec: Logo, align: str = "left", colour: Color | None = None, letters: Color | None = None) -> Slot:
    def draw(c: Canvas, x: float, y: float, w: float) -> float:
        width = logo_size(p, spec)[0]
        left = {"left": x, "right": x + w - width, "center": x + (w - width) / 2}[align]
        extra = {} if letters is None else {"letters": letters}
        return logo(c, p, spec, left, y, colour, **extra)[1]
    return draw


def distractor(p: Page, item: TextBlock | Stamp, align: str = "left", colour: Color | None = None) -> Slot:
    if isinstance(item, Stamp):
        return lambda c, x, y, w: stamp(c, p, item, x, y, w)
    return lambda c, x, y, w: text_block(c, p, item, x, y, w, align=align, color=colour)


def slot_width(p: Page, item: TextBlock | Stamp) -> int:
    """The width a distractor wants (a stamp's exact width; a text block's unwrapped width)."""
    return stamp_size(p, item)[0] if isinstance(item, Stamp) else natural_width(p, item)


def row(c: Canvas, y: float, slots: list[tuple[float, float, Slot]]) -> float:
    """Draw slots (x, width, draw) side by side from y; returns the lowest bottom."""
    return max(draw(c, x, y, w) for x, w, draw in slots)


def split(x: float, width: float, fractions: list[float], col_gap: float) -> list[tuple[float, float]]:
    """Columns (x, width) that share `width` in proportion to `fractions`, `col_gap` apart."""
    free = width - col_gap * (len(fractions) - 1)
    total = sum(fractions)
    columns, left = [], x
    for f in fractions:
        w = free * f / total
        columns.append((left, w))
        left += w + col_gap
    return columns
