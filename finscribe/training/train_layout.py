"""`finscribe train-layout`: train the region detector on pages with region boxes.

    finscribe generate --num-samples 1200 --output-dir data/pages
    finscribe train-layout --data data/pages/training_manifest.json --output-dir models/layout
    finscribe train-layout ... --resume-from-checkpoint latest          # after an interruption
    finscribe train-layout ... --init-from PP-DocLayoutV2/               # fine-tune a real detector

The detector is transformers' `RTDetrForObjectDetection` with an HGNetV2 backbone (DESIGN §5,
§10), trained the way transformers' object-detection example does: the `Trainer` with the model's
own loss (Hungarian matching, VFL + L1 + GIoU, auxiliary and denoising terms), pages with boxes
from `finscribe.data.page_boxes` (manifest, COCO, Label Studio), and augmentation that moves the
boxes with the pixels (albumentations). Every unusable box is printed (and written to
`unusable_boxes.txt`). Evaluation every `--eval-steps` on the validation pages: IoU ≥ 0.85 hit rate
per region and per page, and COCO mAP (pycocotools), into `metrics.jsonl`.

OUT gets the detector (config.json, model.safetensors, preprocessor_config.json; loadable with
`finscribe.detection.load_detector`), `train_layout_config.json`, `metrics.jsonl`,
`loss_curve.png`, `README.md` (the model card) and resumable `checkpoint-N` folders.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm
from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrImageProcessorPil, Trainer, TrainingArguments

from finscribe.config import parse_config, save_config, trainer_arguments
from finscribe.data.page_boxes import PageBoxes, read_all
from finscribe.data.schema import REGIONS
from finscribe.detection import DEFAULT_LAYOUT_MODEL, ID2LABEL, LABEL2ID, new_image_processor, tiny_detector_config
from finscribe.errors import FinScribeError
from finscribe.eval.charts import plt, save_figure
from finscribe.eval.layout import evaluate_pages
from finscribe.fileio import ensure_output_dir, write_json_atomic, write_text_atomic
from finscribe.training.callbacks import MetricsJsonlCallback
from finscribe.training.resume import checked_checkpoint, latest_complete_checkpoint, trim_metrics
from finscribe.training.train_layout_config import LayoutTrainConfig

logger = logging.getLogger(__name__)


class LayoutTrainError(FinScribeError, ValueError):
    """Data or a starting folder the detector cannot be trained from."""


# ----------------------------------------------------------------------------- data


def augmentation(seed: int) -> A.Compose:
    """Scan-like changes that move the boxes with the pixels: shift/scale/slight rotation (white
    fill, like paper), contrast, blur, noise and JPEG artefacts."""
    return A.Compose([
        A.Affine(scale=(0.8, 1.05), translate_percent=(-0.06, 0.06), rotate=(-2, 2), fill=255, p=0.7),
        A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.25, p=0.4),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.GaussNoise(std_range=(0.02, 0.08)),
                 A.ImageCompression(quality_range=(35, 85))], p=0.4),
        A.ToGray(p=0.2),
    ], bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"], clip=True, min_visibility=0.6), seed=seed)


class PageBoxDataset(torch.utils.data.Dataset):
    """Pages resized once to the detector's input (kept in memory as uint8), boxes scaled with them;
    each item is what the model takes: pixel_values and labels (class_labels, normalised cx cy w h)."""

    def __init__(self, pages: list[PageBoxes], processor: RTDetrImageProcessorPil, augment: bool = False, seed: int = 0):
        self.processor = processor
        self.size = (int(processor.size["width"]), int(processor.size["height"]))
        self.transform = augmentation(seed) if augment else None
        self.images, self.boxes, self.labels = [], [], []
        for page in tqdm(pages, desc="reading pages", unit="page", leave=False):
            with Image.open(page.image) as image:
                self.images.append(np.asarray(image.convert("RGB").resize(self.size, Image.Resampling.BILINEAR)))
            sx, sy = self.size[0] / page.size[0], self.size[1] / page.size[1]
            regions = [r for r in REGIONS if r in page.boxes]
            self.boxes.append([[b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for b in (page.boxes[r] for r in regions)])
            self.labels.append([LABEL2ID[r] for r in regions])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        image, boxes, labels = self.images[i], self.boxes[i], self.labels[i]
        if self.transform is not None:
            out = self.transform(image=image, bboxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4), labels=labels)
            image, boxes, labels = out["image"], out["bboxes"].tolist(), list(out["labels"])
        annotations = [{"bbox": [x0, y0, x1 - x0, y1 - y0], "category_id": int(c), "area": (x1 - x0) * (y1 - y0), "iscrowd": 0}
                       for (x0, y0, x1, y1), c in zip(boxes, labels)]
        encoded = self.processor(images=image, annotations={"image_id": i, "annotations": annotations}, return_tensors="pt")
        return {"pixel_values": encoded["pixel_values"][0], "labels": encoded["labels"][0]}


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    return {"pixel_values": torch.stack([b["pixel_values"] for b in batch]), "labels": [b["labels"] for b in batch]}


def load_pages(config: LayoutTrainConfig, output_dir: Path | None = None) -> tuple[list[PageBoxes], list[PageBoxes]]:
    """(train pages, validation pages); every unusable box printed, one line each (and saved)."""
    pages, problems = read_all(config.data, config.val_fraction)
    for line in problems:
        print(f"unusable box: {line}", file=sys.stderr)
    if output_dir is not None:
        write_text_atomic(output_dir / "unusable_boxes.txt", "".join(line + "\n" for line in problems))
    train = [p for p in pages if p.split == "train" and p.boxes]
    val = [p for p in pages if p.split == "val" and p.boxes]
    if not train:
        raise LayoutTrainError(f"--data {' '.join(map(str, config.data))}: no training page with a usable box "
                               f"({len(pages)} page(s), {len(problems)} unusable box(es)); check the files above")
    held = sum(p.split == "test" for p in pages)
    logger.info("%d train / %d val pages (%d test pages held out, not used); %d unusable box(es)", len(train), len(val), held, len(problems))
    return train, val


# ----------------------------------------------------------------------------- model


def _rtdetr_config_from(folder: Path) -> RTDetrConfig:
    """RT-DETR config of a local RT-DETR or PP-DocLayoutV2/V3 folder (its detector part), with the five region labels."""
    try:
        raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise LayoutTrainError(f"--init-from {folder}: no readable config.json ({type(err).__name__}); "
                               "give a local RT-DETR or PP-DocLayoutV2/V3 folder") from err
    kind = raw.get("model_type")
    if kind == "rt_detr":
        config = RTDetrConfig.from_pretrained(folder, local_files_only=True)
    elif kind in ("pp_doclayout_v2", "pp_doclayout_v3"):
        # Their detector is RT-DETR's; the reading-order head and class thresholds have no place in it.
        known = set(RTDetrConfig().to_dict())
        drop = {"model_type", "architectures", "transformers_version", "id2label", "label2id"}
        config = RTDetrConfig(**{k: v for k, v in raw.items() if k in known and k not in drop})
    else:
        raise LayoutTrainError(f"--init-from {folder}: model_type {kind!r} is not RT-DETR or PP-DocLayoutV2/V3")
    config.id2label, config.label2id = dict(ID2LABEL), dict(LABEL2ID)
    return config


def initial_model(config: LayoutTrainConfig) -> tuple[RTDetrForObjectDetection, RTDetrImageProcessorPil]:
    processor = new_image_processor(config.image_height, config.image_width)
    if config.init_from is None:
        torch.manual_seed(config.seed)
        return RTDetrForObjectDetection(tiny_detector_config(config.d_model, config.decoder_layers, config.num_queries)), processor
    folder = Path(config.init_from)
    if not folder.is_dir():
        raise LayoutTrainError(f"--init-from {folder}: no such folder (a local RT-DETR or PP-DocLayoutV2/V3 folder; hub ids are not fetched)")
    model, info = RTDetrForObjectDetection.from_pretrained(folder, config=_rtdetr_config_from(folder), ignore_mismatched_sizes=True,
                                                           local_files_only=True, output_loading_info=True)
    logger.info("--init-from %s: %d tensors re-initialised (class head), %d not used (e.g. reading order)",
                folder, len(info["missing_keys"]) + len(info["mismatched_keys"]), len(info["unexpected_keys"]))
    return model, processor


# ----------------------------------------------------------------------------- training


class LayoutTrainer(Trainer):
    """The Trainer with the model's own loss; `evaluate` scores detection on the validation pages."""

    def __init__(self, *args: Any, val_pages: list[PageBoxes] = (), threshold: float = 0.3, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.val_pages = list(val_pages)
        self.threshold = threshold

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        if not self.val_pages:
            return {}
        self.model.eval()
        try:
            scores = evaluate_pages(self.model, self.processing_class, self.val_pages, threshold=self.threshold)
        finally:
            self.model.train()
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in scores.items()}
        self.log(metrics)
        return metrics


def training_arguments(config: LayoutTrainConfig, has_val: bool) -> TrainingArguments:
    return TrainingArguments(
        **trainer_arguments(config),
        output_dir=str(config.output_dir),
        eval_strategy="steps" if has_val else "no",
        eval_steps=config.eval_steps if has_val else None,
        remove_unused_columns=False,  # the model takes labels as a list of dicts
        report_to=[],
        dataloader_pin_memory=False,
        use_cpu=not torch.cuda.is_available(),
    )


def plot_layout_loss(metrics_path: Path, output_path: Path) -> Path | None:
    rows = [json.loads(line) for line in metrics_path.read_text(encoding="utf-8").splitlines() if line.strip()] if metrics_path.is_file() else []
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    hits = [(r["step"], r["eval_page_hit_rate"]) for r in rows if "eval_page_hit_rate" in r]
    if not train:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(*zip(*train), label="train loss (VFL + L1 + GIoU, aux + denoising)")
    ax.set_xlabel("step")
    ax.set_ylabel("detection loss")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    if hits:
        ax2 = ax.twinx()
        ax2.plot(*zip(*hits), "s--", color="tab:green", label="val pages with every box IoU ≥ 0.85")
        ax2.set_ylim(0, 1)
        ax2.legend(loc="upper center")
    ax.legend(loc="upper right")
    ax.set_title("FinScribe region detector")
    fig.tight_layout()
    return save_figure(fig, output_path)


def _resume_point(config: LayoutTrainConfig) -> str | None:
    if config.resume_from_checkpoint is None:
        return None
    if config.resume_from_checkpoint == "latest":
        return str(latest_complete_checkpoint(Path(config.output_dir), remove_broken=True))
    return str(checked_checkpoint(Path(config.resume_from_checkpoint)))


def train_layout(config: LayoutTrainConfig) -> Path:
    """Train per `config`; returns the output folder (loadable with `finscribe.detection.load_detector`)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    output_dir = ensure_output_dir(config.output_dir)
    train_pages, val_pages = load_pages(config, output_dir)
    model, processor = initial_model(config)
    save_config(config, output_dir, name="train_layout_config.json")
    write_json_atomic(output_dir / "training_data.json", {
        "data": [str(p) for p in config.data], "train_pages": len(train_pages), "val_pages": len(val_pages),
        "layouts": {layout: sum(p.layout == layout for p in train_pages) for layout in sorted({p.layout for p in train_pages})}})
    val_scored = val_pages[:config.eval_limit] if config.eval_limit else []
    trainer = LayoutTrainer(
        model=model, args=training_arguments(config, bool(val_scored)),
        train_dataset=PageBoxDataset(train_pages, processor, augment=config.augment, seed=config.seed),
        eval_dataset=[0] if val_scored else None,  # a placeholder: evaluate() scores val_pages itself
        data_collator=collate, processing_class=processor, callbacks=[MetricsJsonlCallback(output_dir / "metrics.jsonl")],
        val_pages=val_scored, threshold=config.threshold,
    )
    checkpoint = _resume_point(config)
    if checkpoint is not None:
        trim_metrics(output_dir / "metrics.jsonl", Path(checkpoint))
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(str(output_dir))  # model + image processor (processing_class)
    final = trainer.evaluate() if val_scored else {}
    write_json_atomic(output_dir / "val_metrics.json", final)
    plot_layout_loss(output_dir / "metrics.jsonl", output_dir / "loss_curve.png")
    write_layout_card(output_dir)
    return output_dir


# ----------------------------------------------------------------------------- model card


def write_layout_card(folder: Path, held_out: dict[str, Any] | None = None) -> Path:
    """README.md of a detector folder: what it is, its data and recipe, its validation (and held-out) figures."""
    folder = Path(folder)
    read = lambda name: json.loads((folder / name).read_text(encoding="utf-8")) if (folder / name).is_file() else {}  # noqa: E731
    config, data, val = read("train_layout_config.json"), read("training_data.json"), read("val_metrics.json")
    held_out = held_out or read("held_out.json")
    model_config = read("config.json")
    lines = ["---", "library_name: transformers", "pipeline_tag: object-detection", "tags: [finscribe, rt-detr, hgnetv2, invoice, layout]", "---", "",
             "# FinScribe region detector", "",
             "`RTDetrForObjectDetection` with an HGNetV2 backbone (the family of PP-DocLayoutV2) that finds the five invoice "
             f"regions on a page: {', '.join(f'`{r}`' for r in REGIONS)}. Load it with `finscribe.detection.load_detector(path)`; "
             "`finscribe detect --layout-model PATH` crops the regions of pages and PDFs.", "",
             "## Model", "",
             f"- input {config.get('image_width')}×{config.get('image_height')} pixels (pages are resized to it), "
             f"d_model {model_config.get('d_model')}, {model_config.get('decoder_layers')} decoder layers, {model_config.get('num_queries')} queries",
             f"- started from: {config.get('init_from') or 'random weights (trained from scratch)'}", "",
             "## Data", "",
             f"- files: {', '.join(f'`{d}`' for d in data.get('data', []))}",
             f"- {data.get('train_pages')} training pages, {data.get('val_pages')} validation pages; layouts: {data.get('layouts')}", "",
             "## Recipe", "", "```json", json.dumps({k: v for k, v in config.items() if k != "stage"}, indent=1), "```", ""]
    if val:
        lines += ["## Validation (pages of the training layouts)", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in val.items() if isinstance(v, (int, float))]
        lines.append("")
    if held_out:
        snapped = str(held_out.get("config", {}).get("snap", True)) in ("True", "true")
        how = ("Boxes as `finscribe.detection.detect_regions` answers them by default: each snapped to the ink it "
               "holds (`snap_to_ink`)." if snapped else "The detector's own boxes (`--no-snap`).")
        lines += ["## Held-out figures (`benchmarks/layout.py`)", "", how, "",
                  held_out.get("markdown", json.dumps(held_out, indent=1)), ""]
    if folder.resolve() == DEFAULT_LAYOUT_MODEL:
        lines += ["## How it was made", "", "`bash scripts/make_tiny_layout.sh` (one command): synthetic pages "
                  "(`finscribe generate`, seeds 1001-1005, 60-70 % drawn by the layout composer, 30-35 % degraded; "
                  "`minimal` and `composed_banner` held out), then `finscribe train-layout` in phases "
                  "(900 steps from random weights, then each phase from the last; the script lists them), "
                  "then `benchmarks/layout.py` on 200 fresh pages writes the figures above. "
                  "The recipe above is the last phase's (its paths are where it ran).", ""]
    lines += ["## Limits", "", "Trained on synthetic pages only: measure it on your own pages (`benchmarks/layout.py` shows how) "
              "and fine-tune with `finscribe train-layout --init-from THIS_FOLDER --data your_boxes.json` (COCO or Label Studio).", ""]
    return write_text_atomic(folder / "README.md", "\n".join(lines))


def main(argv: list[str] | None = None, prog: str = "finscribe train-layout") -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = parse_config(LayoutTrainConfig, argv, prog, __doc__.split("\n\n")[0])
    if not config.data:
        raise LayoutTrainError("train-layout: pass --data MANIFEST [MANIFEST ...] (training_manifest.json, COCO JSON or a Label Studio export)")
    path = train_layout(config)
    print(f"detector written to {path}")
    return 0


if __name__ == "__main__":
    from finscribe.cli import run

    raise SystemExit(run(main, prog="python -m finscribe.training.train_layout"))
