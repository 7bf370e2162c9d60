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
Generation goes through `finscribe.inference.predict_records`, the one inference path.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finscribe.config import arg, parse_config, save_config
from finscribe.data.build_dataset import DatasetBuildError, collect_from_manifest, load_records, write_jsonl_atomic
from finscribe.data.formatters import PAGE
from finscribe.data.records import field_coverage
from finscribe.data.schema import REGIONS, SchemaError
from finscribe.fileio import write_json_atomic
from finscribe.eval import charts
from finscribe.eval.bootstrap import paired_bootstrap
from finscribe.eval.report_markdown import comparison_markdown, report_markdown
from finscribe.eval.scoring import HELD_OUT, METRICS, SEEN, metric_terms, metrics, score_record, summarise


class EvaluationError(ValueError):
    """Bad evaluation input (missing data file, empty split, unknown region); the message says what to do."""


@dataclass
class EvaluateConfig:
    model: str = arg(help="model folder (save_pretrained, training output or LoRA adapter) or hub id")
    data: Path = arg(help="training_manifest.json of `finscribe generate` or a JSONL of `finscribe build-dataset`")
    split: str = arg("test", "split to evaluate ('all' for every record)")
    regions: tuple[str, ...] = arg((), f"regions to evaluate (default: every region in the data; 'page' = whole pages); "
                                       f"choices: {', '.join((*REGIONS, PAGE))}")
    output_dir: Path = arg(Path("runs/eval"), "folder for predictions.jsonl, report.json/.md and the charts")
    batch_size: int = arg(8, "images per generation batch")
    max_new_tokens: int = arg(512, "hard cap on generated tokens per image")
    repetition_window: int = arg(128, "longest loop period (tokens) the repetition guard looks for; 0 = off")
    limit: int | None = arg(None, "evaluate only the first N records (quick checks)")
    held_out_layouts: tuple[str, ...] = arg((), "layouts held out of training (default: read from the manifest's config)")
    resamples: int = arg(1000, "bootstrap resamples for the confidence intervals")
    seed: int = arg(0, "bootstrap seed")
    device: str | None = arg(None, "cuda, cpu, ... (default: cuda when available)")
    dtype: str | None = arg(None, "float32, bfloat16, ... (default: bf16 on capable GPUs, else float32)")
    blank_images: bool = arg(False, "control run: every image replaced by a white one of the same size, so the "
                                    "scores show what the model answers without seeing the document")

    def __post_init__(self) -> None:
        _check_common(self)


@dataclass
class CompareConfig:
    base: str = arg(help="base model folder or hub id (PaddlePaddle/PaddleOCR-VL needs a local download here)")
    model: str = arg(help="fine-tuned model folder (or LoRA adapter folder)")
    data: Path = arg(help="training_manifest.json or build-dataset JSONL")
    split: str = arg("test", "split to evaluate ('all' for every record)")
    regions: tuple[str, ...] = arg((), "regions to evaluate (default: every region in the data)")
    output_dir: Path = arg(Path("runs/compare"), "folder for comparison.json/.md/.png and both predictions files")
    batch_size: int = arg(8, "images per generation batch")
    max_new_tokens: int = arg(512, "hard cap on generated tokens per image")
    repetition_window: int = arg(128, "longest loop period (tokens) the repetition guard looks for; 0 = off")
    limit: int | None = arg(None, "compare on the first N records only")
    held_out_layouts: tuple[str, ...] = arg((), "layouts held out of training (default: from the manifest's config)")
    resamples: int = arg(1000, "paired bootstrap resamples")
    seed: int = arg(0, "bootstrap seed")
    device: str | None = arg(None, "cuda, cpu, ... (default: cuda when available)")
    dtype: str | None = arg(None, "float32, bfloat16, ... (default: bf16 on capable GPUs, else float32)")

    def __post_init__(self) -> None:
        _check_common(self)


def _check_common(config: Any) -> None:
    unknown = sorted(set(config.regions) - {*REGIONS, PAGE})
    if unknown:
        raise ValueError(f"unknown region(s) {unknown}; expected some of {[*REGIONS, PAGE]}")
    for name in ("batch_size", "max_new_tokens", "resamples"):
        if getattr(config, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    if config.limit is not None and config.limit < 1:
        raise ValueError("--limit must be >= 1")


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


def load_eval_records(data: Path, split: str = "test", regions: tuple[str, ...] | list[str] = (),
                      limit: int | None = None) -> list[dict[str, Any]]:
    """The records to evaluate: one split ('all' = every split) and regions of a manifest or JSONL."""
    data = Path(data)
    if not data.is_file():
        raise EvaluationError(f"{data}: data file not found; pass the training_manifest.json written by "
                              "`finscribe generate` or a JSONL written by `finscribe build-dataset`")
    splits = None if split == "all" else [split]
    try:
        if data.suffix == ".json":
            wanted = [r for r in regions if r != PAGE] if regions else list(REGIONS)
            records, _ = collect_from_manifest(data, regions=wanted, include_pages=PAGE in regions, splits=splits)
        else:
            records = [dict(r) for r in load_records(data)]
    except (DatasetBuildError, SchemaError) as err:
        raise EvaluationError(str(err)) from None
    found_splits = sorted({r["split"] for r in records})
    records = [r for r in records if (splits is None or r["split"] == split) and (not regions or r["region"] in regions)]
    if not records:
        raise EvaluationError(f"{data}: no records for split {split!r} and regions {list(regions) or 'all'} "
                              f"(splits in the data: {found_splits or 'none'}); use --split all or another split")
    return records[:limit] if limit else records


@functools.lru_cache(maxsize=None)
def _blank(size: tuple[int, int]) -> Any:
    from PIL import Image

    return Image.new("L", size, 255)  # one shared white image per size (pages share a few sizes)


def blank_like(image: Any) -> Any:
    """A white image of the same size as `image` (a PIL image or a file, of which only the header is read)."""
    from PIL import Image, UnidentifiedImageError

    if hasattr(image, "size"):
        return _blank(tuple(image.size))
    try:
        with Image.open(image) as opened:
            return _blank(tuple(opened.size))
    except (OSError, UnidentifiedImageError) as err:
        raise EvaluationError(f"{image}: cannot read image: {err}. Re-export it or drop it from the data.") from None


def run_model(model_path: str, records: list[dict[str, Any]], *, batch_size: int = 8, max_new_tokens: int = 512,
              repetition_window: int = 128, device: str | None = None, dtype: str | None = None,
              show_progress: bool = True, blank_images: bool = False) -> tuple[list[dict[str, Any]], float]:
    """Load a model, predict every record, score it: (rows, wall seconds of prediction).

    `blank_images`: the prior-only control: the model sees a white image of each record's size
    (same number of image tokens, no content); rows are still scored against the real labels."""
    from finscribe.inference import predict_records
    from finscribe.training.model import load_model

    model, processor = load_model(model_path, dtype=dtype, device=device)
    inputs = [dict(r, image=blank_like(r["image"])) for r in records] if blank_images else records
    start = time.perf_counter()
    predictions = predict_records(model, processor, inputs, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                  repetition_window=repetition_window, show_progress=show_progress)
    wall = time.perf_counter() - start
    del model, processor
    gc.collect()  # release the weights before a second model is loaded (compare)
    return [score_record(r, p) for r, p in zip(records, predictions)], wall


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- evaluate


def evaluate(model_path: str, data: str | Path, *, split: str = "test", regions: tuple[str, ...] | None = None,
             output_dir: str | Path = "runs/eval", batch_size: int = 8, max_new_tokens: int = 512,
             limit: int | None = None, repetition_window: int = 128, held_out_layouts: tuple[str, ...] = (),
             resamples: int = 1000, seed: int = 0, device: str | None = None, dtype: str | None = None,
             show_progress: bool = True, blank_images: bool = False) -> dict[str, Any]:
    """Evaluate one model on a split; writes the files listed in the module docstring and
    returns the report dict (also report.json). `blank_images=True` is the prior-only control
    (see `run_model`)."""
    config = EvaluateConfig(model=str(model_path), data=Path(data), split=split, regions=tuple(regions or ()),
                            output_dir=Path(output_dir), batch_size=batch_size, max_new_tokens=max_new_tokens,
                            repetition_window=repetition_window, limit=limit,
                            held_out_layouts=tuple(held_out_layouts), resamples=resamples, seed=seed,
                            device=device, dtype=dtype, blank_images=blank_images)
    records = load_eval_records(config.data, split, config.regions, limit)
    held_out = list(held_out_layouts) or held_out_layouts_of(config.data)
    rows, wall = run_model(config.model, records, batch_size=batch_size, max_new_tokens=max_new_tokens,
                           repetition_window=repetition_window, device=device, dtype=dtype,
                           show_progress=show_progress, blank_images=blank_images)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out)
    write_jsonl_atomic(out / "predictions.jsonl", rows)
    report = {"model": config.model, "data": str(config.data), "split": split, "max_new_tokens": max_new_tokens,
              "blank_images": blank_images,
              "prediction_seconds": wall, "images_per_second": len(rows) / wall if wall else None,
              "field_coverage": field_coverage(records),  # partial labels: which fields were scored
              **summarise(rows, held_out_layouts=held_out, resamples=resamples, seed=seed)}
    write_json_atomic(out / "report.json", report)
    charts.field_accuracy_chart(report["per_field"], out / "field_accuracy.png")
    charts.error_breakdown_chart(report["error_breakdown"], report["violations"], out / "error_breakdown.png")
    _write_text_atomic(out / "report.md", report_markdown(report))
    return report


# ----------------------------------------------------------------------------- compare


def _deltas(base_rows: list[dict], model_rows: list[dict], resamples: int, seed: int) -> dict[str, dict[str, Any]]:
    groups = [row["source_id"] for row in base_rows]
    out = {}
    for key, _ in METRICS:
        base_terms = [metric_terms(row, key) for row in base_rows]
        model_terms = [metric_terms(row, key) for row in model_rows]
        out[key] = paired_bootstrap([n for n, _ in base_terms], [d for _, d in base_terms],
                                    [n for n, _ in model_terms], [d for _, d in model_terms], groups,
                                    resamples=resamples, seed=seed)
    return out


def _side_by_side(base_rows: list[dict], model_rows: list[dict], key: Any) -> dict[str, dict[str, Any]]:
    names = sorted({str(key(r)) for r in base_rows})
    table = {}
    for name in names:
        picked = [i for i, r in enumerate(base_rows) if str(key(r)) == name]
        base, model = metrics([base_rows[i] for i in picked]), metrics([model_rows[i] for i in picked])
        table[name] = {"records": len(picked), "base": base, "model": model}
    return table


def compare(base: str, model: str, data: str | Path, *, split: str = "test", regions: tuple[str, ...] | None = None,
            output_dir: str | Path = "runs/compare", batch_size: int = 8, max_new_tokens: int = 512,
            limit: int | None = None, repetition_window: int = 128, held_out_layouts: tuple[str, ...] = (),
            resamples: int = 1000, seed: int = 0, device: str | None = None, dtype: str | None = None,
            show_progress: bool = True) -> dict[str, Any]:
    """Both models on the same records; deltas model − base with paired bootstrap 95 % intervals."""
    config = CompareConfig(base=str(base), model=str(model), data=Path(data), split=split,
                           regions=tuple(regions or ()), output_dir=Path(output_dir), batch_size=batch_size,
                           max_new_tokens=max_new_tokens, repetition_window=repetition_window, limit=limit,
                           held_out_layouts=tuple(held_out_layouts), resamples=resamples, seed=seed,
                           device=device, dtype=dtype)
    records = load_eval_records(config.data, split, config.regions, limit)
    held_out = set(held_out_layouts or held_out_layouts_of(config.data))
    kwargs = dict(batch_size=batch_size, max_new_tokens=max_new_tokens, repetition_window=repetition_window,
                  device=device, dtype=dtype, show_progress=show_progress)
    base_rows, base_wall = run_model(config.base, records, **kwargs)
    model_rows, model_wall = run_model(config.model, records, **kwargs)
    result: dict[str, Any] = {
        "base": config.base, "model": config.model, "data": str(config.data), "split": split,
        "records": len(records), "documents": len({r["source_id"] for r in base_rows}),
        "prediction_seconds": {"base": base_wall, "model": model_wall},
        "bootstrap": {"resamples": resamples, "seed": seed, "unit": "document (source_id)", "level": 0.95},
        "deltas": _deltas(base_rows, model_rows, resamples, seed),
        "per_region": _side_by_side(base_rows, model_rows, lambda r: r["region"]),
        "held_out_layouts": sorted(held_out),
    }
    if held_out:
        result["generalisation"] = _side_by_side(base_rows, model_rows,
                                                 lambda r: HELD_OUT if r["layout"] in held_out else SEEN)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out)
    write_jsonl_atomic(out / "base_predictions.jsonl", base_rows)
    write_jsonl_atomic(out / "model_predictions.jsonl", model_rows)
    write_json_atomic(out / "comparison.json", result)
    charts.comparison_chart(result["deltas"], dict(METRICS), out / "comparison.png")
    _write_text_atomic(out / "comparison.md", comparison_markdown(result))
    return result


# ----------------------------------------------------------------------------- CLIs


def _run_cli(function: Any, config: Any) -> int:
    from finscribe.training.model import ModelNotAvailableError

    kwargs = {k: v for k, v in vars(config).items() if k not in ("model", "data", "base")}
    try:
        if function is compare:
            result = compare(config.base, config.model, config.data, **kwargs)
            for key, label in METRICS:
                d = result["deltas"][key]
                if d["delta"] is not None:
                    print(f"{label:<26} base {d['base']:.4f}  model {d['model']:.4f}  delta {d['delta']:+.4f} "
                          f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]")
        else:
            result = evaluate(config.model, config.data, **kwargs)
            for key, label in METRICS:
                if result["overall"][key] is not None:
                    print(f"{label:<26} {result['overall'][key]:.4f}")
    except (EvaluationError, ModelNotAvailableError) as err:
        raise SystemExit(f"error: {err}") from None
    print(f"wrote {config.output_dir}")
    return 0


def main(argv: list[str] | None = None, prog: str = "finscribe evaluate") -> int:
    """`finscribe evaluate --model PATH --data MANIFEST_OR_JSONL [--split test] --output-dir runs/eval`."""
    config = parse_config(EvaluateConfig, argv, prog, __doc__.split("\n\n")[0])
    return _run_cli(evaluate, config)


def compare_main(argv: list[str] | None = None, prog: str = "finscribe compare") -> int:
    """`finscribe compare --base B --model M --data D --output-dir runs/compare`."""
    config = parse_config(CompareConfig, argv, prog, "Compare a base and a fine-tuned model on the same records "
                          "(deltas with paired bootstrap 95 % intervals).")
    return _run_cli(compare, config)
