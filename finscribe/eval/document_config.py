"""examples/evaluate_model.py / compare_base_vs_finetuned.py options (torch-free: `--help` builds their parsers from here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from finscribe.config import arg


@dataclass
class DocumentEvalConfig:
    image: Path = arg(help="the crop or page image")
    model: str = arg(help="model folder (or LoRA adapter folder) or hub id")
    output: Path = arg(Path("results.json"), "JSON file to write")
    ground_truth: Path | None = arg(None, "region annotation or full label JSON to score against")
    region: str | None = arg(None, "region of the image (default: the annotation's region, else 'page')")
    max_new_tokens: int = arg(512, "hard cap on generated tokens")
    constrained: bool = arg(False, "schema-constrained decoding (only the region's JSON schema can be emitted)")
    device: str | None = arg(None, "cuda, cpu, ... (default: cuda when available)")


@dataclass
class DocumentCompareConfig(DocumentEvalConfig):
    base: str | None = arg(None, "base model (default: the one --model was fine-tuned from, read from its "
                                 "adapter_config.json / train_config.json / quantization.json)")
    output: Path = arg(Path("comparison.json"), "JSON file to write")
