"""The PaddleOCR-VL image processor: torchvision backend vs the PIL backend FinScribe uses.

    python benchmarks/image_processor_backends.py --repeats 20 --threads 1 --output benchmarks/results/image_processor_backends.json

Both are transformers 5 classes (`PaddleOCRVLImageProcessor` = torchvision, `PaddleOCRVLImageProcessorPil`),
configured as the real v1 preprocessor_config.json (min 147,384 / max 2,822,400 pixels, mean = std = 0.5,
bicubic). Per image kind (a small totals crop, a wide crop, an A4 page at 150 dpi, a photo-sized
page): median seconds per call of each, and whether the outputs are equal (image_grid_thw exactly,
pixel_values: max and mean absolute difference, in the normalised [-1, 1] units the model sees).
The torchvision backend needs `torchvision` installed (not a FinScribe dependency).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from finscribe.machine import describe_machine

SETTINGS = dict(min_pixels=147384, max_pixels=2822400, image_mean=[0.5] * 3, image_std=[0.5] * 3)
KINDS = {"totals crop 300x100": (300, 100), "wide crop 900x120": (900, 120), "A4 page 1240x1754": (1240, 1754),
         "photo 3024x4032": (3024, 4032)}


def image(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Text lines on white plus some noise (a scan, not a flat colour that any resampler keeps exactly)."""
    rng = np.random.default_rng(seed)
    pixels = (245 + rng.integers(-10, 10, (size[1], size[0], 3))).clip(0, 255).astype(np.uint8)
    picture = Image.fromarray(pixels)
    draw = ImageDraw.Draw(picture)
    for y in range(6, size[1] - 14, 18):
        draw.text((6, y), "Subtotal 1,234.50  Tax 19% 234.56  Total 1,469.06 EUR", fill="black")
    return picture


def timed(processor, picture: Image.Image, repeats: int) -> tuple[float, dict]:
    out = processor(images=[picture], return_tensors="pt")  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = processor(images=[picture], return_tensors="pt")
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    try:
        import torchvision  # noqa: F401  (the torchvision backend's own dependency; FinScribe does not need it)
    except ImportError:
        print(f"error: this benchmark compares against the torchvision backend: pip install torchvision "
              f"(the build matching torch {torch.__version__})", file=sys.stderr)
        return 2
    from transformers.models.paddleocr_vl.image_processing_paddleocr_vl import PaddleOCRVLImageProcessor
    from transformers.models.paddleocr_vl.image_processing_pil_paddleocr_vl import PaddleOCRVLImageProcessorPil

    torch.set_num_threads(args.threads)
    pil, tv = PaddleOCRVLImageProcessorPil(**SETTINGS), PaddleOCRVLImageProcessor(**SETTINGS)
    rows = []
    for kind, size in KINDS.items():
        picture = image(size)
        pil_s, a = timed(pil, picture, args.repeats)
        tv_s, b = timed(tv, picture, args.repeats)
        same_grid = torch.equal(a["image_grid_thw"], b["image_grid_thw"])
        diff = (a["pixel_values"] - b["pixel_values"]).abs() if same_grid else None
        rows.append({"image": kind, "grid_thw": a["image_grid_thw"][0].tolist(), "pil_ms": round(pil_s * 1000, 2),
                     "torchvision_ms": round(tv_s * 1000, 2), "speedup": round(pil_s / tv_s, 2), "same_grid": same_grid,
                     "max_abs_diff": None if diff is None else round(float(diff.max()), 4),
                     "mean_abs_diff": None if diff is None else round(float(diff.mean()), 5),
                     "equal": bool(same_grid and float(diff.max()) == 0.0)})
        print(json.dumps(rows[-1]), flush=True)
    import torchvision

    result = {"torch": torch.__version__, "torchvision": torchvision.__version__, "threads": args.threads,
              "machine": describe_machine(), "repeats": args.repeats, "rows": rows}
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
