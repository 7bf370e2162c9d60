"""Whole pages through the page path: detect the regions, crop each, extract it with its own prompt,
merge the regions into the document, score the document against the page's full label.

    finscribe evaluate --pages --model runs/ft --data data/synth/training_manifest.json --split test \
        --output-dir runs/eval_pages [--layout-model finscribe/assets/tiny_layout] [--margin 12]
    finscribe compare --pages --base B --model M --data data/synth/training_manifest.json \
        --output-dir runs/compare_pages

Every page is read twice: with the boxes the detector finds (`--layout-model`) and with the
manifest's true boxes (the oracle; `--no-oracle` skips it). Both are widened by `--margin` and read
the same way, so that the cost of detection is one number: a figure with detected boxes minus the
same figure with true boxes. A region the detector misses is not read (never guessed): its fields
count as wrong. `--regions` picks the regions read and scored (default all five); `--limit` the
first N pages.

The figures reuse `finscribe.eval.scoring`: a page is a record of region "page" whose target is
the page's label (of the regions read) and whose prediction is the merged document, so
`summarise` gives the per-document figures (field accuracy per field and overall, exact match =
share of pages with every field right, the merged document's validation pass rate, the TEDS of
the line-items table); each region crop is a record of its region (the per-region figures; a
missed region scores as an empty output). Generation goes through `inference.predict_records`.

`evaluate --pages` writes into --output-dir: report.json, report.md, boxes.jsonl (per page: the
detected boxes, scores and missing regions, and the true boxes), config.json, and detected/ and
oracle/ with each run's predictions.jsonl (one scored row per page), region_predictions.jsonl
(one per region), report.md and charts. `--reads-from DIR` (a `finscribe evaluate` on crops with
the same generation options) answers every region whose crop has exactly the pixels of one of
DIR's crops from DIR instead of reading it again (`finscribe.eval.reuse`); each run's
`reads_reused` counts them. At the true boxes a generated page's crops are the dataset's, so the
quickstart's oracle pass reads nothing. `compare --pages` writes comparison.json/.md/.png and the
two models' predictions in detected/ and oracle/.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from finscribe.config import save_config
from finscribe.data.build_dataset import collect_from_manifest
from finscribe.data.formatters import PAGE, serialize_target
from finscribe.data.records import DatasetBuildError, write_jsonl_atomic
from finscribe.data.schema import REGIONS, canonical_json
from finscribe.data.selection import RecordSelection, select_records
from finscribe.detection import PageRegions, crop_regions, detect_regions, load_detector
from finscribe.errors import ConfigError
from finscribe.eval import charts
from finscribe.eval.layout import box_scores
from finscribe.eval.pages_markdown import DETECTED, ORACLE, difference, pages_comparison_markdown, pages_markdown
from finscribe.eval.report_markdown import report_markdown
from finscribe.eval.reuse import earlier_reads, with_earlier_reads
from finscribe.eval.scoring import METRICS, metrics, paired_deltas, score_records, summarise
from finscribe.eval.validation import passes_validation
from finscribe.fileio import ensure_output_dir, write_json_atomic, write_text_atomic
from finscribe.inference import GenerationArgs, Prediction, predict_records

Predict = Callable[[list[dict[str, Any]]], list[Prediction]]  # records ({image, region}) → one Prediction each

# The figures whose detected-minus-oracle difference is the cost of detection.
COST_METRICS = ("field_accuracy", "exact_match", "validation_pass_rate", "teds")
NOT_DETECTED = "region not detected"


@dataclass(frozen=True)
class Page:
    """One labelled page of a manifest: its image, its label and the true region boxes."""

    source_id: str
    layout: str
    split: str
    image: Path
    label: dict[str, Any]
    boxes: dict[str, tuple[int, int, int, int]]

    def record(self, region: str, regions: Sequence[str]) -> dict[str, Any]:
        """The scoring record of the page (region "page": the label of `regions`) or of one region."""
        fields = ({r: self.label[r] for r in regions if r in self.label} if region == PAGE else self.label[region])
        return {"image": str(self.image), "region": region, "target": serialize_target(fields),
                "source_id": self.source_id, "layout": self.layout, "split": self.split}

    def oracle(self) -> PageRegions:
        """The true boxes as the detector would answer them (score 1)."""
        with Image.open(self.image) as page:  # the header only
            size = page.size
        return PageRegions(size=size, boxes={r: self.boxes[r] for r in REGIONS if r in self.boxes},
                           scores={r: 1.0 for r in REGIONS if r in self.boxes},
                           missing=tuple(r for r in REGIONS if r not in self.boxes))


def page_regions(selection: RecordSelection) -> list[str]:
    """The regions a page run reads and scores: `--regions` without "page", else all five."""
    return [r for r in REGIONS if r in selection.regions] or list(REGIONS)


def load_pages(selection: RecordSelection) -> tuple[list[Page], list[str]]:
    """(pages of `selection.split`, first `selection.limit`; the generator's held-out layouts).
    Pages need their labels and true boxes: only a `finscribe generate` manifest has them."""
    data = Path(selection.data)
    if data.suffix != ".json" or not data.is_file():
        raise DatasetBuildError(f"{data}: --pages reads whole pages with their labels and true boxes from the "
                                "training_manifest.json written by `finscribe generate`; pass that file as --data")
    splits = None if selection.split == "all" else [selection.split]
    records, _ = collect_from_manifest(data, regions=(), include_pages=True, splits=splits)  # checks every label
    records = select_records(records, selection.split, (PAGE,), str(data))
    records = records[: selection.limit] if selection.limit else records
    manifest = json.loads(data.read_text(encoding="utf-8"))
    boxes = {s["id"]: {r: tuple(int(v) for v in e["box"]) for r, e in s["regions"].items() if "box" in e}
             for s in manifest["samples"]}
    pages = [Page(r["source_id"], r["layout"], r["split"], Path(r["image"]), json.loads(r["target"]),
                  boxes.get(r["source_id"], {})) for r in records]
    held_out = manifest.get("config", {}).get("held_out_layouts", [])
    return pages, [str(x) for x in held_out] if isinstance(held_out, list) else []


# ----------------------------------------------------------------------------- pages → regions → documents


def detect_pages(images: Sequence[Path], layout_model: str | Path, *, show_progress: bool = True,
                 batch_size: int = 8, snap: bool = True) -> list[PageRegions]:
    """The detector's regions of every page file (the detector runs on the CPU: it is small next
    to the reader, and the reader keeps the accelerator)."""
    model, processor = load_detector(layout_model)
    found: list[PageRegions] = []
    for start in tqdm(range(0, len(images), batch_size), desc="detect regions", unit="batch", disable=not show_progress):
        batch = []
        for path in images[start:start + batch_size]:
            with Image.open(path) as page:
                batch.append(page.convert("RGB"))
        found += detect_regions(model, processor, batch, snap=snap)
    return found


def read_pages(predict: Predict, images: Sequence[Any], found: Sequence[PageRegions], *,
               regions: Sequence[str] = REGIONS, margin: int, batch_size: int = 16,
               show_progress: bool = True) -> list[dict[str, Prediction]]:
    """Per page (a file or PIL image), `{region: Prediction}` of each of `regions` found on it:
    its crop (`detection.crop_regions`, widened by `margin`) read with its region's prompt.
    Pages go in chunks so that only a few pages' crops are held at once; in a chunk the crops of
    one region are batched together. `predict`: records → Predictions (`in_process`, or a vLLM
    engine's `predict_records`)."""
    chunk = max(16, batch_size)
    out: list[dict[str, Prediction]] = []
    with tqdm(total=len(images), desc="read regions", unit="page", disable=not show_progress) as bar:
        for start in range(0, len(images), chunk):
            crops = []
            for n, image in enumerate(images[start:start + chunk]):
                if isinstance(image, Image.Image):
                    cut = crop_regions(image.convert("RGB"), found[start + n], margin)
                else:
                    with Image.open(image) as page:
                        cut = crop_regions(page.convert("RGB"), found[start + n], margin)
                crops += [(n, region, crop) for region, crop in cut.items() if region in regions]
            predictions = predict([{"image": c, "region": r} for _, r, c in crops])
            part: list[dict[str, Prediction]] = [{} for _ in images[start:start + chunk]]
            for (n, region, _), prediction in zip(crops, predictions):
                part[n][region] = prediction
            out += part
            bar.update(len(part))
    return out


def page_prediction(predictions: dict[str, Prediction], missing: Sequence[str] = ()) -> Prediction:
    """One Prediction for a page: `parsed` is the document merged from its regions' outputs (REGIONS
    order; None when no region gave JSON), `raw_text` that document's JSON, tokens and times summed;
    `error` lists the regions that gave no JSON and the `missing` ones (not detected)."""
    document = {r: predictions[r].parsed for r in REGIONS if r in predictions and predictions[r].parsed is not None}
    errors = [f"{r}: {p.error}" for r, p in predictions.items() if p.error] + [f"{r}: {NOT_DETECTED}" for r in missing]
    values = list(predictions.values())
    return Prediction(parsed=document or None, raw_text=canonical_json(document) if document else "",
                      error="; ".join(errors) or None, repetition=any(p.repetition for p in values),
                      prompt_tokens=sum(p.prompt_tokens for p in values), new_tokens=sum(p.new_tokens for p in values),
                      seconds=sum(p.seconds for p in values), constrained=any(p.constrained for p in values),
                      beam=max((p.beam for p in values), default=0))


def _not_detected() -> Prediction:
    return Prediction(parsed=None, raw_text="", error=NOT_DETECTED, repetition=False, prompt_tokens=0, new_tokens=0,
                      seconds=0.0)


def score_pages(pages: Sequence[Page], found: Sequence[PageRegions], predictions: Sequence[dict[str, Prediction]],
                regions: Sequence[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(one `score_record` row per page, one per labelled region of each page). Page rows add
    `missing` (labelled regions not detected); region rows add `detected`, `box` and `score`."""
    records, outputs, extras = [], [], []  # scored together (score_records), then given their extra keys
    for page, regions_found, read in zip(pages, found, predictions, strict=True):
        wanted = [r for r in regions if r in page.label]
        missing = [r for r in wanted if r not in read]
        records.append(page.record(PAGE, regions))
        outputs.append(page_prediction(read, missing))
        extras.append({"missing": missing})
        for region in wanted:
            box = regions_found.boxes.get(region)
            records.append(page.record(region, regions))
            outputs.append(read.get(region) or _not_detected())
            extras.append({"detected": box is not None, "box": list(box) if box else None,
                           "score": regions_found.scores.get(region)})
    page_rows, region_rows = [], []
    for record, row, extra in zip(records, score_records(records, outputs), extras, strict=True):
        (page_rows if record["region"] == PAGE else region_rows).append({**row, **extra})
    return page_rows, region_rows


def in_process(model: Any, processor: Any, generation: GenerationArgs) -> Predict:
    """Records → Predictions with a model loaded in this process (validated beams when asked)."""
    return lambda records: predict_records(model, processor, records, generation, show_progress=False,
                                           accept=passes_validation)


def run_pages(generation: GenerationArgs, pages: Sequence[Page], boxes: dict[str, Sequence[PageRegions]],
              regions: Sequence[str], margin: int, *, show_progress: bool = True,
              reads: dict[str, Prediction] | None = None) -> dict[str, tuple[list, list, float, int]]:
    """Load `generation.model` once (or open its vLLM engine, `--engine vllm`) and read and score
    every page at each set of `boxes` ({name: one PageRegions per page}): {name: (page rows, region
    rows, seconds of reading, answers reused)}. `reads` (`reuse.earlier_reads`): answers already
    made on crops of exactly the same pixels, taken instead of reading them again."""
    def read_all(predict: Predict) -> dict[str, tuple[list, list, float, int]]:
        runs = {}
        for name, found in boxes.items():
            reused = [0]
            start = time.perf_counter()
            read = read_pages(with_earlier_reads(predict, reads, reused) if reads else predict,
                              [p.image for p in pages], found, regions=regions, margin=margin,
                              batch_size=generation.batch_size, show_progress=show_progress)
            wall = time.perf_counter() - start
            runs[name] = (*score_pages(pages, found, read, regions), wall, reused[0])
        return runs

    if generation.engine != "transformers":
        from finscribe.engine_vllm import open_engine  # httpx only; vLLM itself runs in its own environment

        with open_engine(generation) as engine:
            return read_all(lambda records: engine.predict_records(records, generation, show_progress=False))
    model, processor = generation.load()
    runs = read_all(in_process(model, processor, generation))
    del model, processor
    gc.collect()  # release the weights before the next model is loaded (compare)
    return runs


def _setup(config: Any, show_progress: bool) -> tuple[Path, list[Page], list[str], list[str], dict[str, list[PageRegions]], dict]:
    """What evaluate and compare --pages share: (output folder, pages, held-out layouts, regions,
    {"detected": boxes, "oracle": true boxes}, the report's common head); boxes.jsonl written."""
    out = ensure_output_dir(config.output_dir)
    pages, held_out = load_pages(config.records)
    held_out = list(config.held_out_layouts) or held_out
    boxes = {DETECTED: detect_pages([p.image for p in pages], config.detector.layout_model, show_progress=show_progress,
                                        snap=config.detector.snap)}
    if config.oracle:
        boxes[ORACLE] = [p.oracle() for p in pages]
    save_config(config, out)
    write_jsonl_atomic(out / "boxes.jsonl", _boxes_lines(pages, boxes[DETECTED]))
    regions = page_regions(config.records)
    head = {"model": config.generation.model, "data": str(config.records.data), "split": config.records.split,
            "pages": len(pages), "regions": regions, "layout_model": str(config.detector.layout_model),
            "margin": config.detector.margin, "detection": box_scores([p.boxes for p in pages], boxes[DETECTED])}
    return out, pages, held_out, regions, boxes, head


# ----------------------------------------------------------------------------- reports


def page_report(page_rows: list[dict], region_rows: list[dict], regions: Sequence[str], held_out: Sequence[str],
                resamples: int, seed: int) -> dict[str, Any]:
    """`summarise` of the page rows (per document, per field, per layout, ...) with `per_region`
    from the region rows."""
    report = summarise(page_rows, held_out_layouts=held_out, resamples=resamples, seed=seed)
    report["per_region"] = {r: metrics([row for row in region_rows if row["region"] == r]) for r in regions
                            if any(row["region"] == r for row in region_rows)}
    report["regions_not_detected"] = {r: sum(not row["detected"] for row in region_rows if row["region"] == r)
                                      for r in report["per_region"]}
    return report


def detection_cost(detected: dict[str, Any], oracle: dict[str, Any]) -> dict[str, Any]:
    """Detected minus oracle: per document for COST_METRICS, and field accuracy per region."""
    return {**{key: difference(detected["overall"][key], oracle["overall"][key]) for key in COST_METRICS},
            "per_region_field_accuracy": {r: difference(row["field_accuracy"], oracle["per_region"].get(r, {}).get("field_accuracy"))
                                          for r, row in detected["per_region"].items()}}


def _write_run(folder: Path, report: dict[str, Any], page_rows: list[dict], region_rows: list[dict],
               prefix: str = "") -> None:
    folder = ensure_output_dir(folder)
    write_jsonl_atomic(folder / f"{prefix}predictions.jsonl", page_rows)
    write_jsonl_atomic(folder / f"{prefix}region_predictions.jsonl", region_rows)
    if not prefix:  # one model's run: its own report.md and charts, as `finscribe evaluate` writes them
        charts.field_accuracy_chart(report["per_field"], folder / "field_accuracy.png")
        charts.error_breakdown_chart(report["error_breakdown"], report["violations"], folder / "error_breakdown.png")
        write_text_atomic(folder / "report.md", report_markdown(report))


def _boxes_lines(pages: Sequence[Page], found: Sequence[PageRegions]) -> list[dict[str, Any]]:
    return [{"source": str(p.image), "source_id": p.source_id, "page": 1, **f.to_json(),
             "true_boxes": {r: list(b) for r, b in p.boxes.items()}} for p, f in zip(pages, found)]


def evaluate_pages(config: Any, show_progress: bool = True) -> dict[str, Any]:
    """`finscribe evaluate --pages` (an `EvaluateConfig`): see the module docstring; returns report.json."""
    if config.blank_images:
        raise ConfigError("--blank-images is a control on crops: run it without --pages (the page path reads "
                          "regions that a detector found on the real pixels)")
    # Checked first: a folder that is another pass is refused before any detection or reading.
    reads = earlier_reads(config.reads_from, config.generation) if config.reads_from is not None else None
    out, pages, held_out, regions, boxes, head = _setup(config, show_progress)
    report: dict[str, Any] = {**head, "max_new_tokens": config.generation.max_new_tokens,
                              "constrained": config.generation.constrained, "beams": config.generation.beams}
    runs = run_pages(config.generation, pages, boxes, regions, config.detector.margin, show_progress=show_progress,
                     reads=reads)
    for name, (page_rows, region_rows, wall, reused) in runs.items():
        run = {"model": config.generation.model, "data": str(config.records.data), "split": config.records.split,
               "boxes": name, "max_new_tokens": config.generation.max_new_tokens, "blank_images": False,
               "prediction_seconds": wall, "reads_reused": reused,
               "reads_from": None if config.reads_from is None else str(config.reads_from),
               **page_report(page_rows, region_rows, regions, held_out, config.resamples, config.seed)}
        _write_run(out / name, run, page_rows, region_rows)
        report[name] = run
    if ORACLE in report:
        report["detection_cost"] = detection_cost(report[DETECTED], report[ORACLE])
    write_json_atomic(out / "report.json", report)
    write_text_atomic(out / "report.md", pages_markdown(report))
    return report


def compare_pages(config: Any, show_progress: bool = True) -> dict[str, Any]:
    """`finscribe compare --pages` (a `CompareConfig`): both models on the same pages at the same
    boxes (detected once; and the true ones), deltas model − base with paired bootstrap 95 %
    intervals over pages."""
    out, pages, held_out, regions, boxes, head = _setup(config, show_progress)
    result: dict[str, Any] = {
        "base": config.base, **head,
        "bootstrap": {"resamples": config.resamples, "seed": config.seed, "unit": "page", "level": 0.95},
    }
    base = dataclasses.replace(config.generation, model=config.base)
    sides = {side: run_pages(generation, pages, boxes, regions, config.detector.margin, show_progress=show_progress)
             for side, generation in (("base", base), ("model", config.generation))}
    for name in boxes:
        reports = {}
        for side, runs in sides.items():
            page_rows, region_rows, _, _ = runs[name]
            reports[side] = page_report(page_rows, region_rows, regions, held_out, config.resamples, config.seed)
            _write_run(out / name, reports[side], page_rows, region_rows, prefix=f"{side}_")
        result[name] = {
            "deltas": paired_deltas(sides["base"][name][0], sides["model"][name][0], resamples=config.resamples,
                                    seed=config.seed),
            "per_region": {r: {"records": row["records"], "base": reports["base"]["per_region"][r], "model": row}
                           for r, row in reports["model"]["per_region"].items()},
            "per_field": {"base": reports["base"]["per_field"], "model": reports["model"]["per_field"]},
        }
    if ORACLE in result:
        result["detection_cost"] = {side: difference(result[DETECTED]["deltas"]["field_accuracy"][side],
                                                      result[ORACLE]["deltas"]["field_accuracy"][side])
                                    for side in ("base", "model")}
    write_json_atomic(out / "comparison.json", result)
    charts.comparison_chart(result[DETECTED]["deltas"], dict(METRICS), out / "comparison.png")
    write_text_atomic(out / "comparison.md", pages_comparison_markdown(result))
    return result
