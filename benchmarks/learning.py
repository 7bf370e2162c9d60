"""Learning benchmark (slow): the tiny reader's field accuracy on held-out crops vs training minutes on CPU.

Fine-tunes the committed tiny reader (`finscribe/assets/tiny_reader`, the quickstart's base) with
the quickstart's recipe and data settings, keeps a checkpoint every `--max-steps / --points`
steps, then evaluates the reader before fine-tuning and every checkpoint on the test split
(held-out invoices; the held-out layout separately; per region), each point once more on blank
images of the same sizes (the prior-only control: the accuracy above it is what the model reads
from the document). Writes OUTPUT_DIR/learning.json, OUTPUT_DIR/learning.md (the table for
benchmarks/RESULTS.md) and OUTPUT_DIR/learning_curve.png.

    .venv/bin/python benchmarks/learning.py --output-dir benchmarks/results/learning
    .venv/bin/python benchmarks/learning.py --data runs/quickstart/dataset/records.jsonl --max-steps 1200

Training minutes are wall-clock from the start of training to each checkpoint's save, evaluation
excluded; on a shared machine they depend on the load, so the script also prints CPU seconds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finscribe.config import arg, parse_config, save_config
from finscribe.quickstart_config import QuickstartConfig

KEYS = ("field_accuracy", "char_accuracy", "exact_match", "json_validity_rate")


@dataclass
class LearningConfig:
    output_dir: Path = arg(Path("benchmarks/results/learning"), "output folder")
    data: Path | None = arg(None, "existing records JSONL (default: generate --num-samples invoices)")
    num_samples: int = arg(600, "invoices to generate when --data is not given")
    max_steps: int = arg(600, "optimizer steps of the whole run")
    points: int = arg(4, "checkpoints to evaluate along the run")
    batch_size: int = arg(16, "crops per step")
    learning_rate: float | None = arg(None, "peak learning rate (default: the quickstart's for the tiny reader)")
    eval_limit: int | None = arg(None, "evaluate only the first N test crops")
    seed: int = arg(0, "seed")
    regions: tuple[str, ...] = arg((), "regions to train and evaluate on (default: the quickstart's)")


def _records(config: LearningConfig, recipe: QuickstartConfig) -> Path:
    from finscribe.data.build_dataset import (
        build_dataset_from_manifest,
        write_jsonl_atomic,
    )
    from finscribe.synthetic.export import generate_dataset

    if config.data is not None:
        return Path(config.data)
    manifest = generate_dataset(recipe.num_samples, config.output_dir / "data", seed=config.seed, dpi=recipe.dpi,
                                degrade=recipe.degrade, locales=tuple(recipe.locales),
                                held_out_layouts=tuple(recipe.held_out_layouts))
    path = config.output_dir / "records.jsonl"
    write_jsonl_atomic(path, build_dataset_from_manifest(manifest, regions=recipe.regions).to_list())
    return path


def _row(name: str, steps: int, minutes: float, report: dict[str, Any]) -> dict[str, Any]:
    row = {"checkpoint": name, "steps": steps, "train_minutes": round(minutes, 2),
           **{k: report["overall"][k] for k in KEYS}}
    for group, values in report.get("generalisation", {}).items():
        row[f"field_accuracy [{group}]"] = values["field_accuracy"]
    for region, values in report.get("per_region", {}).items():
        row[f"field_accuracy [{region}]"] = values["field_accuracy"]
    return row


def run(config: LearningConfig) -> list[dict[str, Any]]:
    import resource

    from finscribe.data.selection import RecordSelection
    from finscribe.eval.report import evaluate
    from finscribe.eval.report_config import EvaluateConfig
    from finscribe.generation_args import GenerationArgs
    from finscribe.training.train import TrainConfig, train

    recipe = QuickstartConfig(num_samples=config.num_samples, seed=config.seed)
    if config.regions:
        recipe.regions = tuple(config.regions)
    out = Path(config.output_dir)
    save_config(config, out)
    data = _records(config, recipe)
    base = recipe.base_model()
    every = max(1, config.max_steps // config.points)
    started, cpu0 = time.time(), resource.getrusage(resource.RUSAGE_SELF).ru_utime
    train(TrainConfig(data=data, model=base, output_dir=out / "model", max_steps=config.max_steps,
                      batch_size=config.batch_size, gradient_accumulation_steps=1,
                      learning_rate=config.learning_rate or recipe.lr(), warmup_ratio=recipe.warmup_ratio,
                      regions=recipe.regions, save_steps=every, save_total_limit=None, eval_generate_samples=0,
                      logging_steps=every, seed=config.seed, report_to=("none",)))
    cpu_seconds = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu0
    print(f"training: {(time.time() - started) / 60:.1f} min wall, {cpu_seconds / 60:.1f} min CPU (user, all threads)")
    checkpoints = sorted((out / "model").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    points = [("reader (before fine-tuning)", 0, 0.0, base)] + [
        (p.name, int(p.name.split("-")[1]), ((p / "trainer_state.json").stat().st_mtime - started) / 60, p)
        for p in checkpoints]
    selection = RecordSelection(data=data, split="test", regions=tuple(recipe.regions), limit=config.eval_limit)
    rows = []
    for name, steps, minutes, path in points:
        def evaluated(blank: bool, path: Any = path, name: str = name) -> dict[str, Any]:
            return evaluate(EvaluateConfig(
                generation=GenerationArgs(model=str(path), batch_size=16, max_new_tokens=recipe.max_new_tokens),
                records=selection, output_dir=out / "eval" / (name.split(" ")[0] + ("-blank" if blank else "")),
                held_out_layouts=tuple(recipe.held_out_layouts), blank_images=blank), show_progress=False)

        row = _row(name, steps, minutes, evaluated(blank=False))
        control = evaluated(blank=True)
        row["field_accuracy on blank images"] = control["overall"]["field_accuracy"]
        for region, values in control["per_region"].items():
            row[f"field_accuracy [{region}] on blank images"] = values["field_accuracy"]
        rows.append(row)
        print(json.dumps(rows[-1]), flush=True)
    _write(out, rows, recipe.regions)
    return rows


def _write(out: Path, rows: list[dict[str, Any]], regions: tuple[str, ...]) -> None:
    import matplotlib.pyplot as plt

    from finscribe.eval.charts import (
        save_figure,  # selects the Agg backend before pyplot is imported
    )
    from finscribe.fileio import write_json_atomic, write_text_atomic

    write_json_atomic(out / "learning.json", rows)
    columns = list(rows[-1])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(f"{100 * v:.1f} %" if isinstance(v, float) and c not in ("train_minutes",)
                                       else str(v) for c, v in row.items()) + " |")
    write_text_atomic(out / "learning.md", "\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(7, 4))
    minutes = [r["train_minutes"] for r in rows]
    for key in ("field_accuracy", "char_accuracy", "exact_match"):
        ax.plot(minutes, [100 * (r[key] or 0) for r in rows], marker="o", label=key.replace("_", " "))
    for key in [k for k in columns if k.startswith("field_accuracy [") and not k.endswith("blank images")]:
        ax.plot(minutes, [100 * (r.get(key) or 0) for r in rows], marker="x", linestyle="--", label=key)
    ax.plot(minutes, [100 * (r["field_accuracy on blank images"] or 0) for r in rows], color="grey", linestyle=":",
            marker="s", label="field accuracy, same checkpoint on blank images")
    ax.set_xlabel("training minutes (wall clock, this CPU)")
    ax.set_ylabel("% on held-out test crops")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Tiny reader fine-tuned: {', '.join(regions)} crops")
    fig.tight_layout()
    save_figure(fig, out / "learning_curve.png")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    config = parse_config(LearningConfig, argv, "benchmarks/learning.py", __doc__.split("\n\n")[0])
    run(config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
