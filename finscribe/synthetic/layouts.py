"""The page layouts: where each of the five region blocks goes and how it is styled.

Every layout draws the five regions (see `blocks.py`) with gaps between them wider than twice
the box padding, so region boxes never overlap. Layouts draw top-down from the top margin;
the renderer adds the footer and makes the page taller only if the content does not fit.
"""

from __future__ import annotations

from finscribe.synthetic.blocks import (
    kv_block,
    kv_width,
    meta_rows,
    meta_strip,
    party_block,
    table_block,
    totals_block,
    totals_min_width,
    totals_width,
)
from finscribe.synthetic.canvas import WHITE, Canvas, Page


def _title(c: Canvas, p: Page, x: float, y: float, *, scale: float, align: str = "left", color=None, bold=True) -> int:
    return c.text(x, y, p.labels["title"], p.font(scale, bold=bold), color or p.accent, align)[3]


def _totals_right(c: Canvas, p: Page, right: float, y: float, max_width: float, style: str) -> float:
    width = max(min(totals_width(p), max_width), totals_min_width(p, style))
    return totals_block(c, p, right - width, y, width, style)


def classic(c: Canvas, p: Page) -> None:
    """Vendor top-left, big title and meta top-right, 'Bill to' below, accent-header table."""
    m, cw, gap = p.margin, p.width - 2 * p.margin, p.px(7)
    vendor_bottom = party_block(c, p, "vendor_block", m, m, cw * 0.5)
    title_bottom = _title(c, p, p.width - m, m, scale=2.2, align="right")
    rows = meta_rows(p)
    width = min(kv_width(p, rows, p.font(0.95), p.font(0.95, bold=True)), cw * 0.42)
    meta_bottom = kv_block(c, p, "invoice_meta", rows, p.width - m - width, title_bottom + p.px(4), width)
    y = max(vendor_bottom, meta_bottom) + gap
    y = party_block(c, p, "client_info", m, y, cw * 0.5, heading=p.labels["bill_to"], name_scale=1.05) + gap
    y = table_block(c, p, m, y, cw, "fill") + gap
    _totals_right(c, p, p.width - m, y, cw * 0.5, "rule")


def two_column(c: Canvas, p: Page) -> None:
    """Tinted sidebar with vendor, client and stacked meta; title, table and totals on the right."""
    side = round(p.width * 0.31)
    c.rect((0, 0, side, p.height), fill=p.tint, track=False)
    x, width, gap = round(p.margin * 0.7), side - round(p.margin * 0.7) - p.px(5), p.px(8)
    y = party_block(c, p, "vendor_block", x, p.margin, width, name_scale=1.1) + gap
    y = party_block(c, p, "client_info", x, y, width, heading=p.labels["bill_to"], name_scale=1.0) + gap
    kv_block(c, p, "invoice_meta", meta_rows(p), x, y, width, label_font=p.font(0.8), stacked=True)
    main_x = side + p.px(8)
    main_w = p.width - p.margin - main_x
    y = _title(c, p, main_x, p.margin, scale=2.4) + p.px(12)
    y = table_block(c, p, main_x, y, main_w, "rules") + p.px(7)
    _totals_right(c, p, p.width - p.margin, y, main_w * 0.75, "rule")


def boxed_table(c: Canvas, p: Page) -> None:
    """Centred letterhead, client and meta in framed boxes side by side, full grid table."""
    m, cw, gap = p.margin, p.width - 2 * p.margin, p.px(6)
    y = party_block(c, p, "vendor_block", m, m, cw, align="center", name_scale=1.5) + p.px(5)
    y = _title(c, p, p.width / 2, y, scale=1.7, align="center") + gap
    box_w, inner = cw * 0.47, p.px(2.5)
    client_bottom = party_block(c, p, "client_info", m + inner, y + inner, box_w - 2 * inner,
                                heading=p.labels["bill_to"], name_scale=1.0)
    meta_x = p.width - m - box_w
    meta_bottom = kv_block(c, p, "invoice_meta", meta_rows(p), meta_x + inner, y + inner, box_w - 2 * inner,
                           values_right=True)
    bottom = max(client_bottom, meta_bottom) + inner
    for region, x in (("client_info", m), ("invoice_meta", meta_x)):
        with c.region(region):
            c.rect((x, y, x + box_w, bottom), outline=p.muted)
    y = table_block(c, p, m, bottom + gap, cw, "grid") + gap
    _totals_right(c, p, p.width - m, y, cw * 0.5, "grid")


def minimal(c: Canvas, p: Page) -> None:
    """Plain single column: light title and meta top-left, vendor flush right, totals left."""
    m, cw, gap = p.margin, p.width - 2 * p.margin, p.px(9)
    title_bottom = _title(c, p, m, m, scale=1.8, bold=False, color=p.ink)
    meta_bottom = kv_block(c, p, "invoice_meta", meta_rows(p), m, title_bottom + p.px(5), cw * 0.45,
                           label_font=p.font(0.9), value_font=p.font(0.95))
    vendor_bottom = party_block(c, p, "vendor_block", m + cw * 0.55, m, cw * 0.45, align="right", name_scale=1.1)
    y = max(meta_bottom, vendor_bottom) + gap
    y = party_block(c, p, "client_info", m, y, cw * 0.5, heading=p.labels["bill_to"], name_scale=1.0) + gap
    y = table_block(c, p, m, y, cw, "rules") + gap
    totals_block(c, p, m, y, max(min(totals_width(p), cw * 0.5), totals_min_width(p, "rule")), "rule")


def right_totals(c: Canvas, p: Page) -> None:
    """Accent letterhead band (white vendor text), meta strip, client, ruled table, shaded totals panel."""
    m, cw, gap = p.margin, p.width - 2 * p.margin, p.px(6)
    band_top = round(m * 0.5)
    probe = Canvas(None)  # measure the vendor block to size the band under it
    band_bottom = party_block(probe, p, "vendor_block", m, band_top + p.px(4), cw * 0.6) + p.px(4)
    c.rect((0, 0, p.width, band_bottom), fill=p.accent, track=False)
    party_block(c, p, "vendor_block", m, band_top + p.px(4), cw * 0.6, color=WHITE)
    _title(c, p, p.width - m, band_top + p.px(4), scale=2.0, align="right", color=WHITE)
    y = meta_strip(c, p, m, band_bottom + gap, cw, boxed=False) + gap
    y = party_block(c, p, "client_info", m, y, cw * 0.5, heading=p.labels["bill_to"], name_scale=1.05) + gap
    y = table_block(c, p, m, y, cw, "lines") + gap
    _totals_right(c, p, p.width - m, y, cw * 0.5, "box")


def compact(c: Canvas, p: Page) -> None:
    """Dense: small type, vendor | client | meta in three columns, zebra table."""
    m, cw, gap = p.margin, p.width - 2 * p.margin, p.px(5)
    title_bottom = _title(c, p, m, m, scale=1.5)
    c.hline(m, p.width - m, title_bottom + p.px(2), p.accent, width=max(1, p.px(0.5)))
    y, col_gap = title_bottom + p.px(5), p.px(5)
    col = (cw - 2 * col_gap) / 3
    bottoms = [
        party_block(c, p, "vendor_block", m, y, col, name_scale=1.1),
        party_block(c, p, "client_info", m + col + col_gap, y, col, heading=p.labels["bill_to"], name_scale=1.0),
        kv_block(c, p, "invoice_meta", meta_rows(p), m + 2 * (col + col_gap), y, col, values_right=True),
    ]
    y = table_block(c, p, m, max(bottoms) + gap, cw, "zebra") + gap
    _totals_right(c, p, p.width - m, y, cw * 0.45, "rule")


LAYOUT_FUNCTIONS = {
    "classic": classic,
    "two_column": two_column,
    "boxed_table": boxed_table,
    "minimal": minimal,
    "right_totals": right_totals,
    "compact": compact,
}
LAYOUTS: tuple[str, ...] = tuple(LAYOUT_FUNCTIONS)
