"""`finscribe init-tiny-model` options (torch-free: `--help` builds its parser from here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from finscribe.config import arg


@dataclass
class TinyModelConfig:
    output_dir: Path = arg(Path("models/tiny"), "folder to write the tiny model + processor into", aliases=("--output",))
    seed: int = arg(0, "seed for the weight init and the tokenizer corpus")
    hidden_size: int = arg(128, "text decoder hidden size")
    num_layers: int = arg(4, "text decoder layers")
    vision_hidden_size: int = arg(128, "vision encoder hidden size")
    vision_layers: int = arg(4, "vision encoder layers")
    num_heads: int = arg(4, "attention heads (text and vision)")
    vocab_size: int = arg(512, "byte-level BPE vocabulary size")
    min_pixels: int = arg(28 * 28 * 4, "image processor: smallest resized area in pixels")
    max_pixels: int = arg(28 * 28 * 256, "image processor: largest resized area in pixels")
    assistant_separator: Literal["space", "newline"] | None = arg(
        None, "what follows 'Assistant:' in the chat template (default: --like's own; space without --like)")
    like: str | None = arg(None, "copy tokenizer, template, processor and config shape (not the sizes) of this model "
                                 "folder or hub id, e.g. ../shared/paddleocr_vl/v1; the tokenizer flags are ignored")
