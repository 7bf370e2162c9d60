"""`finscribe benchmark-quant` options (torch-free: `--help` builds its parser from here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from finscribe.config import arg, group
from finscribe.data.selection import RecordSelection
from finscribe.generation_args import GenerationArgs

DEFAULT_LIMIT = 8


@dataclass
class QuantBenchmarkConfig:
    generation: GenerationArgs = group("the float model (--model; with --full-size-random: the folder whose processor is "
                                       "used) and how the accuracy pass generates")
    records: RecordSelection = group("the records: a training_manifest.json, a records JSONL, or a folder with "
                                     f"crops/ + annotations/ (default --limit here: {DEFAULT_LIMIT})")
    output_dir: Path = arg(help="folder for quantization.json + quantization.md (and int8_model/ when quantizing here)",
                           aliases=("--output",))
    quantized_path: str | None = arg(None, "an existing `finscribe quantize` folder (default: quantize into OUTPUT_DIR/int8_model)")
    method: str = arg("auto", "quantization method when quantizing here")
    cpu_kernels: Literal["fbgemm", "torchao", "both"] = arg(
        "fbgemm", "CPU kernels of the INT8 model: fbgemm (torch.ao dynamic), torchao (as from_pretrained loads it), or both")
    repeats: int = arg(3, "latency passes over the records")
    fixed_new_tokens: int = arg(32, "tokens generated per record for latency (EOS ignored, repetition guard off)")
    full_size_random: bool = arg(False, "benchmark the real v1 config.json (0.9B, untied head) with random weights instead (speed/size only)")
    threads: int = arg(0, "torch threads (0 = torch default)")

    def __post_init__(self) -> None:
        if self.repeats < 1 or self.fixed_new_tokens < 1:
            raise ValueError("--repeats and --fixed-new-tokens must be >= 1")
