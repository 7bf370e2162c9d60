"""Fonts for the synthetic pages: from matplotlib's package (always present), never assumed system fonts.

matplotlib ships DejaVu Sans/Serif/Sans Mono and STIX General (regular + bold). None of them has
CJK glyphs; a system CJK font is used when `fc-list :lang=ja` finds one. Glyph coverage is read
from each font's cmap (fontTools, a matplotlib dependency) so that a page never shows a tofu box
for a character its label contains.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import matplotlib
import numpy as np
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont

from finscribe.errors import FinScribeError


class GlyphCoverageError(FinScribeError, ValueError):
    """The text to draw has characters that no available font can render."""


@dataclass(frozen=True)
class FontFamily:
    name: str
    regular: Path
    bold: Path


_MPL_TTF = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
_MPL_FAMILIES = {
    "DejaVu Sans": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
    "DejaVu Serif": ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf"),
    "DejaVu Sans Mono": ("DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf"),
    "STIX": ("STIXGeneral.ttf", "STIXGeneralBol.ttf"),
}
FONT_FAMILIES: tuple[str, ...] = tuple(_MPL_FAMILIES)
CJK_FAMILY = "CJK (system)"


def get_family(name: str) -> FontFamily:
    """The regular/bold files of a family in FONT_FAMILIES (or the system CJK family)."""
    if name == CJK_FAMILY:
        path = find_cjk_font()
        if path is None:
            raise GlyphCoverageError("no CJK font on this system (fc-list :lang=ja found none)")
        return FontFamily(name, path, path)
    if name not in _MPL_FAMILIES:
        raise ValueError(f"unknown font family {name!r}; choose one of {', '.join(FONT_FAMILIES)}")
    regular, bold = (_MPL_TTF / f for f in _MPL_FAMILIES[name])
    if not regular.is_file():
        raise FileNotFoundError(f"{regular}: matplotlib's bundled font is missing; reinstall matplotlib")
    return FontFamily(name, regular, bold)


@cache
def find_cjk_font() -> Path | None:
    """A system font with Japanese glyphs (via fontconfig), or None where there is none."""
    if shutil.which("fc-list") is None:
        return None
    result = subprocess.run(["fc-list", ":lang=ja", "file"], capture_output=True, text=True, check=False)
    files = sorted(line.split(":")[0].strip() for line in result.stdout.splitlines() if line.strip())
    # Prefer plain .ttf/.otf (single face) over collections for the PDF text layer.
    files.sort(key=lambda f: (f.lower().endswith(".ttc"), f))
    return Path(files[0]) if files else None


@cache
def _cmap(path: Path) -> frozenset[int]:
    with TTFont(str(path), fontNumber=0, lazy=True) as font:
        return frozenset(font["cmap"].getBestCmap())


@cache
def _coverage(family: FontFamily) -> frozenset[int]:
    return _cmap(family.regular) & _cmap(family.bold)


def missing_glyphs(family: FontFamily, text: str) -> str:
    """The characters of `text` (other than whitespace) that the family's fonts lack, sorted."""
    need = {ord(c) for c in text if not c.isspace()}
    lacking = need - _coverage(family)
    return "".join(sorted(chr(c) for c in lacking))


def families_covering(text: str) -> list[str]:
    """Families (FONT_FAMILIES order, then the system CJK font) that can draw all of `text`."""
    names = [n for n in FONT_FAMILIES if not missing_glyphs(get_family(n), text)]
    if not names and find_cjk_font() is not None and not missing_glyphs(get_family(CJK_FAMILY), text):
        names.append(CJK_FAMILY)
    return names


@lru_cache(maxsize=512)
def load_font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    """A cached PIL font: loading a TTF costs ~1 ms, a page uses a dozen (path, size) pairs."""
    return ImageFont.truetype(str(path), size=size, layout_engine=ImageFont.Layout.BASIC)


# ----------------------------------------------------------------------------- glyph cache
# FreeType rasterises every glyph of every string anew (~7 µs a glyph, the renderer's main
# cost). Invoices use a small alphabet, so each (font, character) is rendered once and strings
# are composed from the cached glyph masks with numpy. Glyphs sit at their hinted advances as
# with PIL's basic layout (which has no kerning either), so the result matches ImageDraw.text.


@dataclass(frozen=True)
class _Glyph:
    mask: np.ndarray | None  # coverage 0..255 of the ink box; None for blank characters
    box: tuple[int, int, int, int]  # ink box relative to the pen position, top = ascender line
    advance: float


@lru_cache(maxsize=1 << 15)
def _glyph(font: ImageFont.FreeTypeFont, char: str) -> _Glyph:
    left, top, right, bottom = font.getbbox(char)
    advance = font.getlength(char)
    if right <= left or bottom <= top:
        return _Glyph(None, (left, top, right, bottom), advance)
    image = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(image).text((-left, -top), char, font=font, fill=255)
    return _Glyph(np.asarray(image), (left, top, right, bottom), advance)


def _placed(font: ImageFont.FreeTypeFont, text: str) -> list[tuple[int, _Glyph]]:
    pen, placed = 0.0, []
    for char in text:
        glyph = _glyph(font, char)
        placed.append((round(pen), glyph))
        pen += glyph.advance
    return placed


@lru_cache(maxsize=1 << 16)
def text_bbox(font: ImageFont.FreeTypeFont, text: str) -> tuple[int, int, int, int]:
    """Ink box (x0, y0, x1, y1) of `text` drawn with its top-left (ascender line) at the origin."""
    boxes = [(x + g.box[0], g.box[1], x + g.box[2], g.box[3]) for x, g in _placed(font, text) if g.mask is not None]
    if not boxes:
        return (0, 0, 0, 0)
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


@lru_cache(maxsize=4096)
def text_mask(font: ImageFont.FreeTypeFont, text: str) -> Image.Image:
    """`text` as an 'L' coverage mask the size of `text_bbox` (cached: labels repeat on every page)."""
    left, top, right, bottom = text_bbox(font, text)
    canvas = np.zeros((max(1, bottom - top), max(1, right - left)), dtype=np.uint8)
    for x, glyph in _placed(font, text):
        if glyph.mask is not None:
            x0, y0 = x + glyph.box[0] - left, glyph.box[1] - top
            cell = canvas[y0 : y0 + glyph.mask.shape[0], x0 : x0 + glyph.mask.shape[1]]
            np.maximum(cell, glyph.mask, out=cell)
    return Image.fromarray(canvas, "L")
