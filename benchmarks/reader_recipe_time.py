"""How long the reader's recipe takes on this machine, from a short sample of every phase.

Issue 28's goal: the whole recipe (`configs/reader.yaml`, 34,500 steps) in <= 8 h on the idle
2-core machine. Running it whole takes most of a day, so this times each phase on a sample:
the phase's own settings (threads, loader workers, batch sizes, block shares, crop sizes, RoPE
theta) for `--sample-steps` steps, its block share ramping over the sample as over the whole
phase. A step costs the same at any weights, so every sample starts from the committed reader
(its tokenizer and width are the recipe's). Also timed: building the random model and its
tokenizer (phase 1's start) and one held-out evaluation per phase (each phase runs one every
`eval_every` steps and one at its end). The estimate is their sum; it prints beside the goal.

    .venv/bin/python benchmarks/reader_recipe_time.py --recipe configs/reader.yaml --sample-steps 100 \\
        --output benchmarks/results/reader_recipe_time.json

Run it on an idle machine: the figure is a wall-clock time.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from finscribe.config import arg, parse_config
from finscribe.quickstart_config import TINY_READER

GOAL_HOURS = 8.0


@dataclass
class RecipeTimeConfig:
    recipe: str = arg("configs/reader.yaml", "the curriculum to time")
    sample_steps: int = arg(100, "steps timed per phase (a multiple of 5; the first fifth is loader warm-up, not timed)")
    reader: str = arg(str(TINY_READER), "the reader every sample starts from (same size and tokenizer as the recipe's)")
    output: Path | None = arg(None, "write the timings here as JSON")


def phase_seconds_per_step(metrics: Path, sample_steps: int) -> float:
    """Seconds per step between the first and the last logged row (after the loader's warm-up)."""
    seconds = sorted({(row["step"], row["seconds"]) for row in map(json.loads, metrics.read_text().splitlines())
                      if "seconds" in row})
    (first_step, first_s), (last_step, last_s) = seconds[0], seconds[-1]
    if last_step != sample_steps or first_step >= last_step:
        raise SystemExit(f"{metrics}: expected logged rows up to step {sample_steps}, got {seconds}")
    return (last_s - first_s) / (last_step - first_step)


def main(argv: list[str] | None = None) -> int:
    config = parse_config(RecipeTimeConfig, argv, "reader_recipe_time.py", __doc__.splitlines()[0])
    if config.sample_steps < 10 or config.sample_steps % 5:
        raise SystemExit(f"--sample-steps {config.sample_steps}: give a multiple of 5, at least 10")
    import torch

    from finscribe.errors import FinScribeError
    from finscribe.machine import describe_machine, machine_line
    from finscribe.training.model import load_model
    from finscribe.training.pretrain_reader import eval_samples, init_model, pretrain
    from finscribe.training.pretrain_reader_config import PretrainConfig
    from finscribe.training.reader_recipe import load_recipe
    from finscribe.training.reader_report import evaluate_reading

    report: dict = {"recipe": config.recipe, "sample_steps": config.sample_steps, "phases": []}
    with tempfile.TemporaryDirectory(prefix="recipe_time_") as work:
        try:
            phases = load_recipe(PretrainConfig(recipe=Path(config.recipe), output_dir=Path(work)))
        except FinScribeError as error:
            raise SystemExit(f"error: {error}") from None
        first = dataclasses.replace(phases[0].config, output_dir=Path(work) / "scratch", init_from=None)
        tic = time.perf_counter()
        init_model(first, Path(work) / "scratch" / "init")  # the random model and its tokenizer
        report["build_seconds"] = round(time.perf_counter() - tic, 1)
        total = report["build_seconds"]
        for k, phase in enumerate(phases, start=1):
            sample = dataclasses.replace(
                phase.config, output_dir=Path(work) / f"{k}_{phase.name}", init_from=config.reader, export_dir=None,
                max_steps=config.sample_steps, log_every=config.sample_steps // 5, eval_every=10**9,
                save_every=10**9, eval_pages=1, eval_lines=1)  # the sample's own end-of-run eval: one crop
            pretrain(sample)
            per_step = phase_seconds_per_step(sample.output_dir / "metrics.jsonl", config.sample_steps)
            # one full held-out evaluation at this phase's settings
            model, processor = load_model(str(sample.output_dir / "checkpoint"), device="cpu", dtype="float32")
            torch.set_num_threads(phase.config.threads)
            held_out = eval_samples(phase.config)
            tic = time.perf_counter()
            evaluate_reading(model, processor, held_out)
            eval_seconds = time.perf_counter() - tic
            evals = math.ceil(phase.config.max_steps / phase.config.eval_every)  # every eval_every steps and at the end
            phase_total = per_step * phase.config.max_steps + evals * eval_seconds
            total += phase_total
            row = {"phase": phase.name, "steps": phase.config.max_steps, "seconds_per_step": round(per_step, 3),
                   "eval_seconds": round(eval_seconds, 1), "evals": evals, "estimated_hours": round(phase_total / 3600, 2)}
            report["phases"].append(row)
            print(f"{phase.name}: {per_step:.3f} s/step x {phase.config.max_steps} steps + {evals} evals x "
                  f"{eval_seconds:.0f} s = {phase_total / 3600:.2f} h", flush=True)
    report["estimated_hours"] = round(total / 3600, 2)
    report["machine"] = describe_machine()
    report["goal_hours"] = GOAL_HOURS
    verdict = "met" if total / 3600 <= GOAL_HOURS else "NOT met"
    print(f"the whole recipe: ~{total / 3600:.1f} h on this machine (goal <= {GOAL_HOURS:g} h: {verdict}); "
          f"building the random model and tokenizer {report['build_seconds']:.0f} s; on {machine_line(report['machine'])}",
          flush=True)
    if config.output is not None:
        from finscribe.fileio import write_json_atomic

        write_json_atomic(config.output, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
