"""Pages sent without boxes: held small, detected in the model thread, cut into region crops.

    detector = PageDetector.load("finscribe/assets/tiny_layout", threshold=0.3, margin=0)
    pending = pending_page(page, "page 1", detector.input_size)   # in the decode thread
    [(crops, found)] = detector.split([pending])                     # in the model thread, batched

A page to detect is not cut at intake (its boxes are not known yet), so it waits in the queue as a
`PendingPage`: the page downscaled to at most `KEEP_PIXELS` (what its crops are cut from) and a
smaller copy for the detector (at most twice the detector's input per side). A 40 MP scan is
therefore never held, converted or handed to the detector at full size, and what it holds is
counted in the server's decoded-pixel budget (`PendingPage.held_bytes`). Boxes come back in the
page's own pixels (what the client sent, whatever was downscaled); crops are widened by `margin`
page pixels (`finscribe.detection.widen_box`), then fitted for the model like any crop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from finscribe.data.schema import REGIONS
from finscribe.detection import (
    DEFAULT_LAYOUT_MODEL,
    DEFAULT_MARGIN,
    DetectionError,
    detect_regions,
    input_size,
    load_detector,
    widen_box,
)
from finscribe.ingest import IngestError, fit_for_model
from finscribe.limits import MIN_READABLE_SIDE, PROCESSOR_MAX_PIXELS, downscale

# A region covering a third of the page still reaches the reader's processor cap from a page held
# at this size (an A4 page at ~290 dpi), so holding more would only cost memory.
KEEP_PIXELS = 3 * PROCESSOR_MAX_PIXELS
DETECT_OVERSIZE = 2  # the detector's copy is at most this many times its input size per side
Crop = tuple[str, Image.Image, list[int]]  # (region, model-ready crop, pixel box on the page)


@dataclass
class PendingPage:
    """A page waiting for detection: `size` is the page's own (width, height), the coordinates of
    every box in the answer; `page` and `detect_image` are downscaled copies."""

    size: tuple[int, int]
    page: Image.Image
    detect_image: Image.Image
    what: str

    def held_bytes(self) -> int:
        # Pillow stores "L" in 1 byte a pixel and RGB in 4 (normalised pages are one or the other)
        return sum(image.width * image.height * (1 if image.mode == "L" else 4) for image in (self.page, self.detect_image))


def pending_page(page: Image.Image, what: str, detector_input: tuple[int, int]) -> PendingPage:
    """`page` (full resolution, normalised) → a PendingPage; a side under MIN_READABLE_SIDE is a 422."""
    width, height = page.size
    if min(width, height) < MIN_READABLE_SIDE:
        raise IngestError(422, f"{what} is {width}x{height} pixels: too small to read, rejected; "
                               f"each side must be at least {MIN_READABLE_SIDE} px (send a larger scan)")
    kept = downscale(page, KEEP_PIXELS)
    limit = (DETECT_OVERSIZE * detector_input[0], DETECT_OVERSIZE * detector_input[1])
    scale = min(1.0, limit[0] / width, limit[1] / height)
    small = (max(1, round(width * scale)), max(1, round(height * scale)))
    detect_image = kept if small == kept.size else kept.resize(small, Image.Resampling.BILINEAR)
    return PendingPage((width, height), kept, detect_image, what)


def _scaled(box: tuple[int, ...], sx: float, sy: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A box scaled by (sx, sy), rounded outward (a detected box never shrinks), clamped to `size`."""
    x0, y0, x1, y1 = box
    return (max(0, math.floor(x0 * sx)), max(0, math.floor(y0 * sy)),
            min(size[0], math.ceil(x1 * sx)), min(size[1], math.ceil(y1 * sy)))


@dataclass
class PageDetector:
    """The region detector the service runs on pages sent without boxes, with its options."""

    model: Any
    processor: Any
    name: str
    threshold: float = 0.3
    margin: int = DEFAULT_MARGIN
    batch_size: int = 8
    snap: bool = True

    @classmethod
    def load(cls, path: str | Path = DEFAULT_LAYOUT_MODEL, *, device: str | None = "cpu", threshold: float = 0.3,
             margin: int = DEFAULT_MARGIN, batch_size: int = 8, snap: bool = True) -> PageDetector:
        """A detector folder (`finscribe train-layout`); a bad one is a DetectionError naming it."""
        if not 0.0 <= threshold <= 1.0:
            raise DetectionError(f"--detect-threshold must be between 0 and 1, got {threshold}")
        if margin < 0:
            raise DetectionError(f"--margin must be >= 0 pixels, got {margin}")
        if device is None:  # as the reader's default: the GPU when there is one
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        model, processor = load_detector(path, device=device)
        # Named by folder only: responses never carry server paths.
        return cls(model, processor, Path(path).name, threshold, margin, max(1, batch_size), snap)

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) the detector's processor feeds the model."""
        return input_size(self.processor)

    def info(self) -> dict[str, Any]:
        return {"layout_model": self.name, "detect_threshold": self.threshold, "margin": self.margin, "snap": self.snap,
                "detector_input": list(self.input_size)}

    def split(self, pages: list[PendingPage]) -> list[tuple[list[Crop], dict[str, Any]]]:
        """Detect all `pages` (batched) → per page: (crops of the regions found, what was found).

        What was found: {"boxes": detected boxes, "scores", "missing", "detected_on": [w, h]}, boxes
        in page pixels. A crop that cannot be read (a side under MIN_READABLE_SIDE after widening)
        is not extracted: its region is listed as missing, like one not found."""
        found = detect_regions(self.model, self.processor, [p.detect_image for p in pages],
                               threshold=self.threshold, batch_size=self.batch_size, snap=self.snap)
        results = []
        for pending, regions in zip(pages, found, strict=True):
            (width, height), small, kept = pending.size, pending.detect_image.size, pending.page.size
            crops: list[Crop] = []
            boxes: dict[str, list[int]] = {}
            missing = list(regions.missing)
            for region, box in regions.boxes.items():
                page_box = _scaled(box, width / small[0], height / small[1], pending.size)
                crop_box = widen_box(page_box, pending.size, self.margin)
                on_kept = _scaled(crop_box, kept[0] / width, kept[1] / height, kept)
                if min(on_kept[2] - on_kept[0], on_kept[3] - on_kept[1]) < MIN_READABLE_SIDE:
                    missing.append(region)
                    continue
                crops.append((region, fit_for_model(pending.page.crop(on_kept), f"the {region} of {pending.what}"),
                              list(crop_box)))
                boxes[region] = list(page_box)
            results.append((crops, {"boxes": boxes, "scores": {r: round(regions.scores[r], 4) for r in boxes},
                                    "missing": [r for r in REGIONS if r in missing], "detected_on": list(small)}))
        return results
