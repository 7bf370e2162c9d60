"""The `composed_receipt` family: a till receipt, 80 mm wide and as tall as its content. One
column: logo, vendor, title, the meta and client blocks in either order (the client sometimes at
the end), the items as a receipt prints them (description and amount, then quantity x price),
totals across the width, and notes, a barcode, a stamp or bank details below. Sections are
separated by dashed or solid rules drawn in the gaps, outside every region box.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import finscribe.synthetic.compose_parts as parts
from finscribe.synthetic.canvas import Canvas, Page
from finscribe.synthetic.compose_parts import Slot, Style
from finscribe.synthetic.decor import Logo, barcode, dashed_rule, draw_barcode, draw_logo
from finscribe.synthetic.distractors import Stamp, TextBlock, draw_distractor

RECEIPT_WIDTH_MM = 80.0


@dataclass(frozen=True)
class ReceiptPlan:
    style: Style
    logo: Logo | None
    vendor_align: str
    title: bool
    title_scale: float
    order: tuple[str, ...]  # region blocks between the vendor and the items
    client_last: bool  # the client block after the totals instead
    meta_mode: str
    dashed: bool
    totals_style: str
    extras: tuple[TextBlock | Stamp, ...]
    bars: tuple[int, ...] | None


def plan_receipt(rng: random.Random, p: Page) -> ReceiptPlan:
    gap = max(parts.min_gap(p), p.px(rng.uniform(3, 6)))
    order = ["meta", "client"] if rng.random() < 0.6 else ["client", "meta"]
    client_last = rng.random() < 0.3
    if client_last:
        order.remove("client")
    kinds = [k for k in ("notes", "terms", "stamp", "bank") if rng.random() < {"notes": 0.6, "terms": 0.3,
                                                                               "stamp": 0.25, "bank": 0.2}[k]]
    extras = tuple(draw_distractor(rng, p, kind) for kind in kinds)
    return ReceiptPlan(Style(gap, gap), draw_logo(rng, p) if rng.random() < 0.5 else None,
                       rng.choice(("center", "center", "left")), rng.random() < 0.7, rng.uniform(1.1, 1.5),
                       tuple(order), client_last, rng.choice(("right", "right", "aligned")), rng.random() < 0.6,
                       rng.choice(("rule", "box")), extras, draw_barcode(rng) if rng.random() < 0.5 else None)


def draw_receipt(c: Canvas, p: Page, plan: ReceiptPlan) -> None:
    m, cw, gap = p.margin, p.width - 2 * p.margin, plan.style.gap

    def separator(y: float) -> float:
        """A rule in the middle of the gap below y; returns where the next block starts."""
        mid = y + gap // 2
        if plan.dashed:
            dashed_rule(c, p, m, p.width - m, mid, p.muted)
        else:
            c.hline(m, p.width - m, mid, p.muted)
        return y + gap

    y = m
    if plan.logo is not None:
        y = parts.logo_slot(p, plan.logo, "center")(c, m, y, cw) + gap
    y = parts.vendor(p, align=plan.vendor_align, scale=1.2)(c, m, y, cw) + gap
    if plan.title:
        y = parts.title(p, scale=plan.title_scale, align=plan.vendor_align)(c, m, y, cw) + gap
    y = separator(y - gap)
    blocks: dict[str, Slot] = {"meta": parts.meta(p, plan.meta_mode), "client": parts.client(p, scale=1.0)}
    for name in plan.order:
        y = separator(blocks[name](c, m, y, cw))
    y = parts.table(p, "receipt_dashed" if plan.dashed else "receipt")(c, m, y, cw) + gap
    y = parts.totals(p, plan.totals_style, cw, "left")(c, m, y, cw)
    y = separator(y)
    if plan.client_last:
        y = separator(blocks["client"](c, m, y, cw))
    for item in plan.extras:
        if isinstance(item, Stamp) and parts.slot_width(p, item) > cw:
            continue
        y = parts.distractor(p, item, align="left" if item.__class__ is TextBlock and item.kind == "bank"
                             else "center")(c, m, y, cw) + gap
    if plan.bars is not None:
        barcode(c, p, plan.bars, m, y, cw)
