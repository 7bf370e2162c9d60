"""PaddleOCRVLService: document pages → regions → batched extraction → one merged, validated JSON.

    from finscribe.inference import GenerationArgs
    from finscribe.deploy.service import PaddleOCRVLService
    service = PaddleOCRVLService(GenerationArgs(model="models/finscribe-int8"))  # quantized folders are detected
    result = service.extract(page_image, boxes={"totals_section": [820, 1300, 1240, 1480]})
    detecting = PaddleOCRVLService(GenerationArgs(model="models/finscribe"), detector=PageDetector.load())
    document = detecting.extract_document([(page1, None), (page2, None)])  # detected regions, one merged document

Region boxes come from the caller (the renderer's boxes, a person drawing them on the web page)
or, for a page sent without boxes, from the region detector (`detector=PageDetector.load(...)`,
`finscribe.deploy.detector`): its regions are cropped with a margin, read with their region
prompts, merged and validated, and each region's box and score are in the answer, with the regions
not found listed as `missing`. Without a detector a page without boxes is read whole with the page
prompt (which no FinScribe model is trained on). Crops go
through `finscribe.ingest.fit_for_model` (as training images do through `load_image`) and
generation through `finscribe.inference.predict`, the one generation path, so served outputs
are the outputs evaluation measured. A multi-page document's pages are merged by
`finscribe.data.merge.merge_pages` and validated as a whole; per-page results stay available.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from finscribe.data.formatters import PAGE
from finscribe.data.merge import merge_pages
from finscribe.data.schema import LINE_ITEM_FIELDS, REGION_FIELDS, REGIONS
from finscribe.deploy.detector import Crop, PageDetector, PendingPage, pending_page
from finscribe.deploy.quantize import (
    META_FILE,
    QuantizationError,
    count_parameters,
    is_quantized_folder,
    load_quantized_model,
)
from finscribe.errors import FinScribeError
from finscribe.eval.validation import passes_validation, validate_document
from finscribe.inference import GenerationArgs, Prediction, check_constrained_budget, predict
from finscribe.ingest import fit_for_model

Box = list[float]
__all__ = ["Crop", "PaddleOCRVLService", "PageDetector", "RegionBoxError", "clamp_box", "document_result", "split_page"]


class RegionBoxError(FinScribeError, ValueError):
    """A region box that is unknown, malformed or falls outside the page."""


def clamp_box(box: Box, width: int, height: int, region: str) -> tuple[int, int, int, int]:
    """Round a box to whole pixels inside the page; a box with no area left is an error."""
    if region not in REGIONS:
        raise RegionBoxError(f"unknown region {region!r}; expected one of {', '.join(REGIONS)}")
    if len(box) != 4:
        raise RegionBoxError(f"box for {region} must be [x0, y0, x1, y1], got {box!r}")
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError):
        raise RegionBoxError(f"box for {region} must hold numbers, got {box!r}") from None
    if not all(math.isfinite(v) for v in values):  # int(round(inf)) would overflow
        raise RegionBoxError(f"box for {region} {box!r} holds a number that is not finite; give page pixels")
    x0, y0, x1, y1 = (int(round(v)) for v in values)
    x0, x1 = max(0, min(x0, width)), max(0, min(x1, width))
    y0, y1 = max(0, min(y0, height)), max(0, min(y1, height))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise RegionBoxError(f"box for {region} {box!r} has no area inside the {width}x{height} page")
    return x0, y0, x1, y1


def split_page(page: Image.Image, boxes: dict[str, Box] | None, what: str = "the page") -> list[Crop]:
    """(region, model-ready crop, pixel box) per region; the whole page as region "page" when no
    boxes. Crops are fitted by `finscribe.ingest.fit_for_model` (RGB, downscaled to the processor's
    size, long strips padded); one too small to read is an IngestError (422)."""
    if not boxes:
        return [(PAGE, fit_for_model(page, what), [0, 0, page.width, page.height])]
    crops = []
    for region, box in boxes.items():
        pixel_box = clamp_box(box, page.width, page.height, region)
        crops.append((region, fit_for_model(page.crop(pixel_box), f"the {region} box {list(pixel_box)} of {what}"),
                      list(pixel_box)))
    return crops


def read_fields(document: dict[str, Any]) -> tuple[int, list[str]]:
    """(number of schema fields with a value in `document`, the keys/paths the schema does not know).

    A page prompt answered with flat JSON (`{"total": ...}` instead of `{"totals_section": {...}}`)
    gives zero fields and lists "total" as unrecognised, so the caller can report what it got."""
    count, unknown = 0, []
    for region, fields in document.items():
        if region not in REGION_FIELDS or not isinstance(fields, dict):
            unknown.append(region)
            continue
        for name, value in fields.items():
            if name == "line_items" and region == "line_items_table" and isinstance(value, list):
                count += sum(1 for row in value if isinstance(row, dict) for k, v in row.items()
                             if k in LINE_ITEM_FIELDS and v not in (None, ""))
            elif name in REGION_FIELDS[region] and value not in (None, "") and not isinstance(value, (dict, list)):
                count += 1
            else:
                unknown.append(f"{region}.{name}")
    return count, unknown


def violation_dict(violation: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(violation):
        return dataclasses.asdict(violation)
    return {key: getattr(violation, key, None) for key in ("rule", "field", "message")}


def document_result(pages: list[dict[str, Any]]) -> dict[str, Any]:
    """The file-level result of per-page results: the pages' documents merged (`merge_pages`),
    validated as a whole, with the conflicts the merge found."""
    document, conflicts = merge_pages([page["document"] for page in pages])
    violations = [violation_dict(v) for v in validate_document(document)] if document else []
    fields_read, unrecognised = read_fields(document)
    return {"document": document, "violations": violations, "valid": fields_read > 0 and not violations,
            "fields_read": fields_read, "unrecognised_keys": unrecognised, "conflicts": conflicts}


class PaddleOCRVLService:
    """Loads one model (base, fine-tuned, LoRA adapter, merged or INT8-quantized) and extracts pages.

    `generation` is the shared `GenerationArgs` group (model, device, dtype, batch size, token
    limit, repetition guard, constrained), passed whole: every generation option reaches `predict`
    in `_predict`. A model path with those options as keywords builds the group."""

    def __init__(self, generation: GenerationArgs | str | Path, *, quantized: bool | None = None,
                 detector: PageDetector | None = None, **options: Any):
        # The server passes the shared group whole; a model path + GenerationArgs fields
        # (`PaddleOCRVLService("runs/ft-int8", max_new_tokens=8, device="cpu")`) builds the same group.
        if not isinstance(generation, GenerationArgs):
            generation = GenerationArgs(model=str(generation), **options)
        elif options:
            raise TypeError(f"pass generation options inside the GenerationArgs, not as {sorted(options)}")
        self.generation = generation
        self.detector = detector  # None: a page without boxes is read whole with the page prompt
        model_path = generation.model
        detected = is_quantized_folder(model_path)
        self.quantized = detected if quantized is None else quantized
        if self.quantized and not detected:
            raise QuantizationError(f"{model_path} is not a quantized model folder (no quantization.json); "
                                    "run `finscribe quantize` first or drop --quantized")
        if self.quantized:
            self.model, self.processor = load_quantized_model(model_path, device=generation.device)
        else:
            self.model, self.processor = generation.load()
            if hasattr(self.model, "merge_and_unload"):  # an adapter: merge once, serve a plain model
                self.model = self.model.merge_and_unload()
        self.model.eval()
        if generation.constrained:  # a token cap that cannot hold '{}' fails here, not on the first request
            check_constrained_budget(self.model, self.processor, (*REGIONS, PAGE), generation.max_new_tokens)
        # Responses name the model by its folder name only: the server's paths are nobody's business.
        self.model_name = Path(str(model_path)).name or str(model_path)

    @property
    def batch_size(self) -> int:
        return self.generation.batch_size

    def info(self) -> dict[str, Any]:
        """What `GET /v1/model` reports (no server paths)."""
        method = None
        if self.quantized:
            method = json.loads((Path(self.generation.model) / META_FILE).read_text(encoding="utf-8"))["method"]
        dtype = next((p.dtype for p in self.model.parameters() if p.is_floating_point()), torch.float32)
        return {"model": self.model_name, "quantized": bool(self.quantized), "quantization": method,
                "dtype": str(dtype).removeprefix("torch."), "parameters": count_parameters(self.model),
                "device": str(next(self.model.parameters()).device),
                "max_new_tokens": self.generation.max_new_tokens, "batch_size": self.generation.batch_size,
                "constrained": self.generation.constrained, "beams": self.generation.beams,
                **(self.detector.info() if self.detector else {"layout_model": None})}

    def _predict(self, crops: list[Image.Image], region: str) -> list[Prediction]:
        # The one place GenerationArgs becomes predict options: a new generation option is wired here.
        g = self.generation
        return predict(self.model, self.processor, crops, region, max_new_tokens=g.max_new_tokens,
                       batch_size=g.batch_size, repetition_window=g.repetition_window, constrained=g.constrained,
                       beams=g.beams, accept=passes_validation)

    def extract(self, page_image: Image.Image, boxes: dict[str, Box] | None = None) -> dict[str, Any]:
        """Extract one page → {"document", "violations", "valid", "regions", "timings", "model"}."""
        return self.extract_pages([(page_image, boxes)])[0]

    def extract_document(self, pages: list[tuple[Image.Image, dict[str, Box] | None]]) -> dict[str, Any]:
        """Extract every page of one file → the merged, validated document + per-page results."""
        results = self.extract_pages(pages)
        return {**document_result(results), "pages": results}

    def extract_pages(self, pages: list[tuple[Image.Image, dict[str, Box] | None]]) -> list[dict[str, Any]]:
        """Extract several pages at once (see `extract_split`)."""
        start = time.perf_counter()
        split_pages, split_seconds = [], []
        for number, (image, boxes) in enumerate(pages, start=1):
            t = time.perf_counter()
            split_pages.append(self.split_or_hold(image, boxes, f"page {number}"))
            split_seconds.append(time.perf_counter() - t)
        return self.extract_split(split_pages, split_seconds, start)

    def split_or_hold(self, image: Image.Image, boxes: dict[str, Box] | None, what: str) -> list[Crop] | PendingPage:
        """The page's crops when boxes are given (or no detector); else the page held for detection."""
        if boxes or self.detector is None:
            return split_page(image, boxes, what)
        return pending_page(image, what, self.detector.input_size)

    def detect(self, split_pages: list[list[Crop] | PendingPage]) -> tuple[list[list[Crop]], list[dict[str, Any] | None]]:
        """Every PendingPage detected (in one batched detector call) and cut into its crops →
        (crops per page, what the detector found per page or None where boxes were given)."""
        pending = [i for i, page in enumerate(split_pages) if isinstance(page, PendingPage)]
        found: list[dict[str, Any] | None] = [None] * len(split_pages)
        crops = list(split_pages)
        if pending:
            if self.detector is None:
                raise RuntimeError("a page was held for detection by a service without a detector")
            for i, (page_crops, info) in zip(pending, self.detector.split([split_pages[i] for i in pending])):
                crops[i], found[i] = page_crops, info
        return crops, found

    def extract_split(self, split_pages: list[list[Crop] | PendingPage], split_seconds: list[float] | None = None,
                      start: float | None = None) -> list[dict[str, Any]]:
        """Extract pages already split into crops (`split_page`) or held for detection
        (`PendingPage`: detected first, all together): crops of the same region type from all
        pages share batches.

        `timings.detect` and `timings.extract` are the wall times of the shared batched detection
        and generation (the same for every page extracted together); `split` and `validate` are per page.
        """
        start = time.perf_counter() if start is None else start
        split_seconds = split_seconds or [0.0] * len(split_pages)
        t = time.perf_counter()
        split_pages, found = self.detect(split_pages)
        detect_seconds = time.perf_counter() - t
        t = time.perf_counter()
        by_region: dict[str, list[tuple[int, Image.Image]]] = {}
        for page_index, crops in enumerate(split_pages):
            for region, crop, _ in crops:
                by_region.setdefault(region, []).append((page_index, crop))
        predictions: dict[tuple[int, str], Any] = {}
        for region, items in by_region.items():
            outputs = self._predict([crop for _, crop in items], region)
            for (page_index, _), prediction in zip(items, outputs, strict=True):
                predictions[(page_index, region)] = prediction
        extract_seconds = time.perf_counter() - t

        results = []
        for page_index, crops in enumerate(split_pages):
            document: dict[str, Any] = {}
            regions: dict[str, Any] = {}
            detected = found[page_index]
            for region, _, pixel_box in crops:
                prediction = predictions[(page_index, region)]
                regions[region] = {"raw_text": prediction.raw_text, "error": prediction.error,
                                   "repetition": prediction.repetition, "box": pixel_box,
                                   "new_tokens": prediction.new_tokens,
                                   # with --beams > 1: which beam answered, and whether it passed validation
                                   "beam": prediction.beam, "beams": prediction.beams, "accepted": prediction.accepted}
                if detected is not None:  # `box` is the crop read (widened by the margin); the detector's own box beside it
                    regions[region].update(detected_box=detected["boxes"][region], score=detected["scores"][region])
                if prediction.parsed is None:
                    continue
                if region == PAGE:  # the page prompt answers with the whole {region: fields} document
                    document.update(prediction.parsed)
                else:
                    document[region] = prediction.parsed
            t = time.perf_counter()
            violations = [violation_dict(v) for v in validate_document(document)] if document else []
            fields_read, unrecognised = read_fields(document)
            validate_seconds = time.perf_counter() - t
            results.append({
                # Valid only when some field of the schema was read and every check passes: a page
                # answered with flat or unknown keys reads zero fields and is never "valid".
                "document": document, "violations": violations, "valid": fields_read > 0 and not violations,
                "fields_read": fields_read, "unrecognised_keys": unrecognised,
                "regions": regions,
                # where the boxes came from: the detector, the request, or none (the whole page read)
                "boxes_from": "detector" if detected is not None else "page" if PAGE in regions else "sent",
                "missing": detected["missing"] if detected is not None else [],
                **({"detected_on": detected["detected_on"]} if detected is not None else {}),
                "timings": {"split": split_seconds[page_index], "detect": detect_seconds, "extract": extract_seconds,
                            "validate": validate_seconds, "total": time.perf_counter() - start},
                "model": self.model_name, "constrained": self.generation.constrained,  # which decoding mode answered
            })
        return results
