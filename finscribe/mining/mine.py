"""`finscribe mine`: run a model over labelled records, classify every output, log the misses.

    finscribe mine --model runs/tiny-sft --data data/synth/records.jsonl \
        --output-dir data/hard_samples --split test --regions totals_section

Writes into the error folder: the hard-sample log (`errors.jsonl` + `images/`, see
`finscribe.mining.error_logger`), `summary.json` / `summary.md` / `summary.png` (this run's
counts per error type and region) and `mine_config.json`. Retrain on the log with
`finscribe train ... --hard-samples data/hard_samples --hard-ratio 0.2`.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finscribe.config import config_to_dict, parse_config, save_config
from finscribe.data.selection import load_selection
from finscribe.eval.charts import plt, save_figure
from finscribe.eval.validation import passes_validation
from finscribe.fileio import ensure_output_dir, write_json_atomic, write_text_atomic
from finscribe.inference import GenerationArgs, predict_records
from finscribe.mining.error_classifier import ErrorType, find_errors
from finscribe.mining.error_logger import load_error_log, log_error
from finscribe.mining.mine_config import MineConfig  # noqa: F401  (the stage's config, torch-free)


@dataclass(frozen=True)
class MinedSample:
    """One record's outcome: its primary error type and every error found."""

    record: dict[str, Any]
    error_type: ErrorType
    errors: list[dict[str, Any]]
    pred: dict[str, Any] | None  # the parsed output; None when it was not JSON
    raw_text: str


def classify_records(
    model: Any,
    processor: Any,
    records: list[dict[str, Any]],
    generation: GenerationArgs,
    *,
    show_progress: bool = True,
) -> list[MinedSample]:
    """Predict every record (`inference.predict_records`: grouped by region, batched, tqdm) and
    classify each output against the record's target, in record order."""

    if hasattr(model, "predict_records"):  # a finscribe.engine_vllm.VLLMEngine: same Predictions, from a server
        predictions = model.predict_records(records, generation, show_progress=show_progress)
    else:
        predictions = predict_records(model, processor, records, generation, show_progress=show_progress,
                                      accept=passes_validation)
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
        f"Model `{summary['config']['generation']['model']}` on `{summary['config']['records']['data']}` "
        f"(split {summary['config']['records']['split']}): "
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
    save_figure(fig, path)


def mine(config: MineConfig) -> dict[str, Any]:
    """Run the whole stage (see the module docstring); returns the summary it wrote."""

    error_dir = ensure_output_dir(config.output_dir)  # before the long prediction pass
    # "OCR:" records (base-task replay) have plain-text targets: nothing to classify as JSON.
    records = load_selection(config.records, skip_ocr=True)
    if config.generation.engine != "transformers":  # generation on a vLLM server (finscribe.engine_vllm)
        from finscribe.engine_vllm import open_engine

        with open_engine(config.generation) as engine:
            results = classify_records(engine, None, records, config.generation)
    else:
        model, processor = config.generation.load()
        results = classify_records(model, processor, records, config.generation)
    for r in results:
        if r.error_type != "OTHER":
            log_error(r.record["image"], json.loads(r.record["target"]),
                      r.pred, r.error_type, error_dir, region=r.record["region"],
                      model=config.generation.model, raw_text=r.raw_text, errors=r.errors,
                      source_id=r.record.get("source_id"), layout=r.record.get("layout"))
    summary = summarize(results)
    summary["log_records"] = len(load_error_log(error_dir).records)
    summary["config"] = config_to_dict(config)
    write_json_atomic(error_dir / "summary.json", summary)
    write_text_atomic(error_dir / "summary.md", summary_markdown(summary))
    plot_summary(summary, error_dir / "summary.png")
    save_config(config, error_dir, name="mine_config.json")
    return summary


def main(argv: list[str] | None = None, prog: str = "finscribe mine") -> int:
    config = parse_config(MineConfig, argv, prog, "Run a model over labelled records, classify every output "
                          "and append the wrong ones to the hard-sample log (see finscribe.mining.mine).")
    summary = mine(config)
    print(summary_markdown(summary))
    print(f"wrote {config.output_dir}/summary.json, summary.md, summary.png; log: {config.output_dir}/errors.jsonl")
    return 0
