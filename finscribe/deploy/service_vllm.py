"""The extraction service with generation on vLLM (`finscribe serve --engine vllm | --engine-url URL`).

    service = VLLMService(ServeGenerationArgs(model="runs/ft-merged", engine="vllm"))  # starts .venv-vllm's server
    result = service.extract(page, boxes={"totals_section": [820, 1300, 1240, 1480]})
    service.close()  # stops the server it started

Everything but generation is `PaddleOCRVLService`'s: intake, regions (boxes or the detector),
prompts, validation, merging, the answer's shape. Each crop is one request to the vLLM server
(`finscribe.engine_vllm`), which batches requests from all the service's worker threads itself,
so the worker runs `concurrent_batches` threads instead of one. A server that cannot be reached
raises `EngineUnavailableError`, which the server answers with 503.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from PIL import Image

from finscribe.deploy.service import PaddleOCRVLService
from finscribe.engine_vllm import connect
from finscribe.inference import GenerationArgs, Prediction


class VLLMService(PaddleOCRVLService):
    """`PaddleOCRVLService` whose `_predict` asks a vLLM server (started here, or at --engine-url)."""

    def __init__(self, generation: GenerationArgs, *, detector: Any = None, log_path: str | Path | None = None):
        # No model in this process: the server loads it (a LoRA adapter or an INT8 folder is refused
        # by engine_vllm.check_servable with the fix).
        self.generation, self.detector, self.quantized = generation, detector, False
        self.engine = connect(generation, log_path=log_path)
        self.model_name = Path(str(generation.model)).name or str(generation.model)
        self.parameters = _parameters(Path(generation.model) / "model.safetensors")
        # Requests in flight: the worker feeds the engine from this many threads (vLLM batches them).
        self.concurrent_batches = generation.batch_size

    def info(self) -> dict[str, Any]:
        g = self.generation
        return {"model": self.model_name, "engine": "vllm", "quantized": False, "quantization": None,
                "dtype": g.dtype or "auto", "parameters": self.parameters, "device": "vllm",
                "max_new_tokens": g.max_new_tokens, "batch_size": g.batch_size, "constrained": g.constrained, "beams": 1,
                **(self.detector.info() if self.detector else {"layout_model": None})}

    def _predict(self, crops: list[Image.Image], region: str) -> list[Prediction]:
        g = self.generation
        return self.engine.predict(crops, region, max_new_tokens=g.max_new_tokens, repetition_window=g.repetition_window,
                                   constrained=g.constrained)

    def close(self) -> None:
        self.engine.close()


def _parameters(weights: Path) -> int | None:
    """Parameter count from a safetensors header (the web page shows it); None when not one local file."""
    try:
        with open(weights, "rb") as f:
            header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    except (OSError, ValueError, struct.error):
        return None
    return sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")
