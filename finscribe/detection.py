"""Regions on pages: the region detector (transformers' RT-DETR with an HGNetV2 backbone) and crops.

A page goes in; at most one box per region comes out (the highest-scoring one above a threshold),
in page pixels, the PIL crop convention, like the manifest's boxes. A region not found is listed
in `missing`, never invented. Each box is snapped to the ink it holds plus 7 px
(`finscribe.snap.snap_to_ink`), as the generator's boxes are padded, so by default a crop is the box itself (`DEFAULT_MARGIN` 0): it
looks like the crops a model is fine-tuned on (widening them by 12 px cost the quickstart's model
12-14 points of field accuracy on whole pages, benchmarks/RESULTS.md). `margin` widens them:

    from finscribe.detection import load_detector, detect_regions, crop_regions
    model, processor = load_detector()                       # the committed tiny detector
    [regions] = detect_regions(model, processor, [page])
    crops = crop_regions(page, regions)                      # {region: PIL image}

The detector is the family of PP-DocLayoutV2 (DESIGN §5, §10): `RTDetrForObjectDetection` trains
(its own Hungarian matcher and loss), PP-DocLayoutV2's own class only infers. Its five labels are
`REGIONS` in order. `build_tiny_detector` saves a random-weight tiny one (tests, and the start of
`finscribe train-layout` from scratch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from PIL import Image
from transformers import HGNetV2Config, RTDetrConfig, RTDetrForObjectDetection, RTDetrImageProcessorPil

from finscribe.data.schema import REGIONS
from finscribe.errors import FinScribeError
from finscribe.snap import snap_to_ink

DEFAULT_LAYOUT_MODEL = Path(__file__).resolve().parent / "assets" / "tiny_layout"
DEFAULT_MARGIN = 0  # see the module docstring: a crop is the snapped box, like the training crops
# The detector's input (height, width): portrait like an invoice page; the tiny detector's size.
DEFAULT_INPUT_SIZE = (512, 384)
ID2LABEL = dict(enumerate(REGIONS))
LABEL2ID = {name: i for i, name in ID2LABEL.items()}


class DetectionError(FinScribeError, ValueError):
    """A detector folder (or option) that cannot be used; the message says what to do."""


@dataclass(frozen=True)
class PageRegions:
    """The regions found on one page: boxes in page pixels (x0, y0, x1, y1), found ones only."""

    size: tuple[int, int]
    boxes: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    missing: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"size": list(self.size), "boxes": {r: list(b) for r, b in self.boxes.items()},
                "scores": {r: round(float(s), 4) for r, s in self.scores.items()}, "missing": list(self.missing)}


# ----------------------------------------------------------------------------- the model


def tiny_backbone_config() -> HGNetV2Config:
    """A small HGNetV2 (the PP-DocLayoutV2 backbone family), built from config: a backbone *name*
    would call the hub."""
    return HGNetV2Config(
        stem_channels=[3, 16, 16],
        stage_in_channels=[16, 32, 64, 128],
        stage_mid_channels=[16, 32, 64, 128],
        stage_out_channels=[32, 64, 128, 256],
        stage_num_blocks=[1, 1, 1, 1],
        stage_downsample=[False, True, True, True],
        stage_light_block=[False, False, True, True],
        stage_kernel_size=[3, 3, 5, 5],
        stage_numb_of_layers=[2, 2, 2, 2],
        depths=[1, 1, 1, 1],
        hidden_sizes=[32, 64, 128, 256],
        out_features=["stage2", "stage3", "stage4"],
    )


def tiny_detector_config(d_model: int = 64, decoder_layers: int = 3, num_queries: int = 30) -> RTDetrConfig:
    """A ~0.7 M-parameter RT-DETR + HGNetV2-tiny with the five region labels.

    `freeze_backbone_batch_norms=False`: frozen batch norms keep their random statistics when
    training from scratch (measured: nothing is learnt)."""
    return RTDetrConfig(
        backbone_config=tiny_backbone_config(), use_timm_backbone=False, use_pretrained_backbone=False,
        encoder_in_channels=[64, 128, 256], feat_strides=[8, 16, 32], encoder_hidden_dim=d_model, d_model=d_model,
        encoder_ffn_dim=2 * d_model, encoder_attention_heads=4, decoder_attention_heads=4, decoder_ffn_dim=2 * d_model,
        decoder_layers=decoder_layers, decoder_in_channels=[d_model] * 3, num_queries=num_queries, num_denoising=20,
        hidden_expansion=0.5, freeze_backbone_batch_norms=False, id2label=dict(ID2LABEL), label2id=dict(LABEL2ID),
    )


def new_image_processor(height: int = DEFAULT_INPUT_SIZE[0], width: int = DEFAULT_INPUT_SIZE[1]) -> RTDetrImageProcessorPil:
    # The Pil processor needs no torchvision (PP-DocLayoutV2's own processors do).
    return RTDetrImageProcessorPil(size={"height": height, "width": width})


def build_tiny_detector(output_dir: str | Path, seed: int = 0) -> Path:
    """Save a random-weight tiny detector (model + image processor) to `output_dir`; returns it."""
    torch.manual_seed(seed)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    RTDetrForObjectDetection(tiny_detector_config()).save_pretrained(out)
    new_image_processor().save_pretrained(out)
    return out


def check_labels(config, where: str) -> None:
    labels = [config.id2label[i] for i in sorted(config.id2label)]
    if labels != list(REGIONS):
        raise DetectionError(f"{where} detects {labels}, not the five regions {list(REGIONS)}; "
                             f"fine-tune it first: finscribe train-layout --init-from {where} ...")


def load_detector(path: str | Path = DEFAULT_LAYOUT_MODEL, device: str = "cpu") -> tuple[RTDetrForObjectDetection, RTDetrImageProcessorPil]:
    """A saved detector folder (`train-layout` output or `build_tiny_detector`) → (model in eval mode, processor)."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        hint = ("the committed tiny detector is missing from this install; make one with `finscribe train-layout`"
                if folder == DEFAULT_LAYOUT_MODEL else "give a folder written by `finscribe train-layout`")
        raise DetectionError(f"--layout-model {folder}: no detector there (no config.json); {hint}")
    try:
        model = RTDetrForObjectDetection.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DetectionError(f"--layout-model {folder}: not an RT-DETR detector folder ({type(err).__name__}: "
                             f"{str(err).splitlines()[0][:200]}); give a folder written by `finscribe train-layout`") from err
    check_labels(model.config, str(folder))
    if (folder / "preprocessor_config.json").is_file():
        processor = RTDetrImageProcessorPil.from_pretrained(folder, local_files_only=True)
    else:
        processor = new_image_processor()
    return model.to(device).eval(), processor


# ----------------------------------------------------------------------------- pages → boxes


def input_size(processor: RTDetrImageProcessorPil) -> tuple[int, int]:
    """(width, height) the processor feeds the model."""
    return int(processor.size["width"]), int(processor.size["height"])


def clamp_box(box: Sequence[float], page_size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """A box rounded outward to whole pixels and clamped to the page; None if nothing is left."""
    width, height = page_size
    x0, y0 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    x1, y1 = min(width, math.ceil(box[2])), min(height, math.ceil(box[3]))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def regions_of(detections: Sequence[Detection], page_size: tuple[int, int]) -> PageRegions:
    """Detections (any order) → one box per region, the highest-scoring usable one.

    RT-DETR scores every query for every label (sigmoid), so one query's box can come back under
    two labels; a box goes to its best-scoring region only, and the other region takes its own
    next box (or is missing)."""
    found: dict[str, tuple[float, tuple[int, int, int, int]]] = {}
    taken: set[tuple[float, ...]] = set()
    for region, score, box in sorted(detections, key=lambda d: -d[1]):
        clamped = clamp_box(box, page_size)
        if region not in LABEL2ID or clamped is None or region in found or tuple(box) in taken:
            continue
        found[region] = (float(score), clamped)
        taken.add(tuple(box))
    return PageRegions(size=tuple(page_size), boxes={r: found[r][1] for r in REGIONS if r in found},
                       scores={r: found[r][0] for r in REGIONS if r in found},
                       missing=tuple(r for r in REGIONS if r not in found))


Detection = tuple[str, float, tuple[float, float, float, float]]


@torch.no_grad()
def detect_all(model: RTDetrForObjectDetection, image_processor: RTDetrImageProcessorPil, pages: Sequence[Image.Image], *,
               threshold: float = 0.3, batch_size: int = 8) -> list[list[Detection]]:
    """Every detection above `threshold` on each page: (region, score, box in page pixels), best first.
    (What mAP is computed on; `detect_regions` keeps one box per region of these.)"""
    size = input_size(image_processor)
    results: list[list[Detection]] = []
    device = next(model.parameters()).device
    for start in range(0, len(pages), batch_size):
        batch = pages[start:start + batch_size]
        # Resized here (what the processor would do) so a 40 MP scan is not copied at full size first.
        small = [page.convert("RGB").resize(size, Image.Resampling.BILINEAR) for page in batch]
        inputs = image_processor(images=small, return_tensors="pt")
        outputs = model(pixel_values=inputs["pixel_values"].to(device))
        targets = [(page.height, page.width) for page in batch]
        for found in image_processor.post_process_object_detection(outputs, threshold=threshold, target_sizes=targets):
            results.append([(ID2LABEL[int(label)], float(score), tuple(box))
                            for score, label, box in zip(found["scores"].tolist(), found["labels"].tolist(), found["boxes"].tolist())
                            if int(label) in ID2LABEL])
    return results


def detect_regions(model: RTDetrForObjectDetection, image_processor: RTDetrImageProcessorPil, pages: Sequence[Image.Image], *,
                   threshold: float = 0.3, batch_size: int = 8, snap: bool = True) -> list[PageRegions]:
    """The regions of each page (at most one box per region, score > threshold, clamped to the page),
    each box snapped to the ink it holds (`snap_to_ink`) unless `snap=False`."""
    found = detect_all(model, image_processor, pages, threshold=threshold, batch_size=batch_size)
    regions = [regions_of(detections, page.size) for page, detections in zip(pages, found)]
    if snap:
        regions = [replace(r, boxes={name: snap_to_ink(page, box) for name, box in r.boxes.items()})
                   for page, r in zip(pages, regions)]
    return regions


# ----------------------------------------------------------------------------- boxes → crops


def widen_box(box: Sequence[int], page_size: tuple[int, int], margin: int = DEFAULT_MARGIN) -> tuple[int, int, int, int]:
    """`box` grown by `margin` pixels on each side, clamped to the page."""
    width, height = page_size
    x0, y0, x1, y1 = (int(v) for v in box)
    return max(0, x0 - margin), max(0, y0 - margin), min(width, x1 + margin), min(height, y1 + margin)


def crop_regions(page: Image.Image, regions: PageRegions, margin: int = DEFAULT_MARGIN) -> dict[str, Image.Image]:
    """One crop per found region (REGIONS order), each widened by `margin` pixels."""
    return {region: page.crop(widen_box(regions.boxes[region], page.size, margin))
            for region in REGIONS if region in regions.boxes}
