"""Scores of a region detector against true boxes (DESIGN §10): IoU hit rate, coverage, mAP.

* **IoU hit rate**: a region is hit on a page when its detected box (the one `detect_regions`
  answers) overlaps the true box with IoU ≥ 0.85; a region not found is a miss. Reported per region
  and per page (every region of the page hit).
* **Coverage**: every text line of a region lies inside its widened crop (needs the text lines,
  which the synthetic renderer gives as spans).
* **mAP** over all detections with pycocotools' own COCOeval (never a home-made AP).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence

from finscribe.data.schema import REGIONS
from finscribe.detection import PageRegions, detect_all, regions_of, widen_box
from finscribe.snap import iou

HIT_IOU = 0.85
Box = Sequence[float]


def box_scores(truths: Sequence[Mapping[str, Box]], found: Sequence[PageRegions], hit_iou: float = HIT_IOU) -> dict:
    """Per region: hit rate (IoU ≥ hit_iou), mean IoU, share found; per page: all its regions hit."""
    per_region: dict[str, dict] = {}
    pages_hit = [True] * len(truths)
    for region in REGIONS:
        ious, n_found = [], 0
        for i, (truth, regions) in enumerate(zip(truths, found)):
            if region not in truth:
                continue
            box = regions.boxes.get(region)
            n_found += box is not None
            value = iou(box, truth[region]) if box is not None else 0.0
            ious.append(value)
            pages_hit[i] &= value >= hit_iou
        if ious:
            per_region[region] = {"pages": len(ious), "hit_rate": sum(v >= hit_iou for v in ious) / len(ious),
                                  "mean_iou": sum(ious) / len(ious), "found": n_found / len(ious)}
    return {"per_region": per_region, "page_hit_rate": sum(pages_hit) / len(pages_hit) if truths else 0.0,
            "region_hit_rate": (sum(r["hit_rate"] * r["pages"] for r in per_region.values())
                                / max(1, sum(r["pages"] for r in per_region.values())))}


def inside(inner: Box, outer: Box, tolerance: float = 1.0) -> bool:
    return (inner[0] >= outer[0] - tolerance and inner[1] >= outer[1] - tolerance
            and inner[2] <= outer[2] + tolerance and inner[3] <= outer[3] + tolerance)


def coverage(lines: Sequence[Mapping[str, Sequence[Box]]], found: Sequence[PageRegions], margin: int) -> dict:
    """Share of pages (and per region) on which every text line of a region lies inside its crop
    (the detected box widened by `margin`); a region not found covers none of its lines."""
    per_region = {region: [] for region in REGIONS}
    pages_ok = []
    for page_lines, regions in zip(lines, found):
        ok_page = True
        for region, boxes in page_lines.items():
            if not boxes:
                continue
            box = regions.boxes.get(region)
            crop = widen_box(box, regions.size, margin) if box is not None else None
            ok = crop is not None and all(inside(line, crop) for line in boxes)
            per_region[region].append(ok)
            ok_page &= ok
        pages_ok.append(ok_page)
    return {"page_coverage": sum(pages_ok) / len(pages_ok) if pages_ok else 0.0,
            "per_region": {r: sum(v) / len(v) for r, v in per_region.items() if v}}


def coco_map(truths: Sequence[Mapping[str, Box]], detections: Sequence[Sequence[tuple[str, float, Box]]]) -> dict:
    """COCO mAP (IoU 0.50:0.95), AP50 and AP75 of all detections, with pycocotools' COCOeval."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    categories = [{"id": i + 1, "name": r} for i, r in enumerate(REGIONS)]
    images, annotations, results = [], [], []
    for image_id, (truth, dets) in enumerate(zip(truths, detections), start=1):
        images.append({"id": image_id})
        for region, (x0, y0, x1, y1) in truth.items():
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": REGIONS.index(region) + 1,
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
        for region, score, (x0, y0, x1, y1) in dets:
            results.append({"image_id": image_id, "category_id": REGIONS.index(region) + 1,
                            "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score)})
    if not annotations or not results:
        return {"mAP": 0.0, "AP50": 0.0, "AP75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints its tables
        ground = COCO()
        ground.dataset = {"images": images, "annotations": annotations, "categories": categories}
        ground.createIndex()
        evaluation = COCOeval(ground, ground.loadRes(results), "bbox")
        evaluation.params.maxDets = [1, 10, 100]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = evaluation.stats
    return {"mAP": max(0.0, float(stats[0])), "AP50": max(0.0, float(stats[1])), "AP75": max(0.0, float(stats[2]))}


def evaluate_pages(model, processor, pages: Sequence, *, threshold: float = 0.3, batch_size: int = 8) -> dict[str, float]:
    """Flat scores of the detector on pages with true boxes (`.image` path, `.boxes`): page and region
    IoU hit rates, per-region hit rate and mean IoU, COCO mAP / AP50 / AP75."""
    from PIL import Image

    truths, found, detections = [], [], []
    for start in range(0, len(pages), batch_size):
        batch = pages[start:start + batch_size]
        images = []
        for page in batch:
            with Image.open(page.image) as image:
                images.append(image.convert("RGB"))
        # mAP ranks every detection; the hit rate takes the one box per region above `threshold`.
        for page, image, dets in zip(batch, images, detect_all(model, processor, images, threshold=0.01, batch_size=batch_size)):
            truths.append(page.boxes)
            detections.append(dets)
            found.append(regions_of([d for d in dets if d[1] > threshold], image.size))
    boxes = box_scores(truths, found)
    flat = {"page_hit_rate": boxes["page_hit_rate"], "region_hit_rate": boxes["region_hit_rate"], **coco_map(truths, detections)}
    for region, scores in boxes["per_region"].items():
        flat[f"hit_{region}"] = scores["hit_rate"]
        flat[f"iou_{region}"] = scores["mean_iou"]
    return flat
