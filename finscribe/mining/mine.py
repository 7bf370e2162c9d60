"""`finscribe mine`: run a model over labelled records, classify every output, log the misses.

    finscribe mine --model runs/tiny-sft --data data/synth/records.jsonl \
        --error-dir data/hard_samples --split test --regions totals_section

Writes into the error folder: the hard-sample log (`errors.jsonl` + `images/`, see
`finscribe.mining.error_logger`), `summary.json` / `summary.md` / `summary.png` (this run's
counts per error type and region) and `mine_config.json`. Retrain on the log with
`finscribe train ... --hard-samples data/hard_samples --hard-ratio 0.2`.
"""

from __future__ import annotations

import collections
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finscribe.config import arg, config_to_dict, parse_config, save_config
from finscribe.data.formatters import OCR_PROMPT
from finscribe.fileio import write_json_atomic
from finscribe.mining.error_classifier import ErrorType, find_errors
from finscribe.mining.error_logger import DEFAULT_ERROR_DIR, load_error_log, log_error


@dataclass
class MineConfig:
    model: str = arg(help="model to mine with: a local checkpoint/adapter folder or a hub id")
    data: Path = arg(help="labelled records (the JSONL of `finscribe build-dataset`, or a training manifest)")
    error_dir: Path = arg(DEFAULT_ERROR_DIR, "hard-sample folder to append the errors to")
    split: str = arg("test", "records of this split only ('all' for every split)")
    regions: tuple[str, ...] = arg((), "regions to mine (empty: every region in the data)")
    batch_size: int = arg(8, "images per generate() call")
    max_new_tokens: int = arg(256, "generation budget per output")
    limit: int | None = arg(None, "mine only the first N selected records (a quick look)")
    device: str | None = arg(None, "cpu / cuda / cuda:1 (None: cuda when available)")

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError("--batch-size and --max-new-tokens must be ≥ 1")


@dataclass(frozen=True)
class MinedSample:
    """One record's outcome: its primary error type and every error found."""

    record: dict[str, Any]
    error_type: ErrorType
    errors: list[dict[str, Any]]
    pred: dict[str, Any] | None  # the parsed output; None when it was not JSON
    raw_text: str


def select_records(records: list[dict[str, Any]], split: str, regions: tuple[str, ...], source: str) -> list[dict[str, Any]]:
    """The records of `split` ('all': every split) and `regions` (empty: all); errors name what exists."""
    # "OCR:" records (base-task replay) have plain-text targets: nothing to classify as JSON.
    chosen = [r for r in records if (split == "all" or r.get("split") == split) and r.get("prompt") != OCR_PROMPT]
    if not chosen:
        splits = sorted({str(r.get("split")) for r in records})
        raise SystemExit(f"error: {source}: no record of split {split!r}; splits present: {splits} (or --split all)")
    if regions:
        present = {r["region"] for r in chosen}
        unknown = sorted(set(regions) - present)
        if unknown:
            raise SystemExit(f"error: {source}: no {split} record of region(s) {unknown}; present: {sorted(present)}")
        chosen = [r for r in chosen if r["region"] in regions]
    return chosen


def classify_records(
    model: Any,
    processor: Any,
    records: list[dict[str, Any]],
    *,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    show_progress: bool = True,
) -> list[MinedSample]:
    """Predict every record (`inference.predict_records`: grouped by region, batched, tqdm) and
    classify each output against the record's target, in record order."""
    from finscribe.inference import predict_records

    predictions = predict_records(model, processor, records, batch_size=batch_size,
                                  max_new_tokens=max_new_tokens, show_progress=show_progress)
    results = []
    for record, prediction in zip(records, predictions, strict=True):
        gt = json.loads(record["target"])
        pred = prediction.parsed if prediction.parsed is not None else prediction.raw_text
        errors = find_errors(pred, gt, raw_text=prediction.raw_text, repetition=prediction.repetition,
                             region=record["region"])
        error_type = errors[0].error_type if errors else ErrorType.OTHER
        results.append(MinedSample(record, error_type, [e.to_dict() for e in errors],
                                   prediction.parsed, prediction.raw_text))
    return results


def summarize(results: list[MinedSample]) -> dict[str, Any]:
    """Counts of this run: per primary error type, per region × type, and per field-level error type."""
    by_type = collections.Counter(r.error_type.value for r in results)
    by_region: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    field_errors = collections.Counter()
    for r in results:
        by_region[r.record["region"]][r.error_type.value] += 1
        field_errors.update(e["error_type"] for e in r.errors)
    order = [t.value for t in ErrorType]
    n_errors = len(results) - by_type.get("OTHER", 0)
    return {
        "samples": len(results),
        "errors": n_errors,
        "error_rate": n_errors / len(results) if results else 0.0,
        "by_type": {t: by_type[t] for t in order if by_type[t]},
        "by_region": {region: {t: c[t] for t in order if c[t]} for region, c in sorted(by_region.items())},
        "field_errors_by_type": {t: field_errors[t] for t in order if field_errors[t]},
    }


def summary_markdown(summary: dict[str, Any]) -> str:
    types = [t.value for t in ErrorType if any(t.value in c for c in summary["by_region"].values())]
    lines = [
        "# Hard-sample mining",
        "",
        f"Model `{summary['config']['model']}` on `{summary['config']['data']}` (split {summary['config']['split']}): "
        f"{summary['errors']} of {summary['samples']} outputs wrong ({summary['error_rate']:.1%}); "
        f"the log now holds {summary['log_records']} distinct hard samples.",
        "",
        "| region | " + " | ".join(types) + " | samples |",
        "|---|" + "---:|" * (len(types) + 1),
    ]
    for region, counts in summary["by_region"].items():
        lines.append(f"| {region} | " + " | ".join(str(counts.get(t, 0)) for t in types) + f" | {sum(counts.values())} |")
    lines += ["", "Field-level errors (every error found, not just the most severe per output):", ""]
    lines += [f"- {t}: {c}" for t, c in summary["field_errors_by_type"].items()]
    return "\n".join(lines) + "\n"


def plot_summary(summary: dict[str, Any], path: Path) -> None:
    """A stacked bar chart of wrong outputs per error type, one colour per region."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    types = [t.value for t in ErrorType if t is not ErrorType.OTHER]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    bottom = [0] * len(types)
    for region, counts in summary["by_region"].items():
        heights = [counts.get(t, 0) for t in types]
        ax.barh(types, heights, left=bottom, label=region)
        bottom = [b + h for b, h in zip(bottom, heights)]
    ax.invert_yaxis()  # most severe on top
    ax.set_xlabel("outputs (most severe error of each)")
    ax.set_title(f"{summary['errors']} of {summary['samples']} outputs wrong")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def mine(config: MineConfig) -> dict[str, Any]:
    """Run the whole stage (see the module docstring); returns the summary it wrote."""
    from finscribe.data.build_dataset import load_records
    from finscribe.training.model import load_model

    records = select_records(load_records(config.data).to_list(), config.split, config.regions, str(config.data))
    if config.limit is not None:
        records = records[: config.limit]
    model, processor = load_model(config.model, device=config.device)
    results = classify_records(model, processor, records, batch_size=config.batch_size,
                               max_new_tokens=config.max_new_tokens)
    error_dir = Path(config.error_dir)
    for r in results:
        if r.error_type != "OTHER":
            log_error(r.record["image"], json.loads(r.record["target"]),
                      r.pred, r.error_type, error_dir, region=r.record["region"],
                      model=config.model, raw_text=r.raw_text, errors=r.errors,
                      source_id=r.record.get("source_id"), layout=r.record.get("layout"))
    error_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(results)
    summary["log_records"] = len(load_error_log(error_dir).records)
    summary["config"] = config_to_dict(config)
    write_json_atomic(error_dir / "summary.json", summary)
    tmp = error_dir / ".summary.md.tmp"
    tmp.write_text(summary_markdown(summary), encoding="utf-8")
    tmp.replace(error_dir / "summary.md")
    plot_summary(summary, error_dir / "summary.png")
    save_config(config, error_dir, name="mine_config.json")
    return summary


def main(argv: list[str] | None = None, prog: str = "finscribe mine") -> int:
    config = parse_config(MineConfig, argv, prog, "Run a model over labelled records, classify every output "
                          "and append the wrong ones to the hard-sample log (see finscribe.mining.mine).")
    from finscribe.data.build_dataset import DatasetBuildError
    from finscribe.data.schema import SchemaError
    from finscribe.mining.error_logger import ErrorLogError
    from finscribe.training.model import ModelNotAvailableError

    try:
        summary = mine(config)
    except (DatasetBuildError, SchemaError, ErrorLogError, ModelNotAvailableError) as err:
        raise SystemExit(f"error: {err}") from None
    print(summary_markdown(summary))
    print(f"wrote {config.error_dir}/summary.json, summary.md, summary.png; log: {config.error_dir}/errors.jsonl")
    return 0
