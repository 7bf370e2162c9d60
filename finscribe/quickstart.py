"""`finscribe quickstart`: the whole loop end to end, in one command.

generate invoices → build the dataset → train → evaluate → compare base vs fine-tuned (with the
blank-image control) → evaluate again with validated beams → evaluate whole test pages through the
detector and at their true boxes (validated beams too) → print where the reports are, the headline
numbers and every goal beside its figure.

    finscribe quickstart                                   # CPU: fine-tune the tiny reader (time: README)
    finscribe quickstart --model PaddlePaddle/PaddleOCR-VL  # GPU: the real 0.9B model, LoRA

Every step writes under `--output-dir` (default runs/quickstart): data/, dataset/, model/, eval/,
compare/, eval_beams/, eval_pages/, plus quickstart_config.json and summary.json.

With `--model tiny` the base is FinScribe's **tiny reader** (`finscribe/assets/tiny_reader`): a
~2.5 M-parameter PaddleOCR-VL built from the real classes and pretrained on the real model's base
task, `OCR:` → the text of a crop (`finscribe pretrain-reader`). Like the real PaddleOCR-VL it
can read but knows no JSON schema; the quickstart fine-tunes it into the extractor. The base of
the comparison is that reader before fine-tuning, and the same fine-tuned model is scored once
more on white images of the same sizes: only the accuracy above that control comes from reading.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from finscribe.config import parse_config, save_config
from finscribe.data.build_dataset import build_dataset_from_manifest, write_jsonl_atomic
from finscribe.data.selection import RecordSelection
from finscribe.errors import ConfigError
from finscribe.eval.pages_config import DetectorArgs
from finscribe.eval.region_summary import read_rows, region_goals, region_table
from finscribe.eval.report import CompareConfig, EvaluateConfig, compare, evaluate
from finscribe.fileio import ensure_output_dir, write_json_atomic
from finscribe.inference import GenerationArgs
from finscribe.machine import describe_machine, machine_line
from finscribe.quickstart_config import TINY, TINY_READER, QuickstartConfig  # noqa: F401  (re-exported)
from finscribe.synthetic.export import generate_dataset
from finscribe.training.train import TrainConfig, train

logger = logging.getLogger(__name__)


def _step(name: str, timings: dict[str, float]):
    """Context manager that prints a step banner and records its wall time."""
    class _Timer:
        def __enter__(self):
            print(f"\n== quickstart: {name} ==", flush=True)
            self.start = time.perf_counter()

        def __exit__(self, *exc: Any) -> None:
            timings[name] = round(time.perf_counter() - self.start, 1)
    return _Timer()


def run_quickstart(config: QuickstartConfig) -> dict[str, Any]:
    """Run every step; returns the summary dict (also written to OUTPUT_DIR/summary.json)."""
    out = ensure_output_dir(config.output_dir)
    base = config.base_model()
    save_config(config, out, name="quickstart_config.json")
    timings: dict[str, float] = {}
    started = time.perf_counter()

    with _step("generate invoices", timings):
        manifest = generate_dataset(config.num_samples, out / "data", seed=config.seed, workers=config.workers,
                                    dpi=config.dpi, degrade=config.degrade, locales=tuple(config.locales),
                                    held_out_layouts=tuple(config.held_out_layouts))
    with _step("build dataset", timings):
        records = build_dataset_from_manifest(manifest, regions=config.regions).to_list()
        data = out / "dataset" / "records.jsonl"
        write_jsonl_atomic(data, records)
        counts = {s: sum(r["split"] == s for r in records) for s in ("train", "val", "test")}
        print(f"{len(records)} records {counts} -> {data}")
        if counts["train"] == 0 or counts["test"] == 0:
            raise ConfigError(f"{data} has {counts} records; raise --num-samples so train and test are non-empty")

    with _step("train", timings):
        train_config = TrainConfig(
            data=data, model=base, output_dir=out / "model", max_steps=config.max_steps,
            batch_size=config.batch_size // config.micro_batches, gradient_accumulation_steps=config.micro_batches,
            learning_rate=config.lr(),
            warmup_ratio=config.warmup_ratio, lr_scheduler="cosine", use_lora=config.lora(),
            freeze_vision=config.freeze_vision, vision_lr=None if config.freeze_vision else config.vision_lr,
            max_pixels=config.pixels(),
            regions=tuple(config.regions), sampling=config.sampling,
            logging_steps=max(1, min(50, config.max_steps // 10)),
            save_steps=config.max_steps, save_total_limit=1, eval_generate_samples=0,
            val_limit=config.eval_limit or None,  # the end-of-run validation loss on as many crops as the test scores
            max_new_tokens=config.max_new_tokens, seed=config.seed, report_to=("none",),
        )
        model_dir = str(train(train_config))

    generation = GenerationArgs(model=model_dir, batch_size=config.eval_batch_size, max_new_tokens=config.max_new_tokens)
    selection = RecordSelection(data=data, split="test", regions=tuple(config.regions),
                                limit=config.eval_limit or None)
    common = dict(generation=generation, records=selection, held_out_layouts=tuple(config.held_out_layouts))
    with _step("evaluate fine-tuned", timings):
        report = evaluate(EvaluateConfig(output_dir=out / "eval", **common))
    # Compare reuses that pass for the fine-tuned side (greedy answers are the same), and runs the
    # base model and the control that makes the margin honest: the same fine-tuned model on white
    # images of the same sizes scores what it learnt as priors (schema, the usual currency, "0.00"
    # discounts); only the accuracy above it comes from reading the document.
    with _step("compare base vs fine-tuned (+ blank-image control)", timings):
        result = compare(CompareConfig(base=base, output_dir=out / "compare", blank_images=True,
                                       model_predictions=out / "eval", **common))
    beams_report = None
    if config.validated_beams > 1:
        # The product's best decoding, beside greedy: a beam whose amounts do not add up gives way
        # to the next one that does (finscribe.inference, `--beams`).
        with _step(f"evaluate fine-tuned, validated beams ({config.validated_beams})", timings):
            beams_report = evaluate(EvaluateConfig(
                output_dir=out / "eval_beams", records=selection, held_out_layouts=tuple(config.held_out_layouts),
                generation=dataclasses.replace(generation, beams=config.validated_beams)))

    pages_report = None
    if config.page_eval_limit > 0:
        # The product's path end to end: whole test pages through the detector, each region read with
        # its prompt and merged into the document, beside the same pages at their true boxes.
        # Validated beams when the run has them: the document goals are the product's best decoding.
        page_generation = dataclasses.replace(generation, beams=max(1, config.validated_beams))
        with _step("evaluate fine-tuned on whole test pages (detected and true boxes)", timings):
            pages_report = evaluate(EvaluateConfig(
                output_dir=out / "eval_pages", pages=True, generation=page_generation,
                held_out_layouts=tuple(config.held_out_layouts), detector=DetectorArgs(layout_model=config.layout_model),
                # the crop pass of the same decoding: at the true boxes the pages' crops are the dataset's
                reads_from=out / ("eval_beams" if beams_report is not None else "eval"),
                records=RecordSelection(data=manifest, split="test", regions=tuple(config.regions),
                                        limit=config.page_eval_limit)))

    timings["total"] = round(time.perf_counter() - started, 1)
    summary = _summary(result, report, out, model_dir, timings, beams_report)
    if pages_report is not None:
        summary["pages"] = _pages_summary(pages_report)
        summary["goals"] = region_goals(summary["per_region"], pages=summary["pages"], seconds=timings["total"])
        summary["reports"]["evaluation_pages"] = str(out / "eval_pages" / "report.md")
    write_json_atomic(out / "summary.json", summary)
    print(_summary_text(summary), flush=True)
    return summary


HEADLINE = ("field_accuracy", "char_accuracy", "exact_match", "json_validity_rate")


def _summary(result: dict[str, Any], report: dict[str, Any], out: Path, model_dir: str,
             timings: dict[str, float], beams_report: dict[str, Any] | None = None) -> dict[str, Any]:
    blank = result["blank_images"]
    beams = beams_report or {"overall": {}, "per_field": {}}
    overall = {"base": {}, "model": {}, "model_blank_images": {}, "model_validated_beams": {}}
    for key in HEADLINE:
        delta = result["deltas"][key]
        overall["base"][key] = delta.get("base")
        overall["model"][key] = delta.get("model")
        overall["model_blank_images"][key] = blank["overall"][key]
        overall["model_validated_beams"][key] = beams["overall"].get(key)
    groups = result.get("generalisation", {})
    # per region, recomputed from the prediction files (fields are per region: two `address` fields)
    per_region = region_table(read_rows(out / "eval" / "predictions.jsonl"),
                              blank_rows=read_rows(out / "compare" / "blank_images_predictions.jsonl"),
                              beams_rows=read_rows(out / "eval_beams" / "predictions.jsonl") if beams_report else (),
                              token_cap=report.get("max_new_tokens"))
    per_field = {name: {"model": row["accuracy"], "model_blank_images": blank["per_field"].get(name, {}).get("accuracy"),
                        "model_validated_beams": beams["per_field"].get(name, {}).get("accuracy")}
                 for name, row in report["per_field"].items()}
    digits = {side: table.get("all amounts", {}) for side, table in
              (("model", result["digit_positions"]["model"]), ("model_blank_images", blank["digit_positions"]))}
    return {
        "base": result["base"], "model": model_dir, "test_records": result["records"],
        "overall": overall,
        "validated_beams": beams_report["beams"] if beams_report else None,
        "per_region": per_region, "max_new_tokens": report.get("max_new_tokens"),
        "goals": region_goals(per_region, seconds=timings.get("total")),
        "amount_digits_by_position": digits,
        "image_dependent_field_accuracy": _difference(overall["model"]["field_accuracy"],
                                                      overall["model_blank_images"]["field_accuracy"]),
        "per_field": per_field,
        "by_layout_group": {name: {"records": g["records"], **{side: {k: g[side][k] for k in HEADLINE}
                                                              for side in ("base", "model")}}
                            for name, g in groups.items()},
        "seconds": timings,
        "machine": describe_machine(),  # a time means little without its host (finscribe/machine.py)
        "reports": {"comparison": str(out / "compare" / "comparison.md"),
                    "comparison_plot": str(out / "compare" / "comparison.png"),
                    "evaluation": str(out / "eval" / "report.md"),
                    **({"evaluation_validated_beams": str(out / "eval_beams" / "report.md")} if beams_report else {}),
                    "loss_curve": str(Path(model_dir) / "loss_curve.png"),
                    "summary": str(out / "summary.json")},
    }


PAGE_FIGURES = ("field_accuracy", "exact_match", "validation_pass_rate", "teds")


def _pages_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The page-level evaluation's figures (finscribe.eval.pages): per document with detected and with
    true boxes, field accuracy per region, and the cost of detection (detected − oracle field accuracy)."""
    sides = [side for side in ("detected", "oracle") if side in report]
    return {"pages": report["pages"], "regions": report["regions"], "layout_model": report["layout_model"],
            "validated_beams": report["beams"],
            **{side: {key: report[side]["overall"][key] for key in PAGE_FIGURES} for side in sides},
            "per_region_field_accuracy": {side: {region: row["field_accuracy"]
                                                 for region, row in report[side]["per_region"].items()} for side in sides},
            "regions_not_detected": report["detected"]["regions_not_detected"],
            "detection_cost": report.get("detection_cost", {}).get("field_accuracy")}


def _pages_lines(pages: dict[str, Any] | None) -> list[str]:
    if not pages:
        return []
    decoding = f"validated beams ({pages['validated_beams']})" if pages["validated_beams"] > 1 else "greedy"
    lines = ["", f"whole test pages ({pages['pages']} pages; regions detected by {pages['layout_model']}, read "
                 f"({decoding}), merged, scored against each page's label):",
             f"  {'per document':<28}{'detected':>10}{'true boxes':>12}{'cost':>9}"]
    for key in PAGE_FIGURES:
        detected, oracle = pages["detected"][key], pages.get("oracle", {}).get(key)
        cost = _difference(detected, oracle)
        lines.append(f"  {key + (' (all fields)' if key == 'exact_match' else ''):<28}{_pct(detected):>10}"
                     f"{_pct(oracle):>12}{'n/a' if cost is None else f'{100 * cost:+.1f}':>9}")
    for region, value in pages["per_region_field_accuracy"]["detected"].items():
        oracle = pages["per_region_field_accuracy"].get("oracle", {}).get(region)
        lines.append(f"  {region + ' field accuracy':<28}{_pct(value):>10}{_pct(oracle):>12}"
                     f"   not detected on {pages['regions_not_detected'][region]} page(s)")
    return lines


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _pct(value: Any) -> str:
    return "  n/a" if value is None else f"{100 * float(value):5.1f}%"


def _summary_text(summary: dict[str, Any]) -> str:
    lines = ["", "== quickstart: done ==",
             f"test crops: {summary['test_records']}   total time: {summary['seconds']['total']:.0f} s "
             f"(" + ", ".join(f"{k} {v:.0f} s" for k, v in summary["seconds"].items() if k != "total") + ")",
             f"machine: {machine_line(summary['machine'])}",
             "", f"{'metric':<22}{'base':>8}{'fine-tuned':>12}{'fine-tuned, blank images':>26}"
                 f"{'fine-tuned, validated beams':>29}"]
    overall = summary["overall"]
    for key in HEADLINE:
        lines.append(f"{key:<22}{_pct(overall['base'][key]):>8}{_pct(overall['model'][key]):>12}"
                     f"{_pct(overall['model_blank_images'][key]):>26}{_pct(overall['model_validated_beams'][key]):>29}")
    for name, group in summary["by_layout_group"].items():
        lines.append(f"  {name} ({group['records']} crops): field accuracy "
                     f"{_pct(group['base']['field_accuracy']).strip()} -> {_pct(group['model']['field_accuracy']).strip()}")
    lines += ["", "per field (fine-tuned / same model on blank images / fine-tuned with validated beams; the first "
                  "gap is what it reads from the image):"]
    width = max((len(name) for name in summary["per_field"]), default=0) + 2
    for name, row in summary["per_field"].items():
        lines.append(f"  {name:<{width}}{_pct(row['model']):>8}{_pct(row['model_blank_images']):>8}"
                     f"{_pct(row['model_validated_beams']):>8}")
    gain = summary["image_dependent_field_accuracy"]
    lines.append(f"field accuracy that needs the image: {_pct(gain).strip()} "
                 "(fine-tuned minus blank-image control)")
    digits = summary["amount_digits_by_position"]
    if digits["model"]:
        lines += ["", "amount digits right by position (fine-tuned / same model on blank images):"]
        for position, cell in digits["model"].items():
            blank = digits["model_blank_images"].get(position, {}).get("accuracy")
            lines.append(f"  {position:<8}{_pct(cell['accuracy']):>8}{_pct(blank):>8}   ({cell['total']} digits)")
    lines += ["", "per region (fine-tuned / same model on blank images / the gap it reads from the image / "
                  "validated beams):",
              f"  {'region':<18}{'crops':>6}{'field acc':>11}{'blank':>8}{'gap':>8}{'beams':>8}"
              f"{'TEDS':>8}{'TEDS-S':>8}{'rows':>8}"]
    for region, row in summary["per_region"].items():
        table = "".join(f"{_pct(row.get(key)):>8}" for key in ("teds", "teds_structure", "row_exact_match")) \
            if region == "line_items_table" else ""
        lines.append(f"  {region:<18}{row['records']:>6}{_pct(row['field_accuracy']):>11}{_pct(row['blank_images']):>8}"
                     f"{_pct(row['image_gap']):>8}{_pct(row['validated_beams']):>8}{table}")
    bands = summary["per_region"].get("line_items_table", {}).get("rows_by_position") or {}
    if bands:
        lines.append("  line-item rows exact by their place in the table: "
                     + ", ".join(f"{band.removeprefix('rows ')} {_pct(value).strip()}" for band, value in bands.items()))
    for region, row in summary["per_region"].items():
        if row.get("stopped_at_cap"):
            lines.append(f"  ! {region}: {row['stopped_at_cap']} of {row['records']} answers used all of --max-new-tokens "
                         f"{summary.get('max_new_tokens')}: their JSON was cut short; raise --max-new-tokens "
                         "(a line-items table's JSON runs to ~1,300 of the tiny reader's tokens)")
    lines += _pages_lines(summary.get("pages"))
    if summary["goals"]:
        lines += ["", "goals (issue 28, held-out test invoices; the figure beside each goal):"]
        for goal in summary["goals"]:
            if goal["at_most"]:
                target, measured = f"<= {goal['target']:.0f}", f"{goal['measured']:.1f}"
            else:
                target, measured = f">= {_pct(goal['target']).strip()}", _pct(goal["measured"]).strip()
            verdict = "not measured" if goal["met"] is None else "met" if goal["met"] else "NOT MET"
            lines.append(f"  {goal['goal']:<62} goal {target:>8}   measured {measured:>7}   {verdict}")
    width = max(len(k) for k in summary["reports"]) + 2
    lines += ["", "reports:"] + [f"  {k:<{width}}{v}" for k, v in summary["reports"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "finscribe quickstart") -> int:
    """`finscribe quickstart [--model tiny|PaddlePaddle/PaddleOCR-VL] [--output-dir runs/quickstart]`."""
    config = parse_config(QuickstartConfig, argv, prog, __doc__.split("\n\n")[0])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run_quickstart(config)
    return 0
