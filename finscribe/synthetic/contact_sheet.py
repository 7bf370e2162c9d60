"""One PNG showing a page of every layout (plus a degraded page) to eyeball the synthetic data.

    finscribe contact-sheet --output contact_sheet.png [--seed 0] [--composed 3]

Each thumbnail is captioned with its layout, locale, currency and font; region boxes are
outlined so that a box that misses its text is visible at a glance (--no-boxes hides them).
`--composed N` adds N pages of every composed layout family (composer.py), each from its own seed.
"""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from finscribe.config import arg, parse_config
from finscribe.fileio import atomic_file
from finscribe.synthetic.augment import degrade
from finscribe.synthetic.generator import SUPPORTED_LOCALES, generate_invoice
from finscribe.synthetic.renderer import COMPOSED_FAMILIES, LAYOUTS, render_invoice

_BOX_COLOURS = {"vendor_block": (220, 40, 40), "client_info": (30, 140, 30), "invoice_meta": (30, 80, 220),
                "line_items_table": (200, 120, 0), "totals_section": (150, 40, 180)}


@dataclass
class ContactSheetConfig:
    """Settings of `finscribe contact-sheet`."""

    output: Path = arg(Path("contact_sheet.png"), "PNG file to write")
    seed: int = arg(0, "seed of the invoices shown")
    dpi: int = arg(100, "page resolution before thumbnailing")
    thumb_width: int = arg(420, "thumbnail width in pixels")
    columns: int = arg(4, "thumbnails per row")
    boxes: bool = arg(True, "outline the region boxes")
    composed: int = arg(0, "also show this many pages of every composed layout family (0 = the named layouts only)")


def _thumbnail(image: Image.Image, boxes: dict, caption: str, width: int, narrow: bool = False) -> Image.Image:
    image = image.convert("RGB")
    if boxes:
        image = image.copy()
        draw = ImageDraw.Draw(image)
        for region, box in boxes.items():
            draw.rectangle(tuple(box), outline=_BOX_COLOURS.get(region, (0, 0, 0)), width=3)
    # A narrow receipt is shown at about the scale of a page (80 of 210 mm), not blown up.
    thumb_w = round(width * 0.4) if narrow else width
    height = round(image.height * thumb_w / image.width)
    thumb = image.resize((thumb_w, height), Image.Resampling.LANCZOS)
    tile = Image.new("RGB", (width, height + 36), "white")
    tile.paste(thumb, ((width - thumb_w) // 2, 36))
    ImageDraw.Draw(tile).text((4, 4), caption, fill=(0, 0, 0), font_size=14)
    return tile


def make_contact_sheet(output: Path, seed: int = 0, *, dpi: int = 100, thumb_width: int = 420,
                       columns: int = 4, boxes: bool = True, composed: int = 0) -> Path:
    """Render one invoice per layout (locales rotate) plus a degraded copy, and `composed` pages of
    each composed family; write one PNG."""

    tiles = []
    for k, layout in enumerate(LAYOUTS):
        locale = SUPPORTED_LOCALES[(seed + k) % len(SUPPORTED_LOCALES)]
        invoice = generate_invoice(num_items=3 + (seed + 3 * k) % 10, seed=seed + k, locale=locale)
        page = render_invoice(invoice, layout, dpi=dpi, seed=seed + k)
        caption = f"{layout} · {locale} · {invoice.currency} · {page.font_family}"
        tiles.append(_thumbnail(page.image, page.boxes if boxes else {}, caption, thumb_width))
        if k == 0:
            degraded = degrade(page.image, seed=seed, strength="heavy")
            tiles.append(_thumbnail(degraded, {}, f"{layout} · degraded (heavy)", thumb_width))
    for k, (family, _) in enumerate(itertools.product(COMPOSED_FAMILIES, range(composed))):
        locale = SUPPORTED_LOCALES[(seed + k) % len(SUPPORTED_LOCALES)]
        invoice = generate_invoice(num_items=2 + (seed + 5 * k) % 12, seed=seed + 100 + k, locale=locale)
        page = render_invoice(invoice, family, dpi=dpi, seed=seed + 100 + k)
        caption = f"{family} · {page.page_size} · {locale} · {page.font_family}"
        tiles.append(_thumbnail(page.image, page.boxes if boxes else {}, caption, thumb_width,
                                narrow=page.page_size == "Receipt80"))

    rows = math.ceil(len(tiles) / columns)
    tile_h = max(t.height for t in tiles)  # a long receipt makes its row taller
    sheet = Image.new("RGB", (columns * (thumb_width + 12) + 12, rows * (tile_h + 12) + 12), (200, 200, 200))
    for n, tile in enumerate(tiles):
        sheet.paste(tile, (12 + (n % columns) * (thumb_width + 12), 12 + (n // columns) * (tile_h + 12)))
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(output) as tmp:
        sheet.save(tmp, format="PNG", compress_level=6)
    return output


def main(argv: list[str] | None = None, prog: str = "finscribe contact-sheet") -> int:
    config = parse_config(ContactSheetConfig, argv, prog, __doc__.split("\n\n")[0])
    try:
        path = make_contact_sheet(config.output, config.seed, dpi=config.dpi, thumb_width=config.thumb_width,
                                  columns=config.columns, boxes=config.boxes, composed=config.composed)
    except OSError as err:
        print(f"error: cannot write {config.output}: {err.strerror or err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
