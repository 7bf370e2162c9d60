"""Throughput of synthetic dataset generation (invoices per second), plus a per-stage profile.

    .venv/bin/python benchmarks/synthetic_throughput.py                 # 400 samples, all cores
    .venv/bin/python benchmarks/synthetic_throughput.py --num-samples 8000   # the full target

The target is 8,000 invoices in ≤ 5 minutes (≥ 27 invoices/s) with default settings.
The profile times each stage of one sample in a single process, to show where time goes.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from io import BytesIO
from pathlib import Path

from finscribe.data.schema import canonical_json
from finscribe.synthetic.export import PNG_COMPRESS_LEVEL, GenerateConfig, generate_dataset
from finscribe.synthetic.generator import generate_invoice, random_invoice_spec


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def profile(num: int, dpi: int, degrade_probability: float) -> dict[str, float]:
    """Mean milliseconds per sample of each stage, in one process (no disk writes)."""
    from finscribe.synthetic.augment import degrade
    from finscribe.synthetic.renderer import render_invoice

    totals = dict.fromkeys(("generate", "render", "degrade", "encode crops", "encode page", "json"), 0.0)
    for i in range(num):
        t0 = time.perf_counter()
        spec = random_invoice_spec(0, i)
        inv = generate_invoice(spec.num_items, spec.currency, spec.seed, spec.locale)
        t1 = time.perf_counter()
        page = render_invoice(inv, spec.layout, dpi=dpi, seed=spec.seed)
        t2 = time.perf_counter()
        image = page.image
        if random.Random(i).random() < degrade_probability:
            image = degrade(image, seed=spec.seed, strength="medium")
        t3 = time.perf_counter()
        for box in page.boxes.values():
            image.crop(tuple(box)).save(BytesIO(), format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        t4 = time.perf_counter()
        image.save(BytesIO(), format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        t5 = time.perf_counter()
        canonical_json(inv.to_label())
        t6 = time.perf_counter()
        for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
            totals[key] += dt * 1000 / num
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-samples", type=int, default=400)
    parser.add_argument("--workers", type=int, default=None, help="default: all cores")
    parser.add_argument("--profile-samples", type=int, default=40, help="0 skips the stage profile")
    parser.add_argument("--pdf", action="store_true", help="also write PDFs")
    args = parser.parse_args()
    defaults = GenerateConfig(num_samples=1)

    if args.profile_samples:
        stages = profile(args.profile_samples, defaults.dpi, defaults.degrade)
        print(f"\nper-sample stage profile (1 process, {args.profile_samples} samples, dpi {defaults.dpi}):")
        print("| stage | ms/sample |\n|---|---:|")
        for name, ms in stages.items():
            print(f"| {name} | {ms:.1f} |")
        print(f"| **total** | **{sum(stages.values()):.1f}** |")

    out = Path(tempfile.mkdtemp(prefix="finscribe_bench_"))
    try:
        start = time.perf_counter()
        generate_dataset(args.num_samples, out, seed=0, workers=args.workers, pdf=args.pdf, resume=False)
        seconds = time.perf_counter() - start
        size_mb = _folder_bytes(out) / 1e6
    finally:
        shutil.rmtree(out, ignore_errors=True)
    rate = args.num_samples / seconds
    print(f"\n| samples | workers | dpi | pdf | seconds | invoices/s | 8,000 would take | MB written |")
    print("|---:|---:|---:|:-:|---:|---:|---:|---:|")
    print(f"| {args.num_samples} | {args.workers or os.cpu_count()} | {defaults.dpi} | {'yes' if args.pdf else 'no'} "
          f"| {seconds:.1f} | {rate:.1f} | {8000 / rate / 60:.1f} min | {size_mb:.0f} |")


if __name__ == "__main__":
    main()
