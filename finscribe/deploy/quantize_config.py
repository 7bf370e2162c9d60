"""`finscribe quantize` options (torch-free: `--help` builds its parser from here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from finscribe.config import arg


@dataclass
class QuantizeConfig:
    model: str = arg(help="model to quantize: a full fine-tune, a LoRA adapter folder (merged first), a merged model")
    output_dir: Path = arg(help="folder to write the quantized transformers checkpoint into", aliases=("--output",))
    method: Literal["auto", "int8_dynamic", "int8_weight_only"] = arg(
        "auto", "auto = int8_dynamic on CPU, int8_weight_only on CUDA (both torchao through TorchAoConfig)")
    device: str | None = arg(None, "cpu or cuda (default: cuda when available)")
