"""`GenerationArgs`: how a stage runs a model (the shared option group of evaluate, compare, mine,
serve, benchmark-quant and the quickstart). Torch-free, so that a stage's `--help` (built from its
config, which includes this group) starts instantly; `finscribe.inference` re-exports it.

    from finscribe.generation_args import GenerationArgs
    model, processor = GenerationArgs(model="models/tiny", batch_size=4).load()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from finscribe.config import arg
from finscribe.errors import ConfigError

# The repetition guard's longest loop period (see finscribe.inference for the guard itself).
REPETITION_WINDOW = 128


@dataclass
class GenerationArgs:
    """How a stage runs a model: shared by evaluate, compare, mine, serve, benchmark-quant and the
    quickstart, so that the flags mean the same everywhere and travel as one object."""

    model: str = arg(help="model folder (save_pretrained, training output, LoRA adapter) or hub id")
    device: str | None = arg(None, "cuda, cpu, cuda:1, ... (default: cuda when available)")
    dtype: str | None = arg(None, "float32, bfloat16, ... (default: bf16 on capable GPUs, else float32)")
    batch_size: int = arg(8, "images per generation batch")
    max_new_tokens: int = arg(512, "hard cap on generated tokens per image")
    repetition_window: int = arg(REPETITION_WINDOW, "longest loop period (tokens) the repetition guard looks for; 0 = off")
    constrained: bool = arg(False, "schema-constrained decoding: the model can only emit a JSON object of the prompt's "
                                   "region (known keys, canonical amounts and dates; finscribe.constrained)")

    beams: int = arg(1, "beam candidates per image; above 1 the answer is the most likely candidate that parses and "
                        "passes the region's arithmetic and consistency rules (finscribe.eval.validation), else the "
                        "most likely one; 1 = greedy. Costs about that many times the decoding time")

    engine: Literal["transformers", "vllm"] = arg("transformers", "what generates: transformers in this process, or "
                                                  "vllm (a vLLM server started from .venv-vllm, `bash scripts/setup_vllm.sh`; "
                                                  "stopped with the command; --batch-size is then the requests in flight)")
    engine_url: str | None = arg(None, "generate on an already running vLLM OpenAI-compatible server (or a load balancer "
                                       "over replicas) at this URL, e.g. http://10.0.0.5:8000; implies --engine vllm")
    engine_args: str = arg("", "extra flags for the vLLM server FinScribe starts, e.g. '--tensor-parallel-size 2'")

    def __post_init__(self) -> None:
        if self.engine_url:
            self.engine = "vllm"
        if self.engine == "vllm" and self.beams > 1:
            raise ValueError("--beams > 1 runs only with --engine transformers (vLLM answers the greedy sequence)")
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError("--batch-size and --max-new-tokens must be >= 1")
        if self.beams < 1:
            raise ValueError("--beams must be >= 1")
        if self.beams > 1 and self.constrained:
            raise ValueError("--beams > 1 cannot be combined with --constrained (the grammar follows one sequence per row)")
        if self.repetition_window < 0:
            raise ValueError("--repetition-window must be >= 0")

    def load(self) -> tuple[Any, Any]:
        """(model, processor) of `model` on `device` in `dtype`."""
        if self.engine != "transformers":
            raise ConfigError("this command runs the model in this process: drop --engine/--engine-url "
                              "(vLLM serves `finscribe serve`, `evaluate`, `compare` and `mine`)")
        # Imported here, not at module level: this module must not import torch (instant --help).
        from finscribe.model import load_model

        return load_model(self.model, dtype=self.dtype, device=self.device)
