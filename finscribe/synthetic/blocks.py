"""The five region blocks of an invoice page (vendor, client, meta, line-item table, totals) and
the footer. Each block function draws one region on a `Canvas` at a given position and width and
returns its bottom y.
"""

from __future__ import annotations

from pathlib import Path

from PIL import ImageFont

from finscribe.data.schema import Party
from finscribe.synthetic.canvas import WHITE, Canvas, Color, Page, text_width, wrap
from finscribe.synthetic.fonts import load_font


def _lines(c: Canvas, p: Page, x: float, y: float, width: float, texts, font, fill, align: str) -> float:
    """Draw wrapped lines top-down; returns the y below the last one."""
    anchor = {"left": x, "right": x + width, "center": x + width / 2}[align]
    for text in texts:
        for line in wrap(text, font, width):
            c.text(anchor, y, line, font, fill, align)
            y += p.line_h(font)
    return y


def party_lines(p: Page, party: Party) -> list[str]:
    """Address lines and the optional tax id / email / phone, as printed under the name."""
    lab = p.labels
    lines = [line.strip() for line in party.address.split("\n") if line.strip()]
    if party.tax_id:
        lines.append(f"{lab['tax_id']}: {party.tax_id}")
    if party.email:
        lines.append(f"{lab['email']}: {party.email}" if p.flags.get("contact_labels") else party.email)
    if party.phone:
        lines.append(f"{lab['phone']}: {party.phone}")
    return lines


def party_block(c: Canvas, p: Page, region: str, x: float, y: float, width: float, *, heading: str | None = None,
                align: str = "left", name_scale: float = 1.25, color: Color | None = None) -> float:
    """Vendor or client block: optional heading, bold name, address and contact lines."""
    party = p.inv.vendor if region == "vendor_block" else p.inv.client
    ink = color or p.ink
    with c.region(region):
        if heading:
            y = _lines(c, p, x, y, width, [heading], p.font(0.9, bold=True), color or p.accent, align) + p.px(0.8)
        y = _lines(c, p, x, y, width, [party.name], p.font(name_scale, bold=True), ink, align) + p.px(0.6)
        font, fill = p.font(0.95), color or p.muted
        for line in party_lines(p, party):
            if party.email and line.endswith(party.email) and text_width(font, line) > width:
                y = _email_line(c, p, x, y, width, line, party.email, font, fill, align)
            else:
                y = _lines(c, p, x, y, width, [line], font, fill, align)
    return y


def fit_font(font: ImageFont.FreeTypeFont, text: str, width: float, min_size: int) -> ImageFont.FreeTypeFont | None:
    """The same face at the largest size (≤ font.size, ≥ min_size) at which `text` fits `width`."""
    size = min(font.size, int(font.size * width / max(1, text_width(font, text))) + 1)
    while size >= min_size:
        smaller = load_font(Path(font.path), size)
        if text_width(smaller, text) <= width:
            return smaller
        size -= 1
    return None


def _email_line(c: Canvas, p: Page, x: float, y: float, width: float, line: str, email: str, font, fill,
                align: str) -> float:
    """An email too wide for its column, drawn unbroken: in a smaller font (down to 60%), with its
    label on a line of its own if need be; cut by characters only if even that does not fit."""
    min_size = max(6, round(font.size * 0.6))
    anchor = {"left": x, "right": x + width, "center": x + width / 2}[align]
    fitted = fit_font(font, line, width, max(min_size, round(font.size * 0.8)))
    if fitted is not None:  # a little smaller keeps label and address on one line
        c.text(anchor, y, line, fitted, fill, align)
        return y + p.line_h(fitted)
    label = line[: len(line) - len(email)].rstrip()
    if label:
        y = _lines(c, p, x, y, width, [label], font, fill, align)
    fitted = fit_font(font, email, width, min_size)
    if fitted is None:
        return _lines(c, p, x, y, width, [email], font, fill, align)
    c.text(anchor, y, email, fitted, fill, align)
    return y + p.line_h(fitted)


def meta_rows(p: Page) -> list[tuple[str, str]]:
    inv, lab = p.inv, p.labels
    rows = [(lab["number"], inv.invoice_number), (lab["date"], p.date(inv.invoice_date)),
            (lab["due"], p.date(inv.due_date))]
    if inv.payment_terms:
        rows.append((lab["terms"], inv.payment_terms))
    rows.append((lab["currency"], inv.currency))
    return rows


def kv_width(p: Page, rows, label_font, value_font) -> int:
    """Natural width of a label/value block."""
    label_w = max(text_width(label_font, k + ":") for k, _ in rows)
    return round(label_w + p.px(4) + max(text_width(value_font, v) for _, v in rows))


def kv_block(c: Canvas, p: Page, region: str, rows, x: float, y: float, width: float, *,
             label_font=None, value_font=None, values_right: bool = False, stacked: bool = False) -> float:
    """Rows of 'label: value' with an aligned value column, values flush right, or stacked
    (small label above its value, for narrow columns).

    A value never runs into its label: a flush-right value that does not fit beside its label
    goes on the next line(s); an aligned value column too narrow for a value does the same.
    """
    label_font = label_font or p.font(0.95)
    value_font = value_font or p.font(0.95, bold=True)
    line_h = max(p.line_h(label_font), p.line_h(value_font))
    gap = p.px(4)
    value_x = x + max(text_width(label_font, k + ":") for k, _ in rows) + gap
    value_w = x + width - value_x
    with c.region(region):
        for key, value in rows:
            if stacked:
                y = _lines(c, p, x, y, width, [key], label_font, p.muted, "left")
                y = _lines(c, p, x, y, width, [value], value_font, p.ink, "left") + p.px(1)
                continue
            labels = wrap(f"{key}:", label_font, width)
            for line in labels[:-1]:
                c.text(x, y, line, label_font, p.muted)
                y += p.line_h(label_font)
            label_right = x + text_width(label_font, labels[-1])
            c.text(x, y, labels[-1], label_font, p.muted)
            need = text_width(value_font, value)
            if values_right and label_right + gap + need <= x + width:
                c.text(x + width, y, value, value_font, p.ink, "right")
                y += line_h
            elif not values_right and label_right + gap <= value_x and (need <= value_w or value_w >= width / 3):
                y = max(y + line_h, _lines(c, p, value_x, y, value_w, [value], value_font, p.ink, "left"))
            else:  # no room beside the label: the value takes the full width of the next line(s)
                y = _lines(c, p, x, y + p.line_h(label_font), width, [value], value_font, p.ink,
                           "right" if values_right else "left")
    return y


def meta_strip(c: Canvas, p: Page, x: float, y: float, width: float, *, boxed: bool) -> float:
    """invoice_meta as a horizontal strip of cells: small label above a bold value."""
    rows = meta_rows(p)
    cell_w = width / len(rows)
    small, bold = p.font(0.8), p.font(1.0, bold=True)
    inner = p.px(1.5)
    keys = [key.upper() if p.flags.get("upper_meta") else key for key, _ in rows]
    value_y = y + inner + p.line_h(small) * max(len(wrap(k, small, cell_w - 2 * inner)) for k in keys)
    with c.region("invoice_meta"):
        bottom = y
        for i, (key, (_, value)) in enumerate(zip(keys, rows)):
            cx = x + i * cell_w + inner
            _lines(c, p, cx, y + inner, cell_w - 2 * inner, [key], small, p.muted, "left")
            bottom = max(bottom, _lines(c, p, cx, value_y, cell_w - 2 * inner, [value], bold, p.ink, "left"))
        bottom += inner
        if boxed:
            c.rect((x, y, x + width, bottom), outline=p.muted)
            for i in range(1, len(rows)):
                c.vline(x + i * cell_w, y, bottom, p.muted)
        else:
            c.hline(x, x + width, bottom, p.accent, width=max(1, p.px(0.4)))
    return bottom


def table_block(c: Canvas, p: Page, x: float, y: float, width: float, style: str) -> float:
    """line_items_table; style: 'fill' (accent header), 'grid', 'zebra', 'rules', 'lines' or 'plain'
    (no rules at all, the composer's; the named layouts use the first five).

    Long descriptions wrap inside their cell (never truncated, labels must match the page);
    `p.table_scale` shrinks fonts and padding so long tables fit on the page.
    """
    lab, s = p.labels, p.table_scale
    font, bold = p.font(0.95 * s), p.font(0.95 * s, bold=True)
    line_h, pad_x, pad_y = p.line_h(font), max(2, round(font.size * 0.5)), max(1, round(font.size * 0.3 * s))
    header = [lab["description"], lab["qty"], lab["unit_price"], lab["amount"]]
    rows = [(it.description, p.qty(it.quantity), p.money(it.unit_price), p.money(it.line_total))
            for it in p.inv.line_items]
    num_w = [max([text_width(bold, header[k])] + [text_width(font, r[k]) for r in rows]) + 2 * pad_x for k in (1, 2, 3)]
    rights = [x + width - sum(num_w[k + 1:]) for k in range(3)]  # right edge of each numeric column
    desc_w = rights[0] - num_w[0] - x
    header_h = p.line_h(bold) + 2 * pad_y
    rule = p.muted if style in ("grid", "rules") else p.tint
    with c.region("line_items_table"):
        if style == "fill":
            c.rect((x, y, x + width, y + header_h), fill=p.accent)
        head_color = WHITE if style == "fill" else p.ink
        c.text(x + pad_x, y + pad_y, header[0], bold, head_color)
        for k in range(3):
            c.text(rights[k] - pad_x, y + pad_y, header[k + 1], bold, head_color, "right")
        top, yy = y, y + header_h
        if style not in ("fill", "plain"):
            c.hline(x, x + width, yy, p.ink if style != "zebra" else p.accent, width=max(1, p.px(0.3)))
        for i, row in enumerate(rows):
            lines = wrap(row[0], font, desc_w - 2 * pad_x)
            row_h = len(lines) * line_h + 2 * pad_y
            if style == "zebra" and i % 2 == 1:
                c.rect((x, yy, x + width, yy + row_h), fill=p.tint)
            for k, line in enumerate(lines):
                c.text(x + pad_x, yy + pad_y + k * line_h, line, font, p.ink)
            for k in range(3):
                c.text(rights[k] - pad_x, yy + pad_y, row[k + 1], font, p.ink, "right")
            yy += row_h
            if style in ("grid", "fill", "lines") and i < len(rows) - 1:
                c.hline(x, x + width, yy, rule)
        if style != "plain":
            c.hline(x, x + width, yy, p.ink if style != "zebra" else p.accent, width=max(1, p.px(0.3)))
        if style == "grid":
            c.rect((x, top, x + width, yy), outline=p.muted)
            for edge in (rights[0] - num_w[0], rights[0], rights[1]):
                c.vline(edge, top, yy, p.muted)
    return yy


def receipt_table_block(c: Canvas, p: Page, x: float, y: float, width: float, *, dashed: bool = False) -> float:
    """line_items_table as a till receipt prints it, for columns too narrow for four: each item's
    description with its line total flush right, then 'quantity x unit price' below it."""
    lab, s = p.labels, p.table_scale
    font, bold, small = p.font(0.95 * s, bold=False), p.font(0.95 * s, bold=True), p.font(0.85 * s)
    line_h, indent, rule_w = p.line_h(font), p.px(2.5), max(1, p.px(0.3))
    with c.region("line_items_table"):
        c.text(x, y, lab["description"], bold, p.ink)
        c.text(x + width, y, lab["amount"], bold, p.ink, "right")
        y += p.line_h(bold)
        _rule(c, x, x + width, y, p.ink, rule_w, p.px(1.5) if dashed else 0)
        y += rule_w + p.px(1)
        for item in p.inv.line_items:
            amount = p.money(item.line_total)
            lines = wrap(item.description, font, width - text_width(font, amount) - p.px(3))
            c.text(x + width, y, amount, font, p.ink, "right")
            for line in lines:
                c.text(x, y, line, font, p.ink)
                y += line_h
            y = _lines(c, p, x + indent, y, width - indent,
                       [f"{p.qty(item.quantity)} x {p.money(item.unit_price)}"], small, p.muted, "left") + p.px(0.6)
        _rule(c, x, x + width, y, p.ink, rule_w, p.px(1.5) if dashed else 0)
    return y + rule_w


def _rule(c: Canvas, x0: float, x1: float, y: float, fill: Color, width: int, dash: int) -> None:
    """A horizontal rule, solid or (dash > 0) dashed as on thermal receipts."""
    if dash <= 0:
        c.hline(x0, x1, y, fill, width=width)
        return
    x = x0
    while x < x1:
        c.hline(x, min(x + dash, x1), y, fill, width=width)
        x += 2 * dash


def totals_rows(p: Page) -> list[tuple[str, str]]:
    inv, lab = p.inv, p.labels
    rate = p.qty(inv.tax_rate)
    tax = f"{lab['tax']} ({rate}%)" if p.language in ("en", "ja") else f"{lab['tax']} {rate} %"
    total = f"{lab['total']} ({inv.currency})" if p.flags.get("total_code") else lab["total"]
    return [(lab["subtotal"], p.money(inv.subtotal)), (lab["discount"], p.money(inv.discount)),
            (tax, p.money(inv.tax_amount)), (total, p.money(inv.total))]


def totals_width(p: Page) -> int:
    rows, big = totals_rows(p), p.font(1.15, bold=True)
    return round(max(text_width(big, k) + text_width(big, v) for k, v in rows) + p.px(12))


def totals_min_width(p: Page, style: str) -> int:
    """Narrowest totals block whose labels and amounts do not touch (a layout's width cap
    must not go below this, e.g. for 'Totale da pagare (EUR)' next to a five-digit total)."""
    rows, font, big = totals_rows(p), p.font(1.0), p.font(1.15, bold=True)
    fonts = [font] * (len(rows) - 1) + [big]
    if style == "grid":
        keys = max(text_width(f, k) for f, (k, _) in zip(fonts, rows))
        return round(keys + max(text_width(big, v) for _, v in rows) + 4 * p.px(1.2) + p.px(2))
    inner = p.px(2) if style == "box" else 0
    return round(max(text_width(f, k) + text_width(f, v) for f, (k, v) in zip(fonts, rows)) + p.px(3) + 2 * inner)


def totals_block(c: Canvas, p: Page, x: float, y: float, width: float, style: str) -> float:
    """totals_section: subtotal, discount, tax with rate, bold total; style 'rule', 'box' or 'grid'."""
    rows = totals_rows(p)
    font, big = p.font(1.0), p.font(1.15, bold=True)
    if style == "grid":
        return _totals_grid(c, p, rows, x, y, width, font, big)
    inner = p.px(2) if style == "box" else 0
    with c.region("totals_section"):
        if style == "box":  # the shaded panel goes under the text, so its height is computed first
            height = 2 * inner + 3 * p.line_h(font) + p.line_h(big) + p.px(1.5)
            c.rect((x, y, x + width, y + height), fill=p.tint)
        y += inner
        for i, (key, value) in enumerate(rows):
            last = i == len(rows) - 1
            f = big if last else font
            if last:
                y += p.px(0.8)
                c.hline(x + inner, x + width - inner, y - p.px(0.6), p.ink, width=max(1, p.px(0.3)))
            c.text(x + inner, y, key, f, p.ink if last else p.muted)
            c.text(x + width - inner, y, value, f, p.ink, "right")
            y += p.line_h(f)
        y += inner
        if style == "rule" and p.flags.get("double_rule"):
            c.hline(x, x + width, y, p.ink)
            c.hline(x, x + width, y + 3, p.ink)
            y += 4
    return y


def _totals_grid(c: Canvas, p: Page, rows, x: float, y: float, width: float, font, big) -> float:
    """Totals as a framed two-column grid, one cell row per amount."""
    pad = p.px(1.2)
    split = x + width - max(text_width(big, v) for _, v in rows) - 2 * pad
    with c.region("totals_section"):
        top = y
        for i, (key, value) in enumerate(rows):
            f = big if i == len(rows) - 1 else font
            c.text(x + pad, y + pad, key, f, p.ink)
            c.text(x + width - pad, y + pad, value, f, p.ink, "right")
            y += p.line_h(f) + 2 * pad
            if i < len(rows) - 1:
                c.hline(x, x + width, y, p.muted)
        c.rect((x, top, x + width, y), outline=p.muted)
        c.vline(split, top, y, p.muted)
    return y


def footer(c: Canvas, p: Page) -> None:
    """Thank-you line and page number at the bottom margin (outside every region)."""
    font = p.font(0.8)
    y = p.height - p.margin * 0.6 - p.line_h(font)
    c.hline(p.margin, p.width - p.margin, y - p.px(2), p.tint)
    c.text(p.margin, y, p.labels["thanks"], font, p.muted)
    c.text(p.width - p.margin, y, p.labels["page"], font, p.muted, "right")


def footer_top(p: Page) -> float:
    return p.height - p.margin * 0.6 - p.line_h(p.font(0.8)) - p.px(2)
