"""One set of image-size limits, shared by `finscribe build-dataset` and the service.

* `MIN_SIDE`: the processor's patch size (14 px × merge 2); a smaller side cannot be encoded.
* `MAX_PIXELS`: the most pixels an image may have, checked from its header before any pixel is
  decoded (decompression bombs). 40 MP takes an A4 page scanned at 600 dpi (4961×7016 ≈ 34.8 MP).
* `PROCESSOR_MAX_PIXELS`: PaddleOCR-VL's own `max_pixels` (preprocessor_config.json). The
  processor resizes any larger image down to this area, so an image above it is accepted and
  downscaled to it (`downscale`) rather than refused: the model sees the same thing, and training
  does not decode a 35 MP scan every step.
* `MAX_ASPECT`: the processor refuses images longer than 200:1; longer strips are padded with
  white to fit (`finscribe.ingest.fit_for_model`).
* `MIN_READABLE_SIDE`: an image (page, crop, region box) with a side under this cannot hold a line
  of text and is refused wherever it comes in; between it and `MIN_SIDE` the processor scales the
  image up itself (the tiny reader reads 18 px lines).
"""

from __future__ import annotations

import math

from PIL import Image

MIN_SIDE = 28
MAX_PIXELS = 40_000_000
PROCESSOR_MAX_PIXELS = 2_822_400
MAX_ASPECT = 200
MIN_READABLE_SIDE = 8


def downscaled_size(width: int, height: int, max_pixels: int = PROCESSOR_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) scaled by one factor so that width × height ≤ max_pixels (unchanged if it is)."""
    if width * height <= max_pixels:
        return width, height
    factor = math.sqrt(max_pixels / (width * height))
    return max(1, math.floor(width * factor)), max(1, math.floor(height * factor))


def downscale(image: Image.Image, max_pixels: int = PROCESSOR_MAX_PIXELS) -> Image.Image:
    """`image` resized (Lanczos, aspect kept) to at most `max_pixels`; the same object if already small."""
    size = downscaled_size(image.width, image.height, max_pixels)
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)
