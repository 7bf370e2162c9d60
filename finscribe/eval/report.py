"""The evaluate and compare runners: predictions + metrics → JSON, Markdown and PNG charts.

    finscribe evaluate --model runs/train/final --data data/synthetic/training_manifest.json \
        --split test --output-dir runs/eval
    finscribe compare --base models/paddleocr-vl --model runs/train/final \
        --data data/synthetic/training_manifest.json --output-dir runs/compare

`evaluate` writes predictions.jsonl (one scored row per record, see `scoring.score_record`),
report.json, report.md, field_accuracy.png, error_breakdown.png and config.json. Held-out
layouts (the generator's `held_out_layouts`, read from the manifest, or `--held-out-layouts`)
are reported apart from the seen ones. `compare` runs both models on the same records and
reports every metric's delta (model − base) with a paired bootstrap 95 % interval over
documents, in comparison.json, comparison.md and comparison.png (+ both predictions files).
`compare --model-predictions DIR` takes the fine-tuned side from an `evaluate` folder of the same
pass instead of generating it again (`finscribe.eval.reuse`).
Generation goes through `finscribe.inference.predict_records`, the one inference path.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import json
import time
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from finscribe.config import parse_config, save_config
from finscribe.data.build_dataset import write_jsonl_atomic
from finscribe.data.records import field_coverage
from finscribe.data.selection import load_selection
from finscribe.errors import ConfigError, FinScribeError
from finscribe.eval import charts
from finscribe.eval.digits import digit_position_accuracy
from finscribe.eval.pages import compare_pages, evaluate_pages
from finscribe.eval.pages_markdown import pages_comparison_table, pages_table
from finscribe.eval.report_config import CompareConfig, EvaluateConfig  # noqa: F401  (the stage's config, torch-free)
from finscribe.eval.report_markdown import comparison_markdown, report_markdown
from finscribe.eval.reuse import reused_predictions
from finscribe.eval.scoring import (
    HELD_OUT,
    METRICS,
    SEEN,
    metrics,
    paired_deltas,
    per_field_accuracy,
    score_records,
    summarise,
)
from finscribe.eval.validation import passes_validation
from finscribe.fileio import ensure_output_dir, write_json_atomic, write_text_atomic
from finscribe.inference import GenerationArgs, predict_records


class EvaluationError(FinScribeError, ValueError):
    """Bad evaluation input (missing data file, empty split, unknown region); the message says what to do."""


# ----------------------------------------------------------------------------- data


def _held_out_from(manifest: Path) -> list[str]:
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    layouts = data.get("config", {}).get("held_out_layouts", []) if isinstance(data, dict) else []
    return [str(x) for x in layouts] if isinstance(layouts, list) else []


def held_out_layouts_of(data: Path) -> list[str]:
    """The generator's held-out layouts for a manifest, or for a JSONL built from one (found via
    the `<stem>.config.json` that `finscribe build-dataset` writes beside it); [] if unknown."""
    data = Path(data)
    if data.suffix == ".json":
        return _held_out_from(data)
    build_config = data.with_name(f"{data.stem}.config.json")
    if build_config.is_file():
        try:
            manifest = json.loads(build_config.read_text(encoding="utf-8")).get("manifest")
        except (json.JSONDecodeError, AttributeError):
            return []  # not a build-dataset config: the report then says the held-out layouts are unknown
        if manifest:
            manifest = Path(manifest)
            return _held_out_from(manifest if manifest.is_absolute() else Path.cwd() / manifest)
    return []


@functools.cache
def _blank(size: tuple[int, int]) -> Any:

    return Image.new("L", size, 255)  # one shared white image per size (pages share a few sizes)


def blank_like(image: Any) -> Any:
    """A white image of the same size as `image` (a PIL image or a file, of which only the header is read)."""

    if hasattr(image, "size"):
        return _blank(tuple(image.size))
    try:
        with Image.open(image) as opened:
            return _blank(tuple(opened.size))
    except (OSError, UnidentifiedImageError) as err:
        raise EvaluationError(f"{image}: cannot read image: {err}. Re-export it or drop it from the data.") from None


def run_model(generation: GenerationArgs, records: list[dict[str, Any]], *, show_progress: bool = True,
              blank_images: bool = False) -> tuple[list[dict[str, Any]], float]:
    """Load `generation.model`, predict every record, score it: (rows, wall seconds of prediction).

    `blank_images`: the prior-only control: the model sees a white image of each record's size
    (same number of image tokens, no content); rows are still scored against the real labels.
    With `--engine vllm` the records go to a vLLM server instead (`finscribe.engine_vllm`), as the
    same Predictions."""
    inputs = [dict(r, image=blank_like(r["image"])) for r in records] if blank_images else records
    if generation.engine != "transformers":
        from finscribe.engine_vllm import open_engine  # httpx only; vLLM itself runs in its own environment

        with open_engine(generation) as engine:
            start = time.perf_counter()
            predictions = engine.predict_records(inputs, generation, show_progress=show_progress)
            wall = time.perf_counter() - start
        return score_records(records, predictions), wall
    model, processor = generation.load()
    start = time.perf_counter()
    predictions = predict_records(model, processor, inputs, generation, show_progress=show_progress,
                                  accept=passes_validation)
    wall = time.perf_counter() - start
    del model, processor
    gc.collect()  # release the weights before a second model is loaded (compare)
    return score_records(records, predictions), wall


# ----------------------------------------------------------------------------- evaluate


def evaluate(config: EvaluateConfig, show_progress: bool = True) -> dict[str, Any]:
    """Evaluate one model on a split; writes the files listed in the module docstring and
    returns the report dict (also report.json). `config.blank_images` is the prior-only control
    (see `run_model`). `config.pages`: whole pages through the detector (`finscribe.eval.pages`)."""
    if config.pages:
        return evaluate_pages(config, show_progress=show_progress)
    out = ensure_output_dir(config.output_dir)  # before the long prediction pass, not after it
    records = load_selection(config.records)
    held_out = list(config.held_out_layouts) or held_out_layouts_of(config.records.data)
    rows, wall = run_model(config.generation, records, show_progress=show_progress, blank_images=config.blank_images)
    save_config(config, out)
    write_jsonl_atomic(out / "predictions.jsonl", rows)
    report = {"model": config.generation.model, "data": str(config.records.data), "split": config.records.split,
              "max_new_tokens": config.generation.max_new_tokens, "blank_images": config.blank_images,
              "constrained": config.generation.constrained, "beams": config.generation.beams,
              "beam_answers_not_top": sum(r["beam"] > 0 for r in rows),  # answers a lower beam gave (validation chose it)
              "prediction_seconds": wall, "images_per_second": len(rows) / wall if wall else None,
              "field_coverage": field_coverage(records),  # partial labels: which fields were scored
              **summarise(rows, held_out_layouts=held_out, resamples=config.resamples, seed=config.seed)}
    write_json_atomic(out / "report.json", report)
    charts.field_accuracy_chart(report["per_field"], out / "field_accuracy.png")
    charts.error_breakdown_chart(report["error_breakdown"], report["violations"], out / "error_breakdown.png")
    write_text_atomic(out / "report.md", report_markdown(report))
    return report


# ----------------------------------------------------------------------------- compare


def _side_by_side(base_rows: list[dict], model_rows: list[dict], key: Any) -> dict[str, dict[str, Any]]:
    names = sorted({str(key(r)) for r in base_rows})
    table = {}
    for name in names:
        picked = [i for i, r in enumerate(base_rows) if str(key(r)) == name]
        base, model = metrics([base_rows[i] for i in picked]), metrics([model_rows[i] for i in picked])
        table[name] = {"records": len(picked), "base": base, "model": model}
    return table


def compare(config: CompareConfig, show_progress: bool = True) -> dict[str, Any]:
    """Both models on the same records; deltas model − base with paired bootstrap 95 % intervals.
    With `config.blank_images`, the fine-tuned model also runs on white images of the same sizes
    (the prior-only control), reported beside base and model. `config.pages`: whole pages through
    the detector (`finscribe.eval.pages.compare_pages`)."""
    if config.pages:
        return compare_pages(config, show_progress=show_progress)
    out = ensure_output_dir(config.output_dir)
    records = load_selection(config.records)
    held_out = set(config.held_out_layouts or held_out_layouts_of(config.records.data))
    if config.generation.engine_url:
        raise ConfigError("compare runs two models and --engine-url serves one: use --engine vllm (a server per model)")
    base = dataclasses.replace(config.generation, model=config.base)
    base_rows, base_wall = run_model(base, records, show_progress=show_progress)
    if config.model_predictions is not None:  # the same pass, already generated and scored by `evaluate`
        model_rows, model_wall = reused_predictions(config.model_predictions, config.generation, config.records, records)
    else:
        model_rows, model_wall = run_model(config.generation, records, show_progress=show_progress)
    result: dict[str, Any] = {
        "base": config.base, "model": config.generation.model, "data": str(config.records.data),
        "split": config.records.split, "records": len(records), "documents": len({r["source_id"] for r in base_rows}),
        "constrained": config.generation.constrained, "beams": config.generation.beams,
        "prediction_seconds": {"base": base_wall, "model": model_wall},
        "bootstrap": {"resamples": config.resamples, "seed": config.seed, "unit": "document (source_id)", "level": 0.95},
        "deltas": paired_deltas(base_rows, model_rows, resamples=config.resamples, seed=config.seed),
        "per_region": _side_by_side(base_rows, model_rows, lambda r: r["region"]),
        "digit_positions": {"base": digit_position_accuracy(base_rows), "model": digit_position_accuracy(model_rows)},
        "held_out_layouts": sorted(held_out),
        "model_predictions_reused_from": None if config.model_predictions is None else str(config.model_predictions),
    }
    if config.blank_images:
        control_rows, _ = run_model(config.generation, records, show_progress=show_progress, blank_images=True)
        result["blank_images"] = {"overall": metrics(control_rows), "per_field": per_field_accuracy(control_rows),
                                  "digit_positions": digit_position_accuracy(control_rows),
                                  "per_region": {region: metrics([r for r in control_rows if r["region"] == region])
                                                 for region in result["per_region"]}}
        write_jsonl_atomic(out / "blank_images_predictions.jsonl", control_rows)
    if held_out:
        result["generalisation"] = _side_by_side(base_rows, model_rows,
                                                 lambda r: HELD_OUT if r["layout"] in held_out else SEEN)
    save_config(config, out)
    write_jsonl_atomic(out / "base_predictions.jsonl", base_rows)
    write_jsonl_atomic(out / "model_predictions.jsonl", model_rows)
    write_json_atomic(out / "comparison.json", result)
    control = result.get("blank_images", {}).get("overall")
    charts.comparison_chart(result["deltas"], dict(METRICS), out / "comparison.png", control=control)
    write_text_atomic(out / "comparison.md", comparison_markdown(result))
    return result


# ----------------------------------------------------------------------------- CLIs


def main(argv: list[str] | None = None, prog: str = "finscribe evaluate") -> int:
    """`finscribe evaluate --model PATH --data MANIFEST_OR_JSONL [--split test] --output-dir runs/eval`."""
    config = parse_config(EvaluateConfig, argv, prog, __doc__.split("\n\n")[0])
    result = evaluate(config)
    if config.pages:
        print(pages_table(result))
        print(f"wrote {config.output_dir}")
        return 0
    for key, label in METRICS:
        if result["overall"][key] is not None:
            print(f"{label:<26} {result['overall'][key]:.4f}")
    print(f"wrote {config.output_dir}")
    return 0


def compare_main(argv: list[str] | None = None, prog: str = "finscribe compare") -> int:
    """`finscribe compare --base B --model M --data D --output-dir runs/compare`."""
    config = parse_config(CompareConfig, argv, prog, "Compare a base and a fine-tuned model on the same records "
                          "(deltas with paired bootstrap 95 % intervals, and the blank-image control).")
    result = compare(config)
    if config.pages:
        print(pages_comparison_table(result))
        print(f"wrote {config.output_dir}")
        return 0
    control = result.get("blank_images", {}).get("overall", {})
    for key, label in METRICS:
        d = result["deltas"][key]
        if d["delta"] is not None:
            blank = f"  blank images {control[key]:.4f}" if control.get(key) is not None else ""
            print(f"{label:<26} base {d['base']:.4f}  model {d['model']:.4f}  delta {d['delta']:+.4f} "
                  f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]{blank}")
    print(f"wrote {config.output_dir}")
    return 0
