"""The layout composer: page families whose block order, positions, widths, columns, page size,
margins, header bars, logos, table styles and distractor blocks are all drawn from the page's
seed, so that a region detector sees far more layouts than the six named ones.

    from finscribe.synthetic.renderer import render_invoice
    page = render_invoice(invoice, "composed_columns", dpi=100, seed=7)
    page.boxes, page.spans, page.page_size    # page size drawn by the family: A4, Letter, Receipt80

Families (`COMPOSED_FAMILIES`): `composed_stack`, `composed_columns`, `composed_receipt` and
`composed_banner`; `HELD_OUT_FAMILIES` (`composed_banner`) is kept out of training, as the named
layout `minimal` is. The region blocks are `blocks.py`'s, so region boxes, spans and labels are
recorded exactly as for the named layouts; distractors and decoration carry region None.
Everything comes from `random.Random(f"compose:{family}:{seed}")`: the same (invoice, family,
dpi, font, seed) gives the same page.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from PIL import Image

import finscribe.synthetic.locale_format as lf
from finscribe.data.schema import Invoice
from finscribe.synthetic.blocks import footer, footer_top, totals_min_width
from finscribe.synthetic.canvas import Canvas, Page
from finscribe.synthetic.composed_pages import draw_banner, draw_columns, draw_stack, plan_banner, plan_columns, plan_stack
from finscribe.synthetic.composed_receipt import RECEIPT_WIDTH_MM, draw_receipt, plan_receipt
from finscribe.synthetic.fonts import FontFamily, missing_glyphs

# name -> (page sizes it draws from, plan(rng, page), draw(canvas, page, plan))
_FAMILIES: dict[str, tuple[tuple[str, ...], Callable[..., Any], Callable[..., None]]] = {
    "composed_stack": (("A4", "Letter"), plan_stack, draw_stack),
    "composed_columns": (("A4", "Letter"), plan_columns, draw_columns),
    "composed_receipt": (("Receipt80",), plan_receipt, draw_receipt),
    "composed_banner": (("A4", "Letter"), plan_banner, draw_banner),
}
COMPOSED_FAMILIES: tuple[str, ...] = tuple(_FAMILIES)
HELD_OUT_FAMILIES: tuple[str, ...] = ("composed_banner",)
# Page sizes in mm (A4 and Letter as renderer.PAGE_SIZES); a receipt's height is its content's.
COMPOSED_PAGE_SIZES: dict[str, tuple[float, float | None]] = {
    "A4": (210.0, 297.0), "Letter": (215.9, 279.4), "Receipt80": (RECEIPT_WIDTH_MM, None)}
# As the renderer: table fonts shrink through these scales (never below MIN_TABLE_PT) before a
# page grows taller.
TABLE_SCALES = (1.0, 0.88, 0.78, 0.7)
MIN_TABLE_PT = 6.5
_PALETTE = ((31, 56, 100), (0, 92, 104), (122, 30, 48), (30, 82, 52), (52, 52, 58), (78, 42, 112), (112, 62, 22),
            (0, 105, 160), (170, 60, 20), (20, 20, 20), (90, 110, 40), (150, 30, 90))


def _page(inv: Invoice, size: str, dpi: int, family: FontFamily, rng: random.Random, seed: int) -> Page:
    width_mm, height_mm = COMPOSED_PAGE_SIZES[size]
    receipt = height_mm is None
    accent = rng.choice(_PALETTE)
    page = Page(
        inv=inv,
        width=round(width_mm / 25.4 * dpi),
        height=round((height_mm or 1000.0) / 25.4 * dpi),  # a receipt is cut to its content later
        dpi=dpi,
        family=family,
        labels=lf.labels_for(inv.locale, seed, can_draw=lambda t: not missing_glyphs(family, t)),
        language=lf.get_locale(inv.locale).language,
        margin=0,
        base_pt=round(rng.uniform(7.5, 9.0) * 4) / 4 if receipt else round(rng.uniform(8.5, 11.0) * 4) / 4,
        accent=accent,
        ink=(rng.randint(10, 40),) * 3,
        muted=(rng.randint(70, 105),) * 3,
        tint=tuple(round(255 - (255 - a) * rng.uniform(0.08, 0.18)) for a in accent),
        flags={k: rng.random() < 0.5 for k in ("contact_labels", "upper_meta", "total_code", "double_rule")},
    )
    page.margin = page.px(rng.uniform(3, 6) if receipt else rng.uniform(9, 24))
    if receipt:  # a narrow column: smaller type until the totals' labels and amounts fit beside each other
        while page.base_pt > 6.5 and totals_min_width(page, "box") > page.width - 2 * page.margin:
            page.base_pt -= 0.25
    return page


def compose(invoice: Invoice, family: str, *, dpi: int, font: FontFamily, seed: int) -> tuple[Canvas, Page, str]:
    """Draw `invoice` as a page of `family`; returns the canvas (image, spans, region ink), the
    page (its size) and the page-size name. Raises ValueError for an unknown family."""
    if family not in _FAMILIES:
        raise ValueError(f"unknown composed family {family!r}; choose one of {', '.join(COMPOSED_FAMILIES)}")
    sizes, plan_fn, draw_fn = _FAMILIES[family]
    rng = random.Random(f"compose:{family}:{seed}")
    size = rng.choice(sizes)
    page = _page(invoice, size, dpi, font, rng, seed)
    plan = plan_fn(rng, page)
    with_footer = COMPOSED_PAGE_SIZES[size][1] is not None and getattr(plan, "common", None) is not None \
        and plan.common.footer

    if COMPOSED_PAGE_SIZES[size][1] is None:  # receipt: measure, then cut the paper to the content
        probe = Canvas(None)
        draw_fn(probe, page, plan)
        page.height = math.ceil(probe.bottom) + page.margin
    else:  # as the renderer: smaller table type first, a taller page only if that is not enough
        room = (footer_top(page) - page.px(4)) if with_footer else page.height - page.margin
        scales = [s for s in TABLE_SCALES if page.base_pt * 0.95 * s >= MIN_TABLE_PT] or [1.0]
        for scale in scales:
            page.table_scale = scale
            probe = Canvas(None)
            draw_fn(probe, page, plan)
            if probe.bottom <= room:
                break
        else:
            page.height += math.ceil(probe.bottom - room)
    canvas = Canvas(Image.new("RGB", (page.width, page.height), (255, 255, 255)))
    draw_fn(canvas, page, plan)
    if with_footer:
        footer(canvas, page)
    return canvas, page, size
