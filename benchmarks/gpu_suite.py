"""GPU suite (issue 26): the full-size PaddleOCR-VL on one GPU, every figure the seeds claim, one run.

    python benchmarks/gpu_suite.py --output-dir runs/gpu_suite            # on a CUDA GPU, <= 8 min on an H200
    python benchmarks/gpu_suite.py --smoke --output-dir /tmp/gpu_smoke    # every section on CPU, tiny config, < 60 s

The model is the released v1 architecture (`--like`, default ../shared/paddleocr_vl/v1: its
pre-native config.json read by `finscribe.checkpoint`, vision 1152 x 27, text 1024 x 18, vocab
103,424, untied head: 905,601,648 parameters) with random weights, its real tokenizer, template and
image processor, so the compute and memory per crop are the real model's. `--smoke` builds the same
folder's tiny twin (`build_tiny_model_like`: real tokenizer and processor, 64-wide layers) on CPU.
Sections (each: warm-up steps first, untimed; then timed steps):

1. **lora**: LoRA r16 (bf16 base, bf16 autocast, SDPA, AdamW) on 256 synthetic crops of the five
   regions, batch 4, one pass (the first steps untimed); vision tower frozen (preset `decoder`) and trained (preset `all`, adapters on
   the vision encoder too). Peak VRAM and samples/s.
2. **full_sft**: all weights (fp32 master weights, bf16 autocast, as `finscribe train` does), batch 4,
   activation checkpointing off and on. Peak VRAM, tokens/s, and MFU = model FLOPs per step (counted
   by torch's FlopCounterMode on one step without checkpointing: matmuls and attention, forward +
   backward; recomputation not counted) / step time / the chip's dense bf16 peak (`--peak-tflops`,
   else `--chip`, else the table CHIP_PEAK_TFLOPS by the device name; on CPU the measured matmul rate).
3. **inference**: bf16 vs INT8 weight-only (torchao `Int8WeightOnlyConfig` through
   `finscribe.deploy.quantize.apply_quantization`, the path `finscribe quantize` uses on CUDA; LM head
   kept bf16), greedy decoding through `finscribe.inference.predict` (the serving path) of exactly 64
   new tokens, batch 1 and batch 8: p50 latency, weight bytes, resident and peak memory. Eager mode
   (no torch.compile), as `finscribe serve` runs.
4. **tiny_quickstart**: the quickstart's training stage (tiny reader, batch 16, AdamW 3e-4, cosine,
   totals crops at 150 dpi) for a few steps through `finscribe.training.train.train`, s/step against
   the CPU's 454 s / 1,000 steps (benchmarks/RESULTS.md, 2026-12-01, idle 2-core machine).

Writes OUTPUT_DIR/gpu_suite.json and OUTPUT_DIR/gpu_suite.md (the goals of issue 26 beside the figures).

**Running it on the lent H200 (the device tool).** The device has torch 2.11 and transformers 5.17
but no torchao, faker, babel, datasets, rapidfuzz, apted, fpdf2, pypdfium2, xgrammar or FinScribe
itself, cannot reach a registry, and gets only the repository (not ../shared). Once, here:

    bash benchmarks/gpu_suite_prepare.sh      # wheels into .whl/, the v1 files into .v1/ (both git-ignored)

then one `run` with carry [".whl", ".v1"], timeout_s 600:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    && export PYTHONPATH=/tmp/site:$PWD || exit; PYTHONUNBUFFERED=1 python3 benchmarks/gpu_suite.py --like .v1
    --output-dir $OUT/gpu_suite 2>&1 | tee $OUT/gpu_suite.log

(one line). The travelling working tree must be under 64 MiB (the device README): see
benchmarks/RESULTS.md "GPU suite" for the state of that.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from finscribe.machine import describe_machine

# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets.
CHIP_PEAK_TFLOPS = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10G": 70.0,
    "A10": 125.0,
}
# Device names as torch reports them -> table keys (first match wins; "H100 80GB HBM3" is the SXM part).
_CHIP_NAMES = (("H200", "H200"), ("H100 PCIe", "H100 PCIe"), ("H100 NVL", "H100 NVL"), ("H100", "H100 SXM"),
               ("A100", "A100"), ("L40S", "L40S"), ("A10G", "A10G"), ("A10", "A10"), ("L4", "L4"))
EXPECTED_PARAMETERS = 905_601_648  # the v1 release, untied LM head (tests/test_real_files.py)
# The quickstart's training on CPU: 1,000 steps x 16 crops in 454 s (benchmarks/RESULTS.md, 2026-12-01 04:14 UTC, idle).
CPU_QUICKSTART = {"train_seconds": 454.0, "steps": 1000, "batch_size": 16,
                  "source": "benchmarks/RESULTS.md, quickstart on the phase-5 reader, 2-core CPU, 2026-12-01"}
GOALS = {"lora_peak_vram_gb": 12.0, "full_sft_mfu": 0.35, "int8_vs_bf16_batch1": 1.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, required=True, help="folder for gpu_suite.json and gpu_suite.md")
    parser.add_argument("--smoke", action="store_true", help="every section on CPU with the tiny config (< 60 s)")
    parser.add_argument("--like", default=None, help="the real model's files (default ../shared/paddleocr_vl/v1)")
    parser.add_argument("--chip", choices=sorted(CHIP_PEAK_TFLOPS), default=None, help="chip for the MFU peak")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak for MFU (overrides --chip)")
    parser.add_argument("--sections", nargs="+", default=["lora", "full_sft", "inference", "tiny_quickstart"],
                        choices=["lora", "full_sft", "inference", "tiny_quickstart"])
    parser.add_argument("--crops", type=int, default=256, help="synthetic crops for the training sections")
    parser.add_argument("--batch-size", type=int, default=4, help="crops per training step (LoRA, full SFT)")
    parser.add_argument("--warmup-steps", type=int, default=None, help="untimed steps per case (default 3; smoke 1)")
    parser.add_argument("--steps", type=int, default=None, help="timed full-SFT steps per case (default 12; smoke 1); "
                        "LoRA times one pass over --crops")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens decoded per request (default 64; smoke 3)")
    parser.add_argument("--repeats", type=int, default=None, help="timed generations per case (default 5; smoke 1)")
    parser.add_argument("--tiny-steps", type=int, default=None, help="quickstart training steps (default 60; smoke 3)")
    parser.add_argument("--tiny-batch-size", type=int, default=None, help="quickstart crops per step (default 16 as the "
                        "quickstart; smoke 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    defaults = {"warmup_steps": (3, 1), "steps": (12, 1), "new_tokens": (64, 3), "repeats": (5, 1), "tiny_steps": (60, 3),
                "tiny_batch_size": (16, 2)}
    for name, (full, smoke) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, smoke if args.smoke else full)
    if args.smoke:  # a few small crops: the smoke run checks every code path, not the speed
        args.crops, args.batch_size = min(args.crops, 4), min(args.batch_size, 2)
    return args


# ---------------------------------------------------------------- device, memory, timing

class Device:
    """Where the suite runs and how it measures memory and time there."""

    def __init__(self, smoke: bool):
        if not smoke and not torch.cuda.is_available():
            raise SystemExit("error: no CUDA device is visible; run with --smoke for the CPU check")
        self.cuda = not smoke
        self.name = torch.cuda.get_device_name() if self.cuda else (platform.processor() or platform.machine())
        self.torch_device = torch.device("cuda" if self.cuda else "cpu")
        # CPU bf16 matmuls are slow and the smoke run checks the code path, not the speed: float32 there.
        self.dtype = torch.bfloat16 if self.cuda else torch.float32

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def reset_peak(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak(self) -> dict[str, float]:
        """Peak memory since reset_peak, GB (1e9 bytes): CUDA allocated and reserved; on CPU the process's peak RSS
        (it never falls, so on CPU it is an upper bound of the section's own peak)."""
        if self.cuda:
            return {"peak_allocated_gb": round(torch.cuda.max_memory_allocated() / 1e9, 3),
                    "peak_reserved_gb": round(torch.cuda.max_memory_reserved() / 1e9, 3)}
        return {"peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, 3)}

    def resident_gb(self) -> float:
        self.sync()
        if self.cuda:
            return round(torch.cuda.memory_allocated() / 1e9, 3)
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, 3)

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.cuda else contextlib.nullcontext()

    def timed(self, fn) -> float:
        self.sync()
        start = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - start


def peak_tflops(args: argparse.Namespace, device: Device) -> tuple[float, str]:
    """The dense bf16 peak MFU is measured against, and where it comes from."""
    if args.peak_tflops:
        return args.peak_tflops, "--peak-tflops"
    if args.chip:
        return CHIP_PEAK_TFLOPS[args.chip], f"--chip {args.chip} (data sheet, dense bf16)"
    if device.cuda:
        for fragment, chip in _CHIP_NAMES:
            if fragment in device.name:
                return CHIP_PEAK_TFLOPS[chip], f"{chip} data sheet, dense bf16 (from the device name)"
        raise SystemExit(f"error: no known bf16 peak for {device.name!r}; pass --peak-tflops or --chip")
    # No data-sheet peak for a CPU: the rate this CPU reaches on one float32 matmul stands in.
    a = torch.randn(512, 512)
    seconds = min(device.timed(lambda: a @ a) for _ in range(5))
    return significant(2 * 512**3 / seconds / 1e12), "measured float32 512^3 matmul on this CPU (smoke only)"


def significant(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")


def run_steps(device: Device, model: Any, optimizer: Any, batches: list[dict], warmup: int) -> tuple[list[float], list[float]]:
    """Train on `batches` in order; `(seconds of each step after the first `warmup`, losses)`."""
    times, losses = [], []
    for i, batch in enumerate(batches):
        seconds = device.timed(lambda batch=batch: losses.append(train_step(model, optimizer, batch, device)))
        if i >= warmup:
            times.append(seconds)
    return times, losses


def free(*objects: Any) -> None:
    del objects
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- data and models

def synthetic_records(workdir: Path, crops: int, seed: int, smoke: bool) -> tuple[list[dict], list[dict]]:
    """`(crops, totals)`: `crops` region crops of the five regions (the training sections' data; totals
    crops only with --smoke, the tiny reader's region) and every totals crop (the quickstart's region),
    from freshly generated invoices at 150 dpi."""
    from finscribe.data.build_dataset import build_dataset_from_manifest
    from finscribe.synthetic.export import generate_dataset

    invoices = max(4, crops if smoke else -(-crops // 5))
    manifest = generate_dataset(invoices, workdir / "invoices", seed=seed, workers=min(16, os.cpu_count() or 1),
                                dpi=150, locales=("en_US",))
    records = build_dataset_from_manifest(manifest).to_list()
    # Splits do not matter for throughput; all regions of the same invoice stay next to each other.
    totals = [dict(r, split="train") for r in records if r["region"] == "totals_section"]
    return (totals if smoke else records)[:crops], totals


def full_size_parameters(like: str) -> dict[str, Any]:
    """Parameters of the architecture `like`'s config describes, counted on the meta device (nothing allocated)."""
    from transformers import PaddleOCRVLForConditionalGeneration

    from finscribe.checkpoint import describe, load_config

    with torch.device("meta"):
        model = PaddleOCRVLForConditionalGeneration(load_config(like))
    return {"folder": like, **describe(model)}


def build_model(args: argparse.Namespace) -> tuple[Any, Any]:
    """`(model, processor)` in float32 on CPU: the full-size random model, or with --smoke the tiny reader
    (the quickstart's 2.5 M-parameter model: small vocabulary and images, so every section runs on a CPU)."""
    from finscribe.checkpoint import random_model_like
    from finscribe.model import load_model
    from finscribe.quickstart_config import TINY_READER

    if args.smoke:
        model, processor = load_model(TINY_READER, device="cpu", dtype=torch.float32, attn_implementation="sdpa")
    else:
        model, processor = random_model_like(args.like, seed=args.seed)
    model.set_attn_implementation("sdpa")
    return model, processor


def collated_batches(records: list[dict], processor: Any, batch_size: int) -> list[dict]:
    from finscribe.training.collate import CompletionCollator

    collator = CompletionCollator(processor)
    return [collator(records[i:i + batch_size]) for i in range(0, len(records) - batch_size + 1, batch_size)]


def batch_on(batch: dict, device: Device, dtype: torch.dtype) -> dict:
    moved = {k: v.to(device.torch_device, non_blocking=True) for k, v in batch.items()}
    moved["pixel_values"] = moved["pixel_values"].to(dtype)
    return moved


def train_step(model: Any, optimizer: Any, batch: dict, device: Device) -> float:
    with device.autocast():
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss)


# ---------------------------------------------------------------- sections

def lora_section(args, device: Device, base: Any, batches: list[dict]) -> list[dict]:
    from finscribe.training.lora import apply_lora

    rows = []
    for vision, preset in (("frozen", "decoder"), ("trained", "all")):
        device.reset_peak()
        # A frozen LoRA base lives in bf16 on a GPU, as `finscribe train --use-lora` loads it.
        model = apply_lora(copy.deepcopy(base).to(device.dtype), preset, r=16).to(device.torch_device).train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=2e-4)
        on_device = [batch_on(b, device, device.dtype) for b in batches]
        # One pass over the crops: the first steps warm up, the rest are timed (and the peak covers every batch).
        times, losses = run_steps(device, model, optimizer, on_device, min(args.warmup_steps, len(on_device) - 1))
        seconds = statistics.median(times)
        rows.append({"vision_tower": vision, "lora_preset": preset, "rank": 16, "batch_size": args.batch_size,
                     "trainable_parameters": sum(p.numel() for p in trainable), "steps_timed": len(times),
                     "seconds_per_step_p50": round(seconds, 4), "samples_per_s": round(args.batch_size / seconds, 2),
                     "last_loss": round(losses[-1], 4), **device.peak()})
        free(model, optimizer, on_device)
    return rows


def model_flops(model: Any, batch: dict, device: Device) -> int:
    """FLOPs of one forward + backward, as torch's FlopCounterMode counts them (matmuls, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, device.autocast():
        model(**batch).loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def full_sft_section(args, device: Device, base: Any, batches: list[dict], peak: tuple[float, str]) -> list[dict]:
    rows = []
    flops = None
    for checkpointing in (False, True):
        device.reset_peak()
        # fp32 master weights with bf16 autocast, as `finscribe train` does for full SFT.
        model = copy.deepcopy(base).to(device.torch_device).train()
        model.config.use_cache = False
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
        on_device = [batch_on(b, device, torch.float32) for b in batches]
        order = [i % len(on_device) for i in range(args.warmup_steps + args.steps)]
        if flops is None:  # model FLOPs (recomputation excluded): counted once per timed batch, without checkpointing
            flops = {i: model_flops(model, on_device[i], device) for i in set(order[args.warmup_steps:])}
        times, losses = run_steps(device, model, optimizer, [on_device[i] for i in order], args.warmup_steps)
        timed = order[args.warmup_steps:]
        tokens = sum(int(on_device[i]["attention_mask"].sum()) for i in timed)
        step_flops = sum(flops[i] for i in timed)
        total = sum(times)
        rows.append({"activation_checkpointing": checkpointing, "batch_size": args.batch_size, "steps_timed": len(times),
                     "seconds_per_step_mean": round(total / len(times), 4), "tokens_per_s": round(tokens / total, 1),
                     "model_tflops_per_step_mean": significant(step_flops / len(times) / 1e12),
                     "achieved_tflops": significant(step_flops / total / 1e12),
                     "mfu": round(step_flops / total / (peak[0] * 1e12), 4), "last_loss": round(losses[-1], 4),
                     **device.peak()})
        free(model, optimizer, on_device)
    return rows


def inference_section(args, device: Device, base: Any, processor: Any, records: list[dict]) -> list[dict]:
    from finscribe.deploy.quantize import apply_quantization, linear_module_names, weight_bytes
    from finscribe.inference import predict

    images = [r["image"] for r in records if r["region"] == "totals_section"][:8]
    images = (images * 8)[:8]
    rows = []
    device.reset_peak()
    model = copy.deepcopy(base).to(device.dtype).to(device.torch_device).eval()
    for precision in ("bf16" if device.cuda else "float32", "int8_weight_only"):
        if precision == "int8_weight_only":
            # The in-memory form of `finscribe quantize --method int8_weight_only` (LM head kept float).
            modules = linear_module_names(model)
            apply_quantization(model, "int8_weight_only", modules, "torchao")
            device.reset_peak()
        resident = device.resident_gb()
        weights = weight_bytes(model, linear_module_names(model) if precision != "int8_weight_only" else modules)
        for batch in (1, 8):
            def run(batch=batch):
                out = predict(model, processor, images[:batch], "totals_section", max_new_tokens=args.new_tokens,
                              min_new_tokens=args.new_tokens, repetition_window=0, batch_size=batch)
                assert all(p.new_tokens == args.new_tokens for p in out), [p.new_tokens for p in out]
            run()  # warm-up
            times = [device.timed(run) for _ in range(args.repeats)]
            p50 = statistics.median(times)
            rows.append({"precision": precision, "batch_size": batch, "new_tokens": args.new_tokens, "repeats": len(times),
                         "latency_p50_ms": round(p50 * 1000, 1), "ms_per_token": round(p50 * 1000 / args.new_tokens, 2),
                         "tokens_per_s": round(batch * args.new_tokens / p50, 1),
                         "weights_gb": round(weights["total"] / 1e9, 3), "resident_gb": resident, **device.peak()})
    free(model)
    return rows


def tiny_quickstart_section(args, device: Device, totals: list[dict], workdir: Path) -> dict:
    from transformers import TrainerCallback

    from finscribe.quickstart_config import TINY_READER
    from finscribe.training.train import TrainConfig, train

    data = workdir / "totals.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in totals), encoding="utf-8")
    stamps: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_end(self, *_, **__):
            device.sync()
            stamps.append(time.perf_counter())

    # The quickstart's train step (finscribe/quickstart.py) with fewer steps.
    config = TrainConfig(data=data, model=str(TINY_READER), output_dir=workdir / "tiny_run", max_steps=args.tiny_steps,
                         batch_size=args.tiny_batch_size, gradient_accumulation_steps=1, learning_rate=3e-4, warmup_ratio=0.05,
                         lr_scheduler="cosine", regions=("totals_section",), logging_steps=max(1, args.tiny_steps // 4),
                         save_steps=args.tiny_steps, save_total_limit=1, eval_generate_samples=0, seed=args.seed,
                         report_to=("none",))
    start = time.perf_counter()
    train(config, callbacks=[StepClock()])
    wall = time.perf_counter() - start
    skip = min(len(stamps) - 2, max(1, args.tiny_steps // 10))  # the first steps warm up kernels and the loader
    per_step = (stamps[-1] - stamps[skip]) / (len(stamps) - 1 - skip)
    cpu_per_step = CPU_QUICKSTART["train_seconds"] / CPU_QUICKSTART["steps"]
    return {"steps": len(stamps), "steps_timed": len(stamps) - 1 - skip, "batch_size": args.tiny_batch_size, "train_wall_s": round(wall, 1),
            "seconds_per_step": round(per_step, 4), "cpu_seconds_per_step": round(cpu_per_step, 4),
            "speedup_vs_cpu": round(cpu_per_step / per_step, 2),
            "projected_1000_steps_s": round(per_step * CPU_QUICKSTART["steps"], 1), "cpu_reference": CPU_QUICKSTART["source"],
            "device": "cuda" if torch.cuda.is_available() else "cpu"}


# ---------------------------------------------------------------- report

def goals(result: dict) -> list[dict]:
    rows = []
    for row in result.get("lora", []):
        gb = row.get("peak_reserved_gb")
        rows.append({"goal": f"LoRA peak VRAM <= 12 GB at batch {row['batch_size']} (vision {row['vision_tower']})",
                     "figure": f"{gb} GB reserved" if gb is not None else f"{row['peak_rss_gb']} GB RSS (CPU)",
                     "met": None if gb is None else gb <= GOALS["lora_peak_vram_gb"]})
    for row in result.get("full_sft", []):
        rows.append({"goal": f"full-SFT MFU >= 35 % (checkpointing {'on' if row['activation_checkpointing'] else 'off'})",
                     "figure": f"{row['mfu'] * 100:.1f} %", "met": row["mfu"] >= GOALS["full_sft_mfu"] if result["cuda"] else None})
    p50 = {(r["precision"], r["batch_size"]): r["latency_p50_ms"] for r in result.get("inference", [])}
    float_name = "bf16" if result["cuda"] else "float32"
    if (float_name, 1) in p50:
        ratio = p50[(float_name, 1)] / p50[("int8_weight_only", 1)]
        rows.append({"goal": "INT8 weight-only at least as fast as bf16 at batch 1",
                     "figure": f"{p50[('int8_weight_only', 1)]} vs {p50[(float_name, 1)]} ms ({ratio:.2f}x)",
                     "met": ratio >= GOALS["int8_vs_bf16_batch1"] if result["cuda"] else None})
    return rows


def _mark(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "n/a (CPU smoke)"}[met]


def markdown(result: dict) -> str:
    mem = "peak reserved / allocated GB" if result["cuda"] else "peak RSS GB (CPU)"

    def memory(row: dict) -> str:
        return f"{row['peak_reserved_gb']} / {row['peak_allocated_gb']}" if "peak_reserved_gb" in row else f"{row['peak_rss_gb']}"

    model = result["model"]
    lines = [f"# GPU suite{' (CPU smoke: tiny config, not a GPU figure)' if result['smoke'] else ''}", "",
             f"{result['device']['name']}, torch {result['device']['torch']}, transformers {result['device']['transformers']}, "
             f"{result['date']}; model {model['parameters']:,} parameters ({model['lm_head']} head), "
             f"{'the tiny reader' if result['smoke'] else 'random weights'}; "
             f"suite {result['seconds']} s. GB = 10^9 bytes; timed steps exclude warm-up.", "",
             "## Goals", "", "| goal | figure | status |", "|---|---|---|"]
    lines += [f"| {g['goal']} | {g['figure']} | {_mark(g['met'])} |" for g in result["goals"]]
    if result.get("lora"):
        lines += ["", "## LoRA r16", "", f"| vision tower | preset | trainable | s/step (p50) | samples/s | {mem} |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['vision_tower']} | {r['lora_preset']} | {r['trainable_parameters']:,} | {r['seconds_per_step_p50']} | "
                  f"{r['samples_per_s']} | {memory(r)} |" for r in result["lora"]]
    if result.get("full_sft"):
        lines += ["", f"## Full SFT (MFU against {result['peak_tflops']} TFLOP/s: {result['peak_source']})", "",
                  f"| activation checkpointing | s/step | tokens/s | model TFLOP/step | TFLOP/s | MFU | {mem} |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {'on' if r['activation_checkpointing'] else 'off'} | {r['seconds_per_step_mean']} | {r['tokens_per_s']} | "
                  f"{r['model_tflops_per_step_mean']} | {r['achieved_tflops']} | {r['mfu'] * 100:.1f} % | {memory(r)} |"
                  for r in result["full_sft"]]
    if result.get("inference"):
        lines += ["", "## Inference (greedy, fixed new tokens, eager)", "",
                  f"| precision | batch | new tokens | p50 ms | ms/token | tokens/s | weights GB | resident GB | {mem} |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['precision']} | {r['batch_size']} | {r['new_tokens']} | {r['latency_p50_ms']} | {r['ms_per_token']} | "
                  f"{r['tokens_per_s']} | {r['weights_gb']} | {r['resident_gb']} | {memory(r)} |" for r in result["inference"]]
    if result.get("tiny_quickstart"):
        t = result["tiny_quickstart"]
        lines += ["", "## The quickstart's tiny training run", "",
                  "| device | steps timed | s/step | CPU s/step (RESULTS.md) | speed-up | 1,000 steps projected |", "|---|---|---|---|---|---|",
                  f"| {t['device']} | {t['steps_timed']} | {t['seconds_per_step']} | {t['cpu_seconds_per_step']} | "
                  f"{t['speedup_vs_cpu']}x | {t['projected_1000_steps_s']} s |"]
    return "\n".join(lines) + "\n"


def run_suite(args: argparse.Namespace) -> dict:
    import transformers

    from finscribe.checkpoint import CheckpointLayoutError, describe, real_files_folder
    from finscribe.fileio import ensure_output_dir, write_json_atomic, write_text_atomic

    out = ensure_output_dir(args.output_dir)
    if args.like is None:
        try:
            args.like = str(real_files_folder())
        except CheckpointLayoutError:
            if not args.smoke:  # the full-size model needs its config; the smoke run only checks it when present
                raise
    started = time.perf_counter()
    device = Device(args.smoke)
    torch.manual_seed(args.seed)
    result: dict[str, Any] = {
        "suite": "benchmarks/gpu_suite.py", "smoke": args.smoke, "cuda": device.cuda,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": " ".join(sys.argv),
        "device": {"name": device.name, "torch": torch.__version__, "transformers": transformers.__version__,
                   "cuda": torch.version.cuda},
        "machine": describe_machine(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        crops, totals = synthetic_records(workdir, args.crops, args.seed, args.smoke)
        full_size = full_size_parameters(args.like) if args.like else None
        base, processor = build_model(args)
        result["model"] = {**describe(base), "attn_implementation": base.config._attn_implementation,
                           "full_size": full_size, "expected_full_size_parameters": EXPECTED_PARAMETERS}
        if full_size and full_size["parameters"] != EXPECTED_PARAMETERS:
            raise SystemExit(f"error: {args.like} describes {full_size['parameters']:,} parameters, expected {EXPECTED_PARAMETERS:,}")
        batches = collated_batches(crops, processor, args.batch_size)
        result["data"] = {"crops": len(crops), "batches": len(batches), "regions": sorted({r["region"] for r in crops}),
                          "tokens_per_batch_mean": round(statistics.mean(int(b["attention_mask"].sum()) for b in batches), 1)}
        peak = peak_tflops(args, device)
        result["peak_tflops"], result["peak_source"] = peak
        sections = {"lora": lambda: lora_section(args, device, base, batches),
                    "full_sft": lambda: full_sft_section(args, device, base, batches, peak),
                    "inference": lambda: inference_section(args, device, base, processor, crops),
                    "tiny_quickstart": lambda: tiny_quickstart_section(args, device, totals, workdir)}
        result["section_seconds"] = {"data_and_model": round(time.perf_counter() - started, 1)}
        for name, section in sections.items():
            if name in args.sections:
                clock = time.perf_counter()
                result[name] = section()
                result["section_seconds"][name] = round(time.perf_counter() - clock, 1)
                print(f"gpu_suite: {name} done in {result['section_seconds'][name]} s", flush=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["goals"] = goals(result)
    write_json_atomic(out / "gpu_suite.json", result)
    write_text_atomic(out / "gpu_suite.md", markdown(result))
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # the smoke run is the CPU check, even on a GPU machine
    result = run_suite(args)
    print(markdown(result))
    print(f"wrote {args.output_dir / 'gpu_suite.json'} and gpu_suite.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
