"""Options of the page path (detect the regions → crop each → extract → merge) that `evaluate --pages`,
`compare --pages` and the single-document scripts share (torch-free: `--help` builds from here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from finscribe.config import arg

# finscribe.detection.DEFAULT_LAYOUT_MODEL / DEFAULT_MARGIN, spelled here without importing torch
# (instant --help); tests/test_pages.py checks that they agree.
TINY_LAYOUT = Path(__file__).resolve().parents[1] / "assets" / "tiny_layout"
PAGE_MARGIN = 0


@dataclass
class DetectorArgs:
    layout_model: Path = arg(TINY_LAYOUT, "region detector folder (written by `finscribe train-layout`; default: the "
                                          "committed tiny detector) that finds the five regions on a page")
    margin: int = arg(PAGE_MARGIN, "page pixels each region's box is widened by on every side before it is cropped "
                                   "(default 0: a snapped box holds its ink plus 7 px, like the crops models are "
                                   "fine-tuned on; 12 px more cost 12-14 points of field accuracy)")
    snap: bool = arg(True, "move each detected box's edges to where the ink it holds ends "
                                "(finscribe.snap.snap_to_ink); --no-snap keeps the detector's boxes")

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise ValueError("--margin must be >= 0")
