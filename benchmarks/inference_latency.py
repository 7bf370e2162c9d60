"""Inference latency and throughput of `finscribe.inference.predict` (the one generation path).

    python benchmarks/inference_latency.py --models tiny full --device cpu --new-tokens 32 \
        --output benchmarks/results/inference_latency_cpu.json

Measures, per model:
* per-crop latency (p50 / p95 over --repeats runs, batch 1) on a 300x100 totals-like crop,
* per-page latency (p50 / p95, batch 1) on a 1240x1754 (A4 at 150 dpi) page,
* batched throughput (crops/s) on --num-crops crops at each of --batch-sizes.

Output length is FIXED (`min_new_tokens = max_new_tokens = --new-tokens`, repetition guard off),
so the figures measure the model and not what an untrained model happens to emit.

Models: `tiny` = the tiny test PaddleOCR-VL (`build_tiny_model`, its small image processor);
`full` = the released 0.9B v1 built from its real files (`--like`, default ../shared/paddleocr_vl/v1:
config.json translated by finscribe.checkpoint, untied head; the real tokenizer, template and image
processor, min 147,384 / max 2,822,400 pixels) with random weights, so the image token counts are
the real ones; its parameter count and head are reported. `--page-max-pixels` may lower the page
resolution of the full model (a 2.8 MP page is ~3,600 image tokens: minutes on a small CPU).
Timings depend on the machine and its load: record both with the numbers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from finscribe.checkpoint import describe
from finscribe.inference import predict
from finscribe.machine import describe_machine


def crop_image() -> Image.Image:
    image = Image.new("RGB", (300, 100), "white")
    ImageDraw.Draw(image).multiline_text((8, 8), "Subtotal   1,234.50\nTax 19 %    234.56\nTotal      1,469.06",
                                         fill="black", spacing=8)
    return image


def page_image() -> Image.Image:
    image = Image.new("RGB", (1240, 1754), "white")
    draw = ImageDraw.Draw(image)
    for i in range(40):
        draw.text((80, 80 + 40 * i), f"Line {i:02d}  Item description {i}   {i + 1} x {10 + i}.00   {(i + 1) * (10 + i)}.00",
                  fill="black")
    return image


def tiny_model(device: str) -> tuple[Any, Any]:
    from finscribe.training.model import build_tiny_model, default_corpus, load_model

    folder = Path(tempfile.mkdtemp(prefix="finscribe-bench-")) / "tiny"
    build_tiny_model(folder, default_corpus(), seed=0)
    return load_model(folder, device=device, dtype="float32")


def full_model(device: str, dtype: torch.dtype, page_max_pixels: int | None, like: str | None = None) -> tuple[Any, Any]:
    """The real v1 architecture (its translated config.json) with random weights, and its real processor."""
    from finscribe.checkpoint import random_model_like, real_files_folder

    model, processor = random_model_like(like or str(real_files_folder()))
    if page_max_pixels is not None:
        processor.image_processor.size.longest_edge = page_max_pixels
    return model.to(device=device, dtype=dtype).eval(), processor


def _timed(model: Any, processor: Any, images: list, batch_size: int, tokens: int, device: str) -> tuple[float, list]:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    preds = predict(model, processor, images, "totals_section", max_new_tokens=tokens, min_new_tokens=tokens,
                    batch_size=batch_size, repetition_window=0)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, preds


def latency(model: Any, processor: Any, image: Image.Image, repeats: int, tokens: int, device: str,
            warmup: bool = True) -> dict[str, Any]:
    if warmup:
        _timed(model, processor, [image], 1, tokens, device)
    times, preds = [], []
    for _ in range(repeats):
        seconds, preds = _timed(model, processor, [image], 1, tokens, device)
        times.append(seconds)
    return {"p50_s": float(np.percentile(times, 50)), "p95_s": float(np.percentile(times, 95)), "runs": repeats,
            "prompt_tokens": preds[0].prompt_tokens, "new_tokens": preds[0].new_tokens}


def throughput(model: Any, processor: Any, image: Image.Image, batch_sizes: list[int], num_crops: int, tokens: int,
               device: str) -> dict[str, Any]:
    out = {}
    for batch_size in batch_sizes:
        seconds, preds = _timed(model, processor, [image] * num_crops, batch_size, tokens, device)
        assert all(p.new_tokens == tokens for p in preds), "fixed output length not honoured"
        out[str(batch_size)] = {"crops_per_s": num_crops / seconds, "seconds": seconds, "crops": num_crops}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=("tiny", "full"), default=["tiny", "full"])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default=None, help="full model dtype (default: bfloat16 on cuda, float32 on cpu)")
    parser.add_argument("--new-tokens", type=int, default=32, help="fixed generated tokens per image")
    parser.add_argument("--repeats", type=int, default=5, help="runs per latency figure")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--num-crops", type=int, default=8, help="crops per throughput measurement")
    parser.add_argument("--page-max-pixels", type=int, default=None, help="full model: lower the page resolution cap")
    parser.add_argument("--skip-page", nargs="*", choices=("tiny", "full"), default=[], help="models to skip the page on")
    parser.add_argument("--skip-crop", nargs="*", choices=("tiny", "full"), default=[], help="models to skip crop latency on")
    parser.add_argument("--page-repeats", type=int, default=None, help="runs per page latency (default: repeats // 2)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the warm-up run (big models on a slow CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--like", default=None, help="full model: the real model files (default ../shared/paddleocr_vl/v1)")
    parser.add_argument("--output", type=Path, default=None, help="JSON file for the results")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA device is available")
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if args.device.startswith("cuda") else torch.float32)
    results: dict[str, Any] = {"device": args.device, "machine": describe_machine(),
                               "new_tokens": args.new_tokens, "models": {}}
    for kind in args.models:
        start = time.perf_counter()
        model, processor = tiny_model(args.device) if kind == "tiny" else full_model(args.device, dtype, args.page_max_pixels, args.like)
        entry: dict[str, Any] = {**describe(model),  # parameters and lm_head (tied / untied)
                                 "load_seconds": time.perf_counter() - start, "dtype": str(next(model.parameters()).dtype)}
        warmup = not args.no_warmup
        if kind not in args.skip_crop:
            entry["crop"] = latency(model, processor, crop_image(), args.repeats, args.new_tokens, args.device, warmup)
            print(kind, "crop", entry["crop"], flush=True)
        if kind not in args.skip_page:
            entry["page"] = latency(model, processor, page_image(), args.page_repeats or max(1, args.repeats // 2),
                                    args.new_tokens, args.device, warmup)
            print(kind, "page", entry["page"], flush=True)
        entry["throughput"] = throughput(model, processor, crop_image(), args.batch_sizes, args.num_crops,
                                         args.new_tokens, args.device)
        print(kind, "throughput", entry["throughput"], flush=True)
        results["models"][kind] = entry
        del model, processor
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.output.with_name(f".{args.output.name}.tmp")
        tmp.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        tmp.replace(args.output)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
