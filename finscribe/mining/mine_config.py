"""`finscribe mine` options (torch-free: `--help` builds its parser from here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from finscribe.config import arg, group
from finscribe.data.selection import RecordSelection
from finscribe.generation_args import GenerationArgs
from finscribe.mining.error_logger import DEFAULT_ERROR_DIR


@dataclass
class MineConfig:
    generation: GenerationArgs = group("the model to mine with and how it generates")
    records: RecordSelection = group("the labelled records to mine")
    output_dir: Path = arg(DEFAULT_ERROR_DIR, "hard-sample folder to append the errors to", aliases=("--error-dir",))
