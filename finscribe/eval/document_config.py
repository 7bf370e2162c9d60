"""examples/evaluate_model.py / compare_base_vs_finetuned.py options (torch-free: `--help` builds their parsers from here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from finscribe.config import arg, group
from finscribe.generation_args import GenerationArgs


@dataclass
class DocumentEvalConfig:
    generation: GenerationArgs = group("the model (--model: folder, LoRA adapter or hub id) and how it generates "
                                       "(--max-new-tokens, --constrained, --device, ...)")
    image: Path = arg(help="the document: a crop or page image (PNG, JPEG, TIFF) or a PDF, one page or many")
    output: Path = arg(Path("results.json"), "JSON file to write")
    ground_truth: Path | None = arg(None, "region annotation or full label JSON to score against")
    region: str | None = arg(None, "region of the image (default: the annotation's region, else 'page')")


@dataclass
class DocumentCompareConfig(DocumentEvalConfig):
    base: str | None = arg(None, "base model (default: the one --model was fine-tuned from, read from its "
                                 "adapter_config.json / train_config.json / quantization.json)")
    output: Path = arg(Path("comparison.json"), "JSON file to write")
