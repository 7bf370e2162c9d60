"""`finscribe detect` options (torch-free: `--help` builds its parser from here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from finscribe.config import arg

# = finscribe.detection.DEFAULT_LAYOUT_MODEL / DEFAULT_MARGIN (not imported: that brings torch);
# tests/test_detect.py checks that they agree.
DEFAULT_LAYOUT_MODEL = Path(__file__).resolve().parent / "assets" / "tiny_layout"
DEFAULT_MARGIN = 0
DOCUMENT_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".pdf")


@dataclass
class DetectConfig:
    input: Path = arg(help="a page image (PNG, JPEG, TIFF) or PDF, or a folder of them (searched recursively)", path="any")
    output_dir: Path = arg(Path("detected"), "where crops/, previews/, boxes.jsonl and crops.jsonl go")
    layout_model: Path = arg(DEFAULT_LAYOUT_MODEL, "region detector folder (finscribe train-layout; default: the committed tiny detector)")
    margin: int = arg(DEFAULT_MARGIN, "pixels each crop is widened by on every side (default 0: a snapped box already "
                                          "holds its ink plus 7 px, like the generator's crops that models are fine-tuned on)")
    threshold: float = arg(0.3, "lowest detector score a region's box may have; below it the region is reported missing")
    batch_size: int = arg(8, "pages per detector forward pass")
    snap: bool = arg(True, "move each detected box's edges to where the ink it holds ends "
                                "(finscribe.snap.snap_to_ink); --no-snap keeps the detector's boxes")

    def __post_init__(self):
        if self.margin < 0:
            raise ValueError(f"--margin must be >= 0, got {self.margin}")
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"--threshold must be in [0, 1], got {self.threshold}")
