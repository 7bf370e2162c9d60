"""examples/evaluate_model.py / compare_base_vs_finetuned.py options (torch-free: `--help` builds their parsers from here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from finscribe.config import arg, group
from finscribe.eval.pages_config import DetectorArgs
from finscribe.generation_args import GenerationArgs


@dataclass
class DocumentEvalConfig:
    generation: GenerationArgs = group("the model (--model: folder, LoRA adapter or hub id) and how it generates "
                                       "(--max-new-tokens, --constrained, --device, ...)")
    image: Path = arg(help="the document: a crop or page image (PNG, JPEG, TIFF) or a PDF, one page or many")
    output: Path = arg(Path("results.json"), "JSON file to write")
    ground_truth: Path | None = arg(None, "region annotation or full label JSON to score against")
    region: str | None = arg(None, "region of the image (default: the annotation's region; else the image is a page: its "
                                   "regions are detected, each read with its prompt and merged; 'page' = read the whole "
                                   "page with the page prompt instead, for a model trained on whole pages)")
    boxes: Path | None = arg(None, "the page's region boxes instead of the detector's: JSON {region: [x0, y0, x1, y1]} "
                                   "in page pixels (or {\"boxes\": {...}}); a list of them, one per page, for a multi-page "
                                   "document; or the boxes.jsonl of `finscribe detect` (its lines of this image)")
    detector: DetectorArgs = field(default_factory=DetectorArgs, metadata={"help": "the page path", "group": True})


@dataclass
class DocumentCompareConfig(DocumentEvalConfig):
    base: str | None = arg(None, "base model (default: the one --model was fine-tuned from, read from its "
                                 "adapter_config.json / train_config.json / quantization.json)")
    output: Path = arg(Path("comparison.json"), "JSON file to write")
