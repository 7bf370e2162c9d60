"""Boxes → ink: a detected region's box moved to the ink it holds, as the generator's boxes are.

The detector sees the page at 384×512, so one of its pixels is ~3.4 page pixels (A4, 150 dpi)
and its edges land 3-7 px off at the median, 15-50 px at the 90th percentile (measured on 100
pages of seed 770001 with the committed detector). A region's box is its text plus a small
padding, and the text is on the page: each edge is moved to where the ink the box holds ends.
A tinted panel and an outline frame are part of their region, as the generator draws them.
Constants are page pixels at SNAP_REFERENCE_SIDE (an A4 page's long side at 150 dpi), scaled to
the page; they were tuned on seed 770001 (benchmarks/layout.py tests on seed 990001).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps
from scipy.ndimage import maximum_filter

SNAP_REFERENCE_SIDE = 1754
SNAP_SEARCH = 32    # how far outside the detected box ink is looked for
SNAP_GAP = 14       # a blank band at least this wide separates two blocks (lines within one are closer)
SNAP_PAD = 7        # padding around the ink, as the synthetic pages' true boxes have it
SNAP_INK_DELTA = 20  # ink: this much darker than the paper (see _paper_level); light panels count
SNAP_TILE = 8       # the paper's level is measured per tile of this side (its mean) ...
SNAP_PAPER_TILES = 5  # ... and taken as the brightest of the 5×5 tiles around each pixel
SNAP_PANEL_DELTA = 6  # a panel: rows/columns whose background is this much darker than the paper ...
SNAP_PANEL_REACH = 12  # ... with both edges this close to the detected box's
SNAP_KEEP = 0.3     # a block of ink stays if at least this share of it lies inside the detected box
SNAP_MIN_AGREEMENT = 0.8  # a snapped box overlapping the detected one less than this (IoU) is not trusted
SNAP_FRAME_COVER = 0.9  # a frame's side: a line inked along at least this share of the ink it encloses ...
SNAP_FRAME_THICK = 4    # ... and at most this thick (a filled bar is no frame)


def _ink_runs(profile: np.ndarray, gap: int) -> list[tuple[int, int]]:
    """Runs [start, end) of True in `profile`, joined across blank stretches of at most `gap`."""
    marked = np.flatnonzero(profile)
    if marked.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(marked) > gap)
    starts = np.r_[marked[0], marked[breaks + 1]]
    ends = np.r_[marked[breaks], marked[-1]] + 1
    return list(zip(starts.tolist(), ends.tolist()))


def _percentile(grey: np.ndarray, q: float, axis: int | None = None) -> np.ndarray | float:
    """np.percentile(grey, q, axis=axis) with its default (linear) method for uint8 greys, the same
    numbers from the two order statistics either side of the quantile: over a whole window from its
    256-level histogram, along an axis from np.partition. np.percentile sorts more (its NaN check,
    a copy): those statistics were half of the snap's time (benchmarks/RESULTS.md)."""
    n = grey.size if axis is None else grey.shape[axis]
    quantile = q / 100
    index = (n - 1) * quantile
    low = int(np.floor(index))
    high = min(low + 1, n - 1)
    if axis is None:
        counts = np.cumsum(np.bincount(grey.ravel(), minlength=256))
        a, b = (float(np.searchsorted(counts, k, side="right")) for k in (low, high))
    else:
        part = np.partition(grey, sorted({low, high}), axis=axis)
        a, b = (np.take(part, k, axis=axis).astype(np.float64) for k in (low, high))
    t = index - low
    return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t  # numpy's lerp, both branches


def _paper_level(window: Image.Image, tile: int) -> np.ndarray:
    """Per pixel of the greyscale `window`, the level of the paper around it: the brightest tile
    mean within 2 tiles. A scan's shadow or uneven lighting darkens the paper across a window by
    more than SNAP_INK_DELTA; judged against one level for the whole window, that paper reads as ink
    and the box grows to the end of the search (64 % → 83 % of degraded test pages with every box
    right, benchmarks/RESULTS.md)."""
    means = np.asarray(window.reduce(tile), dtype=np.int16)  # PIL: the mean of each tile, in C
    brightest = maximum_filter(means, size=SNAP_PAPER_TILES, mode="nearest")
    return np.repeat(np.repeat(brightest, tile, axis=0), tile, axis=1)[:window.height, :window.width]


def _kept_span(runs: list[tuple[int, int]], low: int, high: int) -> tuple[int, int] | None:
    """The extent of the runs lying mostly inside [low, high) (at least SNAP_KEEP of each)."""
    kept = [(a, b) for a, b in runs if min(b, high) - max(a, low) >= SNAP_KEEP * (b - a)]
    return (min(a for a, _ in kept), max(b for _, b in kept)) if kept else None


def _panel(background: np.ndarray, low: int, high: int, reach: int) -> np.ndarray:
    """Where this region's tinted panel lies along one axis of the window. `background` is each
    row's (or column's) 90th-percentile grey, which text leaves at the paper's or the panel's level.
    A panel is a stretch at least SNAP_PANEL_DELTA darker than the window's brightest background
    whose two edges both lie within `reach` of the detected box's [low, high): the detector learnt
    the panel's edges, while a sidebar or band behind several blocks ends elsewhere."""
    panel = background < background.max() - SNAP_PANEL_DELTA
    region_panel = np.zeros_like(panel)
    for start, end in _ink_runs(panel, 1):  # contiguous runs
        if abs(start - low) <= reach and abs(end - high) <= reach:
            region_panel[start:end] = True
    return region_panel


def _snapped_span(counts: np.ndarray, background: np.ndarray, low: int, high: int, gap: int, pad: int,
                  reach: int) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Along one axis: the extent of the ink (and panel) kept for the box, and that extent padded
    by `pad`, except at a panel's edge, which is where the region ends (the generator's box is the
    panel's)."""
    panel = _panel(background, low, high, reach)
    span = _kept_span(_ink_runs((counts >= 2) | panel, gap), low, high)
    if span is None:
        return None
    start, end = span
    return span, (start - (0 if panel[start] else pad), end + (0 if panel[end - 1] else pad))


def snap_to_ink(page: Image.Image, box: Sequence[int]) -> tuple[int, int, int, int]:
    """`box` with each edge moved to the end of the ink it holds (plus padding): ink that the box
    cuts is taken in, blank margin is dropped, and a neighbouring block across a blank band stays
    out. A tinted panel counts as the region's ink; light text on a dark band is read as ink.
    Unchanged when the box holds no ink or the result strays too far from it."""
    width, height = page.size
    scale = max(width, height) / SNAP_REFERENCE_SIDE
    search, gap, pad, reach = (max(1, round(v * scale)) for v in (SNAP_SEARCH, SNAP_GAP, SNAP_PAD, SNAP_PANEL_REACH))
    x0, y0, x1, y1 = (int(v) for v in box)
    wx0, wy0, wx1, wy1 = max(0, x0 - search), max(0, y0 - search), min(width, x1 + search), min(height, y1 + search)
    grey = page.crop((wx0, wy0, wx1, wy1)).convert("L")
    pixels = np.asarray(grey)  # uint8, for the percentiles; int16 below, for the arithmetic
    inverted = bool(_percentile(pixels, 50) < 128)
    if inverted:  # light text on a dark band: the text is the light
        grey = ImageOps.invert(grey)
        pixels = np.asarray(grey)
    window = pixels.astype(np.int16)
    level = float(_percentile(pixels, 75))
    paper = np.minimum(level, _paper_level(grey, max(2, round(SNAP_TILE * scale))))
    ink = window < paper - SNAP_INK_DELTA
    bx0, by0, bx1, by1 = x0 - wx0, y0 - wy0, x1 - wx0, y1 - wy0
    top, bottom = by0, by1
    # Columns within the box's rows, then rows within those columns, twice: a neighbour beside
    # the box must not widen its rows, nor one above or below widen its columns.
    for _ in range(2):
        found = _snapped_span(ink[top:bottom].sum(axis=0), _percentile(pixels[top:bottom], 90, axis=0),
                              bx0, bx1, gap, pad, reach)
        if found is None:
            return tuple(box)
        (left, right), columns = found
        found = _snapped_span(ink[:, left:right].sum(axis=1), _percentile(pixels[:, left:right], 90, axis=1),
                              by0, by1, gap, pad, reach)
        if found is None:
            return tuple(box)
        (top, bottom), rows = found
    framed = _frame(page, ink, (left, top, right, bottom), (wx0, wy0), level, inverted, round(SNAP_FRAME_THICK * scale))
    if framed is not None and _sides_near(framed, box, reach) >= 3:
        # The detector found three sides of an outline frame, which the generator (and a person)
        # counts as the region: the fourth side completes it, however far the text inside stops
        # short of it (a left-aligned block in a wide box). No agreement check: a frame is no guess.
        fx0, fy0, fx1, fy1 = framed
        return max(0, fx0 - pad), max(0, fy0 - pad), min(width, fx1 + pad), min(height, fy1 + pad)
    snapped = (max(0, wx0 + columns[0]), max(0, wy0 + rows[0]), min(width, wx0 + columns[1]), min(height, wy0 + rows[1]))
    return snapped if iou(snapped, box) >= SNAP_MIN_AGREEMENT else tuple(box)


def _sides_near(a: Sequence[int], b: Sequence[int], reach: int) -> int:
    """How many of the four edges of boxes `a` and `b` lie within `reach` pixels of each other."""
    return sum(abs(u - v) <= reach for u, v in zip(a, b))


def _line_ink(page: Image.Image, rows: tuple[int, int], level: float, inverted: bool) -> np.ndarray:
    """Per page column: whether any of page rows [start, end) is ink there (a thin horizontal line)."""
    strip = page.crop((0, rows[0], page.width, rows[1])).convert("L")
    if inverted:
        strip = ImageOps.invert(strip)
    return np.asarray(strip, dtype=np.int16).min(axis=0) < level - SNAP_INK_DELTA


def _frame(page: Image.Image, ink: np.ndarray, span: tuple[int, int, int, int], origin: tuple[int, int], level: float,
           inverted: bool, thick: int) -> tuple[int, int, int, int] | None:
    """The outline frame around the kept ink, in page pixels (x0, y0, x1, y1), or None.

    `ink` is the window's ink mask, `span` the kept ink (left, top, right, bottom) in it, `origin`
    the window's top-left on the page. A frame is a thin line just above the ink and one just
    below, each inked along SNAP_FRAME_COVER of the ink's width, that end at the same columns on
    the page, with a vertical line joining them at both ends."""
    left, top, right, bottom = span
    if right - left < 2 * thick or bottom - top < 2 * thick:
        return None
    lines = [(a, b) for a, b in _ink_runs(ink[:, left:right].mean(axis=1) >= SNAP_FRAME_COVER, 1) if b - a <= thick]
    above = [run for run in lines if run[0] <= top + thick]
    below = [run for run in lines if run[1] >= bottom - thick]
    if not above or not below:
        return None
    (ta, tb), (ba, bb) = max(above), min(below)
    if ba <= tb:
        return None
    wx0, wy0 = origin
    middle = wx0 + (left + right) // 2
    ends = []
    for rows in ((wy0 + ta, wy0 + tb), (wy0 + ba, wy0 + bb)):
        run = next(((a, b) for a, b in _ink_runs(_line_ink(page, rows, level, inverted), 2) if a <= middle < b), None)
        if run is None or run[0] > wx0 + left or run[1] < wx0 + right:
            return None
        ends.append(run)
    (x0, x1), (u0, u1) = ends
    if abs(x0 - u0) > 2 * thick or abs(x1 - u1) > 2 * thick:
        return None
    frame = (min(x0, u0), wy0 + ta, max(x1, u1), wy0 + bb)
    sides = np.asarray(page.crop(frame).convert("L"), dtype=np.int16)
    if inverted:
        sides = 255 - sides
    columns = (sides < level - SNAP_INK_DELTA).mean(axis=0) >= SNAP_FRAME_COVER
    if not (columns[:2 * thick].any() and columns[-2 * thick:].any()):
        return None
    return frame


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else 0.0
