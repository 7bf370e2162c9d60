"""The renderer's recording canvas: draws with PIL ImageDraw and records every drawn string as a
`TextSpan` with its pixel box, and the union of the ink of each region. With `image=None` it only
measures (a dry run), which the renderer uses to decide how compact the table must be before
drawing for real. `Page` holds the per-page style; `wrap` breaks text to a width.
"""


from contextlib import contextmanager
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont

import finscribe.synthetic.locale_format as lf
from finscribe.data.schema import Invoice
from finscribe.synthetic.fonts import FontFamily, load_font, text_bbox, text_mask

Box = tuple[int, int, int, int]
Color = tuple[int, int, int]
WHITE: Color = (255, 255, 255)


@dataclass(frozen=True)
class TextSpan:
    """One drawn string and its ink box (x0, y0, x1, y1) in page pixels; region None = outside."""

    text: str
    box: Box
    region: str | None = None


def measure(font: ImageFont.FreeTypeFont, text: str) -> Box:
    """Ink box of `text` drawn at the origin (cached glyph metrics, see fonts.text_bbox)."""
    return text_bbox(font, text)


def text_width(font: ImageFont.FreeTypeFont, text: str) -> int:
    return measure(font, text)[2]


def _union(a: Box | None, b: Box) -> Box:
    return b if a is None else (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


class Canvas:
    def __init__(self, image: Image.Image | None):
        self.image = image
        self.draw = ImageDraw.Draw(image) if image is not None else None
        self.spans: list[TextSpan] = []
        self.ink: dict[str, Box] = {}
        self.bottom = 0  # lowest ink so far: what must fit above the footer
        self._region: str | None = None

    @contextmanager
    def region(self, name: str):
        self._region = name
        try:
            yield
        finally:
            self._region = None

    def _grow(self, box: Box) -> None:
        self.bottom = max(self.bottom, box[3])
        if self._region is not None:
            self.ink[self._region] = _union(self.ink.get(self._region), box)

    def text(self, x: float, y: float, text: str, font: ImageFont.FreeTypeFont, fill: Color,
             align: str = "left") -> Box:
        """Draw `text` with its top-left at (x, y) (x is the right edge / centre for other aligns).
        Blank text draws nothing and records no span."""
        if not text.strip():
            return (round(x), round(y), round(x), round(y))
        left, top, right, bottom = measure(font, text)
        if align != "left":
            x = x - right if align == "right" else x - right / 2
        x, y = round(x), round(y)
        box = (x + left, y + top, x + right, y + bottom)
        if self.image is not None and right > left and bottom > top:
            self.image.paste(fill, (x + left, y + top), text_mask(font, text))
        self.spans.append(TextSpan(text, box, self._region))
        self._grow(box)
        return box

    def rect(self, box: Box, fill: Color | None = None, outline: Color | None = None, width: int = 1,
             track: bool = True) -> None:
        """A rectangle; track=False for page decoration (backgrounds) that is no region's ink."""
        box = tuple(round(v) for v in box)
        if self.draw is not None:
            self.draw.rectangle(box, fill=fill, outline=outline, width=width)
        if track:
            self._grow(box)

    def paste(self, x: float, y: float, mask: Image.Image, fill: Color, text: str | None = None) -> Box:
        """Paint `fill` through `mask` (mode 'L') with its top-left at (x, y): drawn shapes that
        are not plain text, such as a rotated stamp. With `text`, the mask's ink box is recorded
        as that text's span (a stamp's word), so every printed word on the page has a box."""
        x, y = round(x), round(y)
        ink = mask.getbbox() or (0, 0, 0, 0)
        box = (x + ink[0], y + ink[1], x + ink[2], y + ink[3])
        if self.image is not None:
            self.image.paste(fill, (x, y), mask)
        if text is not None:
            self.spans.append(TextSpan(text, box, self._region))
        self._grow(box)
        return box

    def hline(self, x0: float, x1: float, y: float, fill: Color, width: int = 1) -> None:
        self.rect((x0, y, x1, y + width - 1), fill=fill)

    def vline(self, x: float, y0: float, y1: float, fill: Color, width: int = 1) -> None:
        self.rect((x, y0, x + width - 1, y1), fill=fill)


@dataclass
class Page:
    """Everything a layout needs: the invoice, page geometry, fonts, wording and seeded style."""

    inv: Invoice
    width: int
    height: int
    dpi: int
    family: FontFamily
    labels: dict[str, str]
    language: str
    margin: int
    base_pt: float
    accent: Color
    ink: Color
    muted: Color
    tint: Color
    flags: dict[str, bool] = field(default_factory=dict)
    table_scale: float = 1.0

    def px(self, mm: float) -> int:
        return round(mm * self.dpi / 25.4)

    def font(self, scale: float = 1.0, bold: bool = False) -> ImageFont.FreeTypeFont:
        size = max(6, round(self.base_pt * scale * self.dpi / 72))
        return load_font(self.family.bold if bold else self.family.regular, size)

    def line_h(self, font: ImageFont.FreeTypeFont) -> int:
        return round(font.size * 1.3)

    def money(self, amount) -> str:
        return lf.format_amount(amount, self.inv.currency, self.inv.locale)

    def date(self, value) -> str:
        return lf.format_date(value, self.inv.locale)

    def qty(self, value) -> str:
        return lf.format_quantity(value, self.inv.locale)


def wrap(text: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    """Break `text` into lines no wider than `width` (at spaces; inside a word only if it must)."""
    if text_width(font, text) <= width:
        return [text]
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if text_width(font, candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        while text_width(font, word) > width and len(word) > 1:  # an over-long word: cut by characters
            cut = max(1, next((i for i in range(len(word), 0, -1) if text_width(font, word[:i]) <= width), 1))
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    return lines
