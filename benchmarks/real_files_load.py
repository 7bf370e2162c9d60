"""Loading the real PaddleOCR-VL v1 files: tokenizer conversion cost and the full-size architecture.

    python benchmarks/real_files_load.py --like ../shared/paddleocr_vl/v1 --repeats 3

Measures (median of --repeats, fresh objects each time): reading the SentencePiece `tokenizer.model`
(converted by transformers; needs sentencepiece + protobuf) vs reading the `tokenizer.json` that
`save_pretrained` writes once; `finscribe.checkpoint.load_processor` on the pre-native folder; and,
with --build, the construction of the full-size model from the translated config.json (random
weights; parameter count and tied/untied head, against the tied head transformers would build).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, PaddleOCRVLConfig, PaddleOCRVLForConditionalGeneration

from finscribe.checkpoint import describe, load_processor, random_model_like, real_files_folder


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--like", default=None, help="real model files (default ../shared/paddleocr_vl/v1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--build", action="store_true", help="also build the full-size model (about 3.6 GB of RAM)")
    args = parser.parse_args()
    source = args.like or str(real_files_folder())
    result = {"source": source}
    with tempfile.TemporaryDirectory() as tmp:
        AutoTokenizer.from_pretrained(source).save_pretrained(tmp)
        result["tokenizer_json_mb"] = round((Path(tmp) / "tokenizer.json").stat().st_size / 1e6, 1)
        result["tokenizer_model_s"] = _median_seconds(lambda: AutoTokenizer.from_pretrained(source), args.repeats)
        result["tokenizer_json_s"] = _median_seconds(lambda: AutoTokenizer.from_pretrained(tmp), args.repeats)
    result["load_processor_s"] = _median_seconds(lambda: load_processor(source), args.repeats)
    with torch.device("meta"):
        result["transformers_reading"] = describe(PaddleOCRVLForConditionalGeneration(PaddleOCRVLConfig.from_pretrained(source)))
    if args.build:
        start = time.perf_counter()
        model, _ = random_model_like(source)
        result["full_size_build_s"] = round(time.perf_counter() - start, 1)
        result["full_size"] = describe(model)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
