"""`finscribe export` options (torch-free: `--help` builds its parser from here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from finscribe.config import arg


@dataclass
class ExportConfig:
    # str, not Path: Path("./m") prints as "m", which would look like a hub id to load_model
    model: str = arg(help="a LoRA adapter folder (finscribe train --use-lora) or a full model folder")
    output_dir: Path = arg(help="folder to write the exported model into", aliases=("--output",))
    merge: bool = arg(True, "merge the LoRA adapter into its base weights (needed to export an adapter)")
    dtype: Literal["float32", "bfloat16", "float16"] = arg("float32", "dtype of the saved weights")
