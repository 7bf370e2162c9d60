"""Training throughput: samples/s, answer tokens/s, peak memory — tiny and full-size PaddleOCR-VL.

    python benchmarks/train_throughput.py --size tiny --mode full --steps 20          # CPU, tiny model
    python benchmarks/train_throughput.py --size tiny --mode lora --steps 20
    python benchmarks/train_throughput.py --size full --mode lora --steps 1 --batch-size 1   # 0.9B config, random weights
    python benchmarks/train_throughput.py --size full --mode full --device cuda --batch-size 4 --input page  # GPU: + MFU, VRAM

`--size full` builds the released 0.9B v1 from its real files (`--like`, default
../shared/paddleocr_vl/v1: config.json translated by finscribe.checkpoint — vision 1152 hidden x 27
layers, text 1024 x 18, vocab 103424, untied head — the real tokenizer, template and image
processor, min 147384 / max 2822400 pixels) with random weights, so the compute per crop/page
matches the real model. The result gives the parameter count and the head (tied/untied).
One step = forward + backward + AdamW step on one batch built by `CompletionCollator` (the
training path). The first step is a warm-up and is not timed.
Prints one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

TARGET = '{"subtotal":"1234.50","discount":"0.00","tax_rate":"19","tax_amount":"234.56","total":"1469.06","currency":"EUR"}'
PAGE_TARGET = json.dumps({"line_items": [{"description": f"Item {i}", "quantity": "2", "unit_price": "10.00",
                                          "line_total": "20.00"} for i in range(10)]}, separators=(",", ":"))


def _image(kind: str) -> Image.Image:
    size = (1240, 1754) if kind == "page" else (600, 200)  # A4 page at 150 dpi / a totals crop
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for y in range(10, size[1] - 20, 24):
        draw.text((10, y), "Subtotal 1,234.50   Tax 19% 234.56   Total 1,469.06 EUR", fill="black")
    return image


def _model(size: str, workdir: Path, like: str | None):
    from finscribe.checkpoint import random_model_like, real_files_folder
    from finscribe.training.model import build_tiny_model, default_corpus, load_model

    if size == "full":
        return random_model_like(like or str(real_files_folder()))
    tiny = build_tiny_model(workdir / "tiny", default_corpus())
    return load_model(tiny, device="cpu", dtype=torch.float32)


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is KiB on Linux


def run(size: str, mode: str, device: str, batch_size: int, steps: int, kind: str, peak_tflops: float,
        like: str | None = None) -> dict:
    from finscribe.checkpoint import describe
    from finscribe.training.collate import IGNORE_INDEX, CompletionCollator
    from finscribe.training.lora import apply_lora

    with tempfile.TemporaryDirectory() as tmp:
        model, processor = _model(size, Path(tmp), like)
    architecture = describe(model)
    if mode == "lora":
        model = apply_lora(model, "decoder", r=16)
    model.to(device).train()
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    target = PAGE_TARGET if kind == "page" else TARGET
    records = [{"image": _image(kind), "prompt": "Invoice to JSON:" if kind == "page" else "Totals to JSON:",
                "target": target}] * batch_size
    batch = CompletionCollator(processor)(records)
    batch = {k: v.to(device) for k, v in batch.items()}
    answer_tokens = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    seq_tokens = int(batch["attention_mask"].sum())
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(steps + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if step:  # step 0 warms up allocators and kernels
            times.append(time.perf_counter() - start)
    seconds = sum(times) / len(times)
    n_params = sum(p.numel() for p in model.parameters())
    result = {
        "size": size, "mode": mode, "device": device, "input": kind, "batch_size": batch_size, "steps_timed": steps,
        "params_m": round(n_params / 1e6, 2), "lm_head": architecture["lm_head"], "trainable_m": round(sum(p.numel() for p in trainable) / 1e6, 3),
        "tokens_per_sample": seq_tokens // batch_size, "image_tokens_per_sample":
            int((batch["input_ids"] == processor.image_token_id).sum()) // batch_size,
        "answer_tokens_per_sample": answer_tokens // batch_size,
        "seconds_per_step": round(seconds, 4), "samples_per_s": round(batch_size / seconds, 3),
        "answer_tokens_per_s": round(answer_tokens / seconds, 1), "peak_rss_gib": round(_peak_rss_gib(), 2),
        "loss": round(float(loss), 4),
    }
    if device == "cuda":
        # MFU: ~6 FLOPs per parameter per token for full training (2 forward + 4 backward); LoRA skips
        # the weight gradients of the frozen base (~4 per token). Attention FLOPs are left out.
        flops = (6 if mode == "full" else 4) * n_params * seq_tokens
        result["mfu"] = round(flops / seconds / (peak_tflops * 1e12), 4)
        result["peak_vram_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--mode", choices=["full", "lora"], default="full")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after one warm-up step)")
    parser.add_argument("--input", choices=["crop", "page"], default="crop")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    parser.add_argument("--like", default=None, help="--size full: the real model files (default ../shared/paddleocr_vl/v1)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="GPU dense bf16 peak for MFU (H100 SXM: 989)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA device is visible")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(run(args.size, args.mode, args.device, args.batch_size, args.steps, args.input, args.peak_tflops, args.like)))


if __name__ == "__main__":
    main()
