"""Render a `schema.Invoice` as a page image with pixel boxes for the five regions, and as a PDF.

    from finscribe.synthetic.renderer import render_invoice, render_pdf
    page = render_invoice(invoice, "classic", dpi=100, page_size="A4", seed=7)
    page.image.save("page.png"); page.boxes["totals_section"]  # (x0, y0, x1, y1)
    render_pdf(page, "page.pdf")  # page image + invisible text layer, like an OCR'd scan

Amounts, dates and quantities are printed in the invoice's locale (`locale_format.py`), the
labels stay canonical. Everything that varies (font family when not given, margins, accent
colour, wording, small style switches) comes from `seed` through a local `random.Random`.
Tables never lose rows: fonts shrink first, then the page grows taller (a receipt-like page).
"""

from __future__ import annotations

import datetime as dt
import io
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import TextMode
from PIL import Image

import finscribe.synthetic.locale_format as lf
from finscribe.data.schema import REGIONS, Invoice, get_currency
from finscribe.fileio import atomic_file
from finscribe.synthetic.blocks import footer, footer_top
from finscribe.synthetic.canvas import Box, Canvas, Page, TextSpan
from finscribe.synthetic.composer import COMPOSED_FAMILIES, compose
from finscribe.synthetic.fonts import (
    FONT_FAMILIES,
    GlyphCoverageError,
    families_covering,
    find_cjk_font,
    get_family,
    missing_glyphs,
)
from finscribe.synthetic.layouts import LAYOUT_FUNCTIONS, LAYOUTS

__all__ = ["COMPOSED_FAMILIES", "FONT_FAMILIES", "LAYOUTS", "PAGE_SIZES", "GlyphCoverageError", "RenderedPage", "TextSpan",
           "render_invoice", "render_pdf"]

PAGE_SIZES: dict[str, tuple[float, float]] = {"A4": (210.0, 297.0), "Letter": (215.9, 279.4)}  # mm
# Table font scales tried in order before the page is made taller; table text never goes below
# MIN_TABLE_PT (printed invoices rarely use smaller type, and OCR of smaller type is not the task).
TABLE_SCALES = (1.0, 0.88, 0.78, 0.7)
MIN_TABLE_PT = 6.5
# CreationDate of a PDF whose page carries no invoice date: fpdf2 would write the current time,
# and the same invoice must give the same bytes on every run.
FIXED_PDF_DATE = dt.date(2024, 1, 1)
ACCENTS = ((31, 56, 100), (0, 92, 104), (122, 30, 48), (30, 82, 52), (52, 52, 58), (78, 42, 112), (112, 62, 22))


@dataclass(frozen=True)
class RenderedPage:
    image: Image.Image  # RGB
    boxes: dict[str, Box]  # region -> (x0, y0, x1, y1), PIL crop convention, padded, inside the page
    spans: list[TextSpan]  # every drawn string with its ink box
    layout: str
    font_family: str
    dpi: int
    invoice_date: dt.date | None = None  # the PDF's creation date (render_pdf), for byte-identical PDFs
    page_size: str | None = None  # "A4", "Letter" or, for composed families, also "Receipt80"

    def save(self, fp: str | os.PathLike, format: str | None = None, **params) -> None:
        """Save the page image (`PIL.Image.save`): `render_invoice(data).save("invoice.png")`."""
        self.image.save(fp, format, **params)


def _invoice_text(inv: Invoice) -> str:
    parts = [inv.invoice_number, inv.payment_terms or "", inv.currency, get_currency(inv.currency).symbol,
             "0123456789.,:-/%()'"]
    for party in (inv.vendor, inv.client):
        parts += [party.name, party.address, party.tax_id or "", party.email or "", party.phone or ""]
    parts += [item.description for item in inv.line_items]
    return "".join(parts)


def _choose_family(inv: Invoice, font_family: str | None, seed: int) -> str:
    text = _invoice_text(inv)
    if font_family is not None:
        lacking = missing_glyphs(get_family(font_family), text)
        if lacking:
            raise GlyphCoverageError(
                f"invoice {inv.invoice_number}: font family {font_family!r} has no glyph for {lacking!r}; "
                "pass font_family=None to pick a family that covers the text"
            )
        return font_family
    covering = families_covering(text)
    if not covering:
        lacking = missing_glyphs(get_family(FONT_FAMILIES[0]), text)
        hint = "" if find_cjk_font() else " (no CJK font on this system: `fc-list :lang=ja` finds none)"
        raise GlyphCoverageError(
            f"invoice {inv.invoice_number}: no available font can draw {lacking!r}{hint}; "
            "use romanised names/addresses for this locale or install a font that has these glyphs"
        )
    return covering[random.Random(f"font:{seed}").randrange(len(covering))]


def _page(inv: Invoice, layout: str, dpi: int, page_size: str, family: str, seed: int) -> Page:
    rng = random.Random(f"style:{seed}")
    width_mm, height_mm = PAGE_SIZES[page_size]
    fam = get_family(family)
    accent = ACCENTS[rng.randrange(len(ACCENTS))]
    compact = layout == "compact"
    page = Page(
        inv=inv,
        width=round(width_mm / 25.4 * dpi),
        height=round(height_mm / 25.4 * dpi),
        dpi=dpi,
        family=fam,
        labels=lf.labels_for(inv.locale, seed, can_draw=lambda t: not missing_glyphs(fam, t)),
        language=lf.get_locale(inv.locale).language,
        margin=0,
        base_pt=round(rng.uniform(9.0, 10.5) * (0.8 if compact else 1.0) * 4) / 4,
        accent=accent,
        ink=(rng.randint(15, 35),) * 3,
        muted=(rng.randint(75, 100),) * 3,
        tint=tuple(round(255 - (255 - a) * 0.12) for a in accent),
        flags={k: rng.random() < 0.5 for k in ("contact_labels", "upper_meta", "total_code", "double_rule")},
    )
    page.margin = page.px(rng.uniform(10, 13) if compact else rng.uniform(14, 21))
    return page


def render_invoice(invoice: Invoice, layout: str = "classic", *, dpi: int = 100, page_size: str = "A4",
                   font_family: str | None = None, seed: int = 0) -> RenderedPage:
    """Draw `invoice` with `layout` (one of LAYOUTS or COMPOSED_FAMILIES) and return the page,
    region boxes and spans. A composed family draws its own page size from `seed` (`page_size`
    applies to the named layouts; `RenderedPage.page_size` says which was used).

    Raises ValueError for an unknown layout/page size/locale and GlyphCoverageError when no font
    can draw the invoice's text (e.g. Japanese names without a CJK font).
    """
    if layout not in LAYOUT_FUNCTIONS and layout not in COMPOSED_FAMILIES:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS + COMPOSED_FAMILIES)}")
    if page_size not in PAGE_SIZES:
        raise ValueError(f"unknown page size {page_size!r}; choose one of {', '.join(PAGE_SIZES)}")
    if not 30 <= dpi <= 600:
        raise ValueError(f"dpi {dpi} out of range 30..600")
    family = _choose_family(invoice, font_family, seed)
    if layout in COMPOSED_FAMILIES:
        canvas, page, size = compose(invoice, layout, dpi=dpi, font=get_family(family), seed=seed)
        return RenderedPage(image=canvas.image, boxes=_padded_boxes(canvas, page), spans=canvas.spans, layout=layout,
                            font_family=family, dpi=dpi, invoice_date=invoice.invoice_date, page_size=size)
    page = _page(invoice, layout, dpi, page_size, family, seed)
    draw_layout = LAYOUT_FUNCTIONS[layout]

    # Most pages fit at full size, so draw for real at once; otherwise dry runs (measure only)
    # find the table scale that clears the footer, and failing that the page grows taller.
    room = footer_top(page) - page.px(4)
    fits = False
    scales = [s for s in TABLE_SCALES if page.base_pt * 0.95 * s >= MIN_TABLE_PT] or [1.0]
    for attempt, scale in enumerate(scales):
        page.table_scale = scale
        image = Image.new("RGB", (page.width, page.height), (255, 255, 255)) if attempt == 0 else None
        canvas = Canvas(image)
        draw_layout(canvas, page)
        if canvas.bottom <= room:
            fits = True
            break
    if not fits:
        page.height += math.ceil(canvas.bottom - room)
    if image is None or not fits:
        image = Image.new("RGB", (page.width, page.height), (255, 255, 255))
        canvas = Canvas(image)
        draw_layout(canvas, page)
    footer(canvas, page)
    return RenderedPage(image=image, boxes=_padded_boxes(canvas, page), spans=canvas.spans,
                        layout=layout, font_family=family, dpi=dpi, invoice_date=invoice.invoice_date,
                        page_size=page_size)


def _padded_boxes(canvas: Canvas, page: Page) -> dict[str, Box]:
    # A few pixels of padding keep the text inside the box after a small augment rotation.
    pad = max(2, page.px(1.2))
    boxes = {}
    for region in REGIONS:
        x0, y0, x1, y1 = canvas.ink[region]
        boxes[region] = (max(0, x0 - pad), max(0, y0 - pad), min(page.width, x1 + pad), min(page.height, y1 + pad))
    return boxes


def render_pdf(page: RenderedPage, path: str | os.PathLike) -> Path:
    """Write `page` as a one-page PDF: the image plus every span as invisible text (render mode 3),
    so PDF text extraction returns the invoice text as it would for an OCR'd scan. Atomic write.
    The creation date is the invoice date (noon UTC), so the same page always gives the same bytes."""
    path = Path(path)
    scale = 72.0 / page.dpi  # pixels -> PDF points
    pdf = FPDF(unit="pt", format=(page.image.width * scale, page.image.height * scale))
    created = page.invoice_date or FIXED_PDF_DATE
    pdf.set_creation_date(dt.datetime(created.year, created.month, created.day, 12, tzinfo=dt.timezone.utc))
    pdf.set_auto_page_break(False)
    pdf.set_margins(0, 0, 0)
    pdf.add_page()
    jpeg = io.BytesIO()
    page.image.save(jpeg, "JPEG", quality=88)  # scans are stored as JPEG; fpdf2 embeds it as is
    jpeg.seek(0)
    pdf.image(jpeg, x=0, y=0, w=page.image.width * scale, h=page.image.height * scale)
    pdf.add_font("pagefont", fname=str(get_family(page.font_family).regular))
    pdf.text_mode = TextMode.INVISIBLE
    for span in page.spans:
        x0, y0, x1, y1 = span.box
        height = max(1.0, (y1 - y0) * scale)
        pdf.set_font("pagefont", size=height)
        natural = pdf.get_string_width(span.text)
        # Stretch so that the invisible text covers the same width as the drawn ink.
        pdf.set_stretching(100.0 if natural <= 0 else max(10.0, min(400.0, 100.0 * (x1 - x0) * scale / natural)))
        pdf.text(x0 * scale, y1 * scale - 0.15 * height, span.text)
    with atomic_file(path) as tmp:
        pdf.output(str(tmp))
    return path
