"""One document: predict it, score it against its ground truth, compare two models on it.

    python examples/evaluate_model.py --image crop.png --ground-truth crop.json \
        --model runs/train/final --output results.json [--region totals_section]
    python examples/evaluate_model.py --image invoice.pdf --ground-truth label.json --model runs/train/final
    python compare_base_vs_finetuned.py --image crop.png --model runs/train/final \
        --output comparison.json [--base models/paddleocr-vl] [--ground-truth crop.json] [--region R]

The document is read by `finscribe.ingest.read_document`, the intake the service uses: PNG, JPEG,
TIFF or PDF, one page or many. A multi-page file is predicted page by page and its pages merged
into one document (`finscribe.data.merge.merge_pages`, as the service merges them), which is what
is scored and validated; each page's prediction stays in the result under "pages".

`--base` defaults to the model --model was fine-tuned from (finscribe.model_card.base_model_of).

The ground truth is a region annotation `{"region": ..., "fields": {...}}` (its region is used)
or a full label (the image is a page, or one of its regions with `--region`). Scores are the
ones `finscribe evaluate` reports per record (`scoring.score_record`).

A page (no region named, no region annotation) goes the page path, as in the service and
`evaluate --pages`: the detector (`--layout-model`) finds its regions, each crop (widened by
`--margin`) is read with its region's prompt, and the regions are merged into the document, which
is what is scored and validated; `--boxes FILE` gives the boxes instead of the detector. The
result lists per page the boxes, their scores, the regions not found and each region's output.
`--region page` reads the whole page with the page prompt instead (a model trained on pages).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finscribe.config import config_to_dict, parse_config
from finscribe.data.formatters import PAGE, serialize_target
from finscribe.data.merge import merge_pages
from finscribe.data.schema import (
    REGIONS,
    SchemaError,
    read_label,
    read_region_annotation,
)
from finscribe.detection import PageRegions, clamp_box, detect_regions, load_detector
from finscribe.eval.document_config import DocumentCompareConfig, DocumentEvalConfig  # noqa: F401  (the stage's config, torch-free)
from finscribe.eval.pages import in_process, page_prediction, read_pages
from finscribe.eval.pages_config import PAGE_MARGIN, DetectorArgs
from finscribe.eval.report import EvaluationError
from finscribe.eval.scoring import METRICS, metrics, score_record
from finscribe.eval.validation import passes_validation, validate_document
from finscribe.fileio import write_json_atomic
from finscribe.inference import GenerationArgs, Prediction, predict
from finscribe.ingest import DEFAULT_LIMITS, IngestLimits, probe_document, read_document
from finscribe.model import ModelNotAvailableError, load_model
from finscribe.model_card import ModelProvenanceError, base_model_of


def read_ground_truth(path: str | Path, region: str | None = None) -> tuple[str, dict[str, Any]]:
    """(region, fields) from a region annotation or a full label; a full label gives region "page"
    unless `region` picks one of its regions. Errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"{path}: ground-truth file not found")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise EvaluationError(f"{path}: not valid JSON ({err})") from None
    try:
        if isinstance(raw, dict) and "fields" in raw:
            found, fields = read_region_annotation(path)
            if region not in (None, found):
                raise EvaluationError(f"{path}: the annotation is for region {found!r}, not {region!r}")
            return found, fields
        label = read_label(path)
    except SchemaError as err:
        raise EvaluationError(str(err)) from None
    if region in (None, PAGE):
        return PAGE, label
    if region not in label:
        raise EvaluationError(f"{path}: unknown region {region!r}; expected one of {[*REGIONS, PAGE]}")
    return region, label[region]


def combine_pages(predictions: list[Prediction], region: str) -> Prediction:
    """One Prediction for a multi-page document: the pages' parsed outputs merged (`merge_pages`),
    their raw texts joined by newlines, token counts and times summed."""
    if len(predictions) == 1:
        return predictions[0]
    parsed_pages = [p.parsed for p in predictions if p.parsed is not None]
    parsed = None
    if parsed_pages:
        documents = parsed_pages if region == PAGE else [{region: fields} for fields in parsed_pages]
        merged, _ = merge_pages(documents)
        parsed = merged if region == PAGE else merged.get(region, {})
    errors = [f"page {n}: {p.error}" for n, p in enumerate(predictions, start=1) if p.error]
    return Prediction(parsed=parsed, raw_text="\n".join(p.raw_text for p in predictions),
                      error="; ".join(errors) or None, repetition=any(p.repetition for p in predictions),
                      prompt_tokens=sum(p.prompt_tokens for p in predictions),
                      new_tokens=sum(p.new_tokens for p in predictions), seconds=sum(p.seconds for p in predictions))


def read_boxes(path: Path, sizes: list[tuple[int, int]], image: str | Path = "") -> list[PageRegions]:
    """`--boxes FILE` → one PageRegions per page (see DocumentEvalConfig.boxes); errors name the file.
    A `finscribe detect` boxes.jsonl gives its lines whose `source` is `image` (all, if none is)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        if Path(path).suffix == ".jsonl":
            raw = [json.loads(line) for line in text.splitlines() if line.strip()]
            mine = [line for line in raw if isinstance(line, dict) and Path(str(line.get("source"))).name == Path(image).name]
            raw = sorted(mine, key=lambda line: line.get("page", 0)) or raw
        else:
            raw = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EvaluationError(f"--boxes {path}: cannot read it as JSON ({err})") from None
    per_page = raw if isinstance(raw, list) else [raw]
    if len(per_page) != len(sizes):
        raise EvaluationError(f"--boxes {path}: boxes for {len(per_page)} page(s), but the document has {len(sizes)}; "
                              "give a list with one {region: [x0, y0, x1, y1]} object per page")
    found = []
    for n, (boxes, size) in enumerate(zip(per_page, sizes), start=1):
        boxes = boxes.get("boxes", boxes) if isinstance(boxes, dict) else boxes
        if not isinstance(boxes, dict) or set(boxes) - set(REGIONS):
            raise EvaluationError(f"--boxes {path}: page {n}: expected {{region: [x0, y0, x1, y1]}} with regions "
                                  f"among {list(REGIONS)}, got {str(boxes)[:120]}")
        clamped = {}
        for region, box in boxes.items():
            ok = isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)
            inside = clamp_box(box, size) if ok else None
            if inside is None:
                raise EvaluationError(f"--boxes {path}: page {n}: {region} box {box} is not [x0, y0, x1, y1] inside "
                                      f"the {size[0]}x{size[1]} page")
            clamped[region] = inside
        found.append(PageRegions(size=size, boxes={r: clamped[r] for r in REGIONS if r in clamped},
                                 scores={r: 1.0 for r in REGIONS if r in clamped},
                                 missing=tuple(r for r in REGIONS if r not in clamped)))
    return found


def detect_document(image: str | Path, detector: DetectorArgs, boxes: Path | None = None,
                    limits: IngestLimits = DEFAULT_LIMITS) -> list[PageRegions]:
    """The regions of every page of a document: from `boxes` (a --boxes file) or the detector."""
    _, pages = read_document(image, limits)
    if boxes is not None:
        return read_boxes(boxes, [page.size for page in pages], image)
    model, processor = load_detector(detector.layout_model)
    return detect_regions(model, processor, pages, snap=detector.snap)


def _read_page_regions(model: Any, processor: Any, pages: list[Any], found: list[PageRegions], margin: int,
                       generation: GenerationArgs) -> tuple[list[Prediction], list[dict[str, Any]]]:
    """(one merged Prediction per page, per page its boxes, scores, missing regions and region outputs)."""
    read = read_pages(in_process(model, processor, generation), pages, found, margin=margin,
                      batch_size=generation.batch_size, show_progress=False)
    per_page = [page_prediction(regions, found[n].missing) for n, regions in enumerate(read)]
    detail = [{"page": n, **found[n - 1].to_json(), "predictions": {r: p.to_dict() for r, p in regions.items()}}
              for n, regions in enumerate(read, start=1)]
    return per_page, detail


def evaluate_document(model: Any, processor: Any, image: str | Path, region: str,
                      ground_truth: dict[str, Any] | None = None, *, generation: GenerationArgs | None = None,
                      limits: IngestLimits = DEFAULT_LIMITS, found: list[PageRegions] | None = None,
                      margin: int = PAGE_MARGIN) -> dict[str, Any]:
    """Predict one document file (any page count); with ground-truth fields, score it as
    `evaluate` scores a record. `generation` gives max_new_tokens, batch_size, repetition_window
    constrained and beams. `found` (one PageRegions per page, `detect_document`): the document is
    pages read region by region at those boxes (widened by `margin`) and merged; else every page
    is read whole with the prompt of `region`."""
    kind, pages = read_document(image, limits)  # IngestError names the file
    g = generation or GenerationArgs(model="(given)")
    regions_detail = None
    if found is not None:
        page_predictions, regions_detail = _read_page_regions(model, processor, pages, found, margin, g)
    else:
        page_predictions = predict(model, processor, pages, region, max_new_tokens=g.max_new_tokens,
                                   batch_size=g.batch_size, repetition_window=g.repetition_window,
                                   constrained=g.constrained, beams=g.beams, accept=passes_validation)
    prediction = combine_pages(page_predictions, region)
    result: dict[str, Any] = {"image": str(image), "kind": kind, "num_pages": len(pages), "region": region,
                              "prediction": prediction.to_dict()}
    if regions_detail is not None:
        result["regions"] = regions_detail
        result["missing"] = [r for r in REGIONS if all(r in page.missing for page in found)]  # on no page
    if len(pages) > 1:
        result["pages"] = [{"page": n, "prediction": p.to_dict()} for n, p in enumerate(page_predictions, start=1)]
    if prediction.parsed is not None:
        doc = prediction.parsed if region == PAGE else {region: prediction.parsed}
        result["violations"] = [f"{v.rule}: {v.field}: {v.message}" for v in validate_document(doc)]
    if ground_truth is not None:
        record = {"image": str(image), "region": region, "target": serialize_target(ground_truth),
                  "source_id": Path(str(image)).stem, "layout": None, "split": None}
        row = score_record(record, prediction)
        result["metrics"] = {k: v for k, v in metrics([row]).items() if k != "records"}
        result["per_field"] = row["per_field"]
    return result


def _region_and_truth(config: DocumentEvalConfig) -> tuple[str, dict[str, Any] | None]:
    if config.region is not None and config.region not in (*REGIONS, PAGE):
        raise EvaluationError(f"unknown region {config.region!r}; expected one of {[*REGIONS, PAGE]}")
    if config.ground_truth is not None:
        return read_ground_truth(config.ground_truth, config.region)
    return config.region or PAGE, None


def _page_regions(config: DocumentEvalConfig, region: str) -> list[PageRegions] | None:
    """The boxes of the page path (detected, or --boxes), or None when the image is read whole:
    a named region (a crop), or `--region page` (the page prompt)."""
    if region != PAGE or config.region == PAGE:
        if config.boxes is not None:
            raise EvaluationError(f"--boxes is for a page read region by region; the image is read as "
                                  f"{'the whole page (--region page)' if region == PAGE else f'a {region} crop'}")
        return None
    return detect_document(config.image, config.detector, config.boxes)


def _load(model_id: str, generation: GenerationArgs, flag: str) -> tuple[Any, Any]:
    try:
        return load_model(model_id, dtype=generation.dtype, device=generation.device)
    except ModelNotAvailableError as err:
        raise ModelNotAvailableError(f"{flag} {model_id}: {err}") from None


def _check_image(path: Path) -> None:
    """Check the document (type, pages, sizes: headers only) before any model is loaded; IngestError names the file."""
    if not Path(path).is_file():
        raise EvaluationError(f"image {path} not found; pass --image PATH of an existing PNG, JPEG, TIFF or PDF")
    probe_document(path)


def evaluate_main(argv: list[str] | None = None, prog: str = "evaluate_model.py") -> int:
    """Predict (and score, with --ground-truth) one image; write the result JSON."""
    config = parse_config(DocumentEvalConfig, argv, prog, "Evaluate a model on one document image.")
    _check_image(config.image)
    region, truth = _region_and_truth(config)
    found = _page_regions(config, region)
    model, processor = _load(config.generation.model, config.generation, "--model")
    result = {"settings": config_to_dict(config), "model": config.generation.model,
              **evaluate_document(model, processor, config.image, region, truth, generation=config.generation,
                                  found=found, margin=config.detector.margin)}
    write_json_atomic(config.output, result)
    print(result["prediction"]["raw_text"])
    for key, label in METRICS:
        if result.get("metrics", {}).get(key) is not None:
            print(f"{label:<26} {result['metrics'][key]:.4f}")
    print(f"wrote {config.output}")
    return 0


def compare_main(argv: list[str] | None = None, prog: str = "compare_base_vs_finetuned.py") -> int:
    """Run the base and the fine-tuned model on one image; write both outputs (and deltas with
    --ground-truth) to one JSON."""
    config = parse_config(DocumentCompareConfig, argv, prog,
                          "Compare the base and the fine-tuned PaddleOCR-VL on one document image.")
    _check_image(config.image)
    region, truth = _region_and_truth(config)
    if config.base is None:  # the model's own base, never a hub id picked blindly
        try:
            config.base = base_model_of(config.generation.model)
        except ModelProvenanceError as err:
            raise ModelProvenanceError(f"--base not given and {err}") from None
        print(f"--base not given: using {config.base}, the base {config.generation.model} was trained from")
    found = _page_regions(config, region)  # detected once: both models read the same boxes
    results = {}
    for name, model_id, flag in (("base", config.base, "--base"), ("model", config.generation.model, "--model")):
        model, processor = _load(model_id, config.generation, flag)
        results[name] = {"model": model_id, **evaluate_document(model, processor, config.image, region, truth,
                                                                 generation=config.generation, found=found,
                                                                 margin=config.detector.margin)}
        del model, processor
    out: dict[str, Any] = {"settings": config_to_dict(config), "image": str(config.image), "region": region, **results}
    if truth is not None:
        out["deltas"] = {key: results["model"]["metrics"][key] - results["base"]["metrics"][key]
                         for key, _ in METRICS if results["base"]["metrics"][key] is not None}
    write_json_atomic(config.output, out)
    for name in ("base", "model"):
        print(f"{name}: {results[name]['prediction']['raw_text']}")
    for key, delta in out.get("deltas", {}).items():
        print(f"{dict(METRICS)[key]:<26} base {results['base']['metrics'][key]:.4f}  "
              f"model {results['model']['metrics'][key]:.4f}  delta {delta:+.4f}")
    print(f"wrote {config.output}")
    return 0
