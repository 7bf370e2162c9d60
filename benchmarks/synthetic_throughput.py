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
from pathlib import Path

from finscribe.data.schema import canonical_json
from finscribe.synthetic.export import GenerateConfig, generate_dataset
from finscribe.synthetic.generator import (
    SUPPORTED_LOCALES,
    generate_invoice,
    random_invoice_spec,
)
from finscribe.synthetic.pngwrite import encode_png


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the pool workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def profile(num: int, dpi: int, degrade_probability: float) -> dict[str, float]:
    """Mean CPU milliseconds per sample of each stage, in one process (no disk writes).

    CPU time (not wall time) so that the figures mean something on a machine shared with
    other jobs; cores / total ≈ the rate an unloaded machine would reach.
    """
    from finscribe.synthetic.augment import degrade
    from finscribe.synthetic.renderer import render_invoice

    random_invoice_spec(0, 0)  # import the renderer and build the Fakers outside the timing
    for locale in SUPPORTED_LOCALES:
        generate_invoice(1, None, 0, locale)
    totals = dict.fromkeys(("generate", "render", "degrade", "encode crops", "encode page", "json"), 0.0)
    for i in range(num):
        t0 = time.process_time()
        spec = random_invoice_spec(0, i)
        inv = generate_invoice(spec.num_items, spec.currency, spec.seed, spec.locale)
        t1 = time.process_time()
        page = render_invoice(inv, spec.layout, dpi=dpi, seed=spec.seed)
        t2 = time.process_time()
        image = page.image
        if random.Random(i).random() < degrade_probability:
            image = degrade(image, seed=spec.seed, strength="medium")
        t3 = time.process_time()
        for box in page.boxes.values():
            encode_png(image.crop(tuple(box)))
        t4 = time.process_time()
        encode_png(image)
        t5 = time.process_time()
        canonical_json(inv.to_label())
        t6 = time.process_time()
        for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
            totals[key] += dt * 1000 / num
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-samples", type=int, default=400)
    parser.add_argument("--workers", type=int, default=None, help="default: all cores")
    parser.add_argument("--profile-samples", type=int, default=40, help="0 skips the stage profile")
    parser.add_argument("--pdf", action="store_true", help="also write PDFs")
    parser.add_argument("--degrade", type=float, default=None, help="degradation probability (default: the config's)")
    args = parser.parse_args()
    defaults = GenerateConfig(num_samples=1, **({} if args.degrade is None else {"degrade": args.degrade}))

    if args.profile_samples:
        stages = profile(args.profile_samples, defaults.dpi, defaults.degrade)
        print(f"\nper-sample CPU profile (1 process, {args.profile_samples} samples, dpi {defaults.dpi}, "
              f"degrade p={defaults.degrade}):")
        print("| stage | CPU ms/sample |\n|---|---:|")
        for name, ms in stages.items():
            print(f"| {name} | {ms:.1f} |")
        total = sum(stages.values())
        print(f"| **total** | **{total:.1f}** |")
        print(f"CPU-bound estimate: {1000 / total:.1f} invoices/s per core, "
              f"{(args.workers or os.cpu_count()) * 1000 / total:.1f} with {args.workers or os.cpu_count()} idle cores")

    out = Path(tempfile.mkdtemp(prefix="finscribe_bench_"))
    try:
        cpu_start, start = _cpu_seconds(), time.perf_counter()
        generate_dataset(args.num_samples, out, seed=0, workers=args.workers, pdf=args.pdf,
                         degrade=defaults.degrade, resume=False)
        seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
        size_mb = _folder_bytes(out) / 1e6
    finally:
        shutil.rmtree(out, ignore_errors=True)
    rate = args.num_samples / seconds
    workers = args.workers or os.cpu_count()
    cpu_ms = cpu * 1000 / args.num_samples
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (other jobs on the machine slow the wall time)")
    print("| samples | workers | dpi | degrade p | pdf | wall s | invoices/s | 8,000 would take | CPU ms/invoice "
          "| idle-machine estimate | MB written |")
    print("|---:|---:|---:|---:|:-:|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.num_samples} | {workers} | {defaults.dpi} | {defaults.degrade} | {'yes' if args.pdf else 'no'} | {seconds:.1f} "
          f"| {rate:.1f} | {8000 / rate / 60:.1f} min | {cpu_ms:.0f} | {workers * 1000 / cpu_ms:.1f} inv/s "
          f"| {size_mb:.0f} |")


if __name__ == "__main__":
    main()
