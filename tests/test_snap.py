"""finscribe.snap: a detected box moves to the ink it holds (plus the generator's padding), takes in
a tinted panel or an outline frame that is its region, and stays put when the ink says nothing."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from finscribe.snap import SNAP_MIN_AGREEMENT, _percentile, iou, snap_to_ink

# An A4 page at 150 dpi (the scale the snap constants are given at): 1240 x 1754, pad 7 px.
PAD = 7


def _page_with_blocks(*blocks, fill=0):
    """A white A4 page at 150 dpi with each block (x0, y0, x1, y1) drawn as text-like lines."""
    page = Image.new("RGB", (1240, 1754), "white")
    draw = ImageDraw.Draw(page)
    for x0, y0, x1, y1 in blocks:
        for top in range(y0, y1, 24):  # 16-px lines, 8-px leading: one block of ink to the snap
            draw.rectangle((x0, top, x1 - 1, min(top + 16, y1) - 1), fill=(fill, fill, fill))
    return page


def test_snap_moves_each_edge_to_the_ink_the_box_holds():
    page = _page_with_blocks((200, 300, 600, 448))
    truth = (200 - PAD, 300 - PAD, 600 + PAD, 448 + PAD)
    for off in ((12, -10, -9, 14), (-12, 9, 10, -8), (0, 0, 0, 0)):
        box = tuple(t + d for t, d in zip(truth, off))
        assert snap_to_ink(page, box) == truth, off


def test_snap_keeps_a_neighbouring_block_across_a_blank_band_out():
    # A second block 22 px below and one 25 px to the right: the box reaches 5 px into each.
    page = _page_with_blocks((200, 300, 600, 448), (200, 470, 600, 600), (625, 300, 900, 448))
    box = (196, 296, 630, 475)
    assert snap_to_ink(page, box) == (200 - PAD, 300 - PAD, 600 + PAD, 448 + PAD)


def test_snap_counts_a_light_panel_as_ink_and_leaves_a_blank_or_straying_box_alone():
    page = _page_with_blocks((200, 300, 600, 448), fill=225)  # a light grey panel, 30 levels under paper
    assert snap_to_ink(page, (190, 290, 610, 445)) == (200 - PAD, 300 - PAD, 600 + PAD, 448 + PAD)
    blank = Image.new("RGB", (1240, 1754), "white")
    assert snap_to_ink(blank, (100, 100, 300, 200)) == (100, 100, 300, 200)
    # The box holds a sliver of a large block's corner: the block is not inside, so nothing is kept.
    big = _page_with_blocks((100, 100, 1100, 900))
    assert snap_to_ink(big, (1080, 880, 1200, 1000)) == (1080, 880, 1200, 1000)


def test_snap_judges_ink_against_the_paper_around_it_under_a_shadow():
    # A scan's shadow: the paper darkens from 255 to 185 across the block's window; the old rule
    # (one paper level per window) read the shadowed paper as ink and grew the box to the search's end.
    page = _page_with_blocks((200, 300, 600, 448))
    pixels = np.asarray(page, dtype=np.float32)
    shade = np.clip((np.arange(page.width) - 150) / 500, 0, 1) * 70
    shaded = np.where(pixels > 128, pixels - shade[None, :, None], pixels)
    page = Image.fromarray(shaded.astype(np.uint8))
    truth = (200 - PAD, 300 - PAD, 600 + PAD, 448 + PAD)
    for off in ((12, -10, -9, 14), (-12, 9, 10, -8)):
        assert snap_to_ink(page, tuple(t + d for t, d in zip(truth, off))) == truth, off


def test_snap_trusts_the_detector_over_a_snap_that_moves_the_box_too_far():
    # Ink 20 px beyond each side edge of a box that is right (scan speckle, a stamp, the block
    # beside it across a narrow gap): taking it in would leave an IoU with the detector's box under
    # SNAP_MIN_AGREEMENT (0.8), so the detector's box stands.
    page = _page_with_blocks((200, 300, 400, 448), (140, 300, 190, 448), (410, 300, 460, 448))
    box = (193, 293, 407, 455)
    assert iou(box, (161 - PAD, 293, 439 + PAD, 455)) < SNAP_MIN_AGREEMENT  # ink as far as the search looks
    assert snap_to_ink(page, box) == box


def test_snap_takes_a_tinted_panel_as_the_region_and_a_sidebar_behind_it_not():
    # A panel only 12 grey levels under the paper (not ink: SNAP_INK_DELTA is 20) with text inside
    # 15 px from its edges: the region is the panel, as the generator draws its box, not the text.
    page = Image.new("RGB", (1240, 1754), "white")
    draw = ImageDraw.Draw(page)
    draw.rectangle((300, 400, 699, 579), fill=(243, 243, 243))
    for top in range(415, 565, 24):
        draw.rectangle((315, top, 684, top + 15), fill=(0, 0, 0))
    assert snap_to_ink(page, (296, 404, 703, 576)) == (300, 400, 700, 580)
    # A sidebar from the page's top to its bottom behind a block: its edges are nowhere near the
    # box, so the box is the block's ink plus the padding.
    sidebar = Image.new("RGB", (1240, 1754), "white")
    draw = ImageDraw.Draw(sidebar)
    draw.rectangle((20, 0, 389, 1753), fill=(232, 232, 232))
    for top in range(415, 565, 24):
        draw.rectangle((60, top, 339, top + 15), fill=(0, 0, 0))
    assert snap_to_ink(sidebar, (55, 410, 346, 578)) == (60 - PAD, 415 - PAD, 340 + PAD, 575 + PAD)


def test_snap_reads_light_text_on_a_dark_band_as_the_ink():
    # A banner: white text on a dark band (the vendor block of banner layouts). The detector's
    # box cuts the longest line's end; the snap takes it in.
    page = Image.new("RGB", (1240, 1754), "white")
    draw = ImageDraw.Draw(page)
    draw.rectangle((0, 0, 1239, 400), fill=(120, 30, 50))
    for top, right in zip(range(100, 250, 24), (500, 620, 480, 560, 590, 450)):
        draw.rectangle((120, top, right - 1, top + 15), fill=(255, 255, 255))
    assert snap_to_ink(page, (112, 95, 610, 247)) == (120 - PAD, 100 - PAD, 620 + PAD, 236 + PAD)


def _framed_page(frame, text_right, *, fill=(150, 150, 150)):
    """A white A4 page with a 1-px outline frame (x0, y0, x1, y1) in grey and text lines inside it,
    15 px from its left, top and bottom, ending at `text_right` (a left-aligned block in a wide box)."""
    page = Image.new("RGB", (1240, 1754), "white")
    draw = ImageDraw.Draw(page)
    draw.rectangle(frame, outline=fill)
    x0, y0, x1, y1 = frame
    for top in range(y0 + 15, y1 - 15 - 15, 24):
        draw.rectangle((x0 + 15, top, text_right - 1, top + 15), fill=(0, 0, 0))
    return page


def test_snap_completes_an_outline_frame_whose_three_sides_the_detector_found():
    # Meta in a framed box twice as wide as its text (the banner family, which no training saw): the
    # detector's box stops where the text does; its left, top and bottom are the frame's.
    frame = (650, 300, 1190, 440)
    page = _framed_page(frame, text_right=960)
    truth = (650 - PAD, 300 - PAD, 1191 + PAD, 441 + PAD)  # the frame's pixels, padded like ink
    for box in ((648, 302, 975, 438), (655, 296, 990, 444)):
        assert iou(box, truth) < SNAP_MIN_AGREEMENT  # the plain snap would be refused
        assert snap_to_ink(page, box) == truth, box
    # The same frame, found whole: the same box.
    assert snap_to_ink(page, (652, 301, 1186, 440)) == truth


def test_snap_takes_no_frame_that_the_detector_did_not_find_three_sides_of():
    # A frame around the whole page body (a border) with a block inside: the detector's box agrees
    # with none of its sides, so the block's ink is the region, not the border.
    page = _framed_page((40, 40, 1200, 1700), text_right=600)
    for top in range(55, 1700 - 45, 24):  # leave only one block: blank the border's other lines
        ImageDraw.Draw(page).rectangle((41, top, 1199, top + 15), fill="white")
    for top in range(300, 448, 24):
        ImageDraw.Draw(page).rectangle((200, top, 599, min(top + 16, 448) - 1), fill="black")
    assert snap_to_ink(page, (195, 296, 606, 452)) == (200 - PAD, 300 - PAD, 600 + PAD, 448 + PAD)
    # Filled bars above and below a block are no frame (thicker than SNAP_FRAME_THICK).
    bars = _page_with_blocks((200, 300, 600, 448))
    draw = ImageDraw.Draw(bars)
    draw.rectangle((180, 270, 900, 281), fill=(60, 60, 60))
    draw.rectangle((180, 466, 900, 477), fill=(60, 60, 60))
    assert snap_to_ink(bars, (193, 294, 607, 455)) == (200 - PAD, 300 - PAD, 600 + PAD, 448 + PAD)


def test_the_snaps_percentile_is_numpys_to_the_bit():
    """The snap's statistics (median, 75th and 90th percentiles of a window, per row and per column)
    come from np.partition for speed; they must be np.percentile's numbers exactly, or the snapped
    boxes (and the measured figures) would drift."""
    rng = np.random.default_rng(0)
    for trial in range(300):
        window = rng.integers(0, 256, tuple(rng.integers(1, 120, 2))).astype(np.uint8)
        if trial % 3 == 0:  # mostly paper: many ties, as on a page
            window = np.clip(window, 200, 255)
        for q in (10, 25, 33.3, 50, 75, 90):
            for axis in (None, 0, 1):
                assert np.array_equal(_percentile(window, q, axis=axis), np.percentile(window, q, axis=axis)), (trial, q, axis)
        assert _percentile(window, 50) == np.median(window)
