"""Float vs INT8: weight bytes, peak memory, per-crop latency and field accuracy, side by side.

    finscribe benchmark-quant --model models/overfit --data data/overfit --output runs/quant
    finscribe benchmark-quant --full-size-random --model models/tiny --output runs/quant-full

`--data` is a folder with `crops/<id>.png` and `annotations/<id>.json` (the export layout).
Each variant (float, quantized) runs in its own fresh process, so its peak RSS is its own.
Latency is measured one crop at a time with a fixed output length (`--fixed-new-tokens`, EOS
ignored), so float and INT8 generate the same number of tokens; accuracy uses normal greedy
decoding. `--full-size-random` builds the released 0.9B v1 architecture from its real config.json
(../shared/paddleocr_vl/v1 or $FINSCRIBE_REAL_FILES, translated by finscribe.checkpoint: untied
head) with random weights and the `--model` folder's processor: speed and size only, no accuracy;
the report gives its parameter count and head (`architecture`).
Writes `quantization.json` + `quantization.md` into `--output`.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import (
    AutoProcessor,
    PaddleOCRVLForConditionalGeneration,
)

from finscribe.checkpoint import describe, load_config, real_files_folder, use_token_ids_of
from finscribe.config import arg, config_to_dict, parse_config, save_config
from finscribe.data.schema import read_region_annotation
from finscribe.deploy.quantize import (
    _dynamic_backend,
    apply_quantization,
    linear_module_names,
    load_float_model,
    load_quantized_model,
    resolve_method,
    weight_bytes,
)
from finscribe.errors import ConfigError
from finscribe.eval.field_accuracy import field_accuracy
from finscribe.fileio import write_json_atomic, write_text_atomic
from finscribe.inference import predict


def _full_size_model(processor: Any) -> Any:
    # The released v1 architecture from its own config.json (translated: untied head, real rope),
    # not the class defaults; the special-token ids are those of `processor`'s tokenizer.
    config = use_token_ids_of(load_config(str(real_files_folder())), processor)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = PaddleOCRVLForConditionalGeneration(config)
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    return model.eval()


def _measure(variant: str, cfg: dict[str, Any], items: list[tuple[str, str, str]]) -> dict[str, Any]:
    """Runs in a fresh process: load one variant, time it, score it."""


    torch.set_num_threads(cfg["threads"]) if cfg["threads"] else None
    start = time.perf_counter()
    if cfg["full_size_random"]:

        processor = AutoProcessor.from_pretrained(cfg["model"])
        model = _full_size_model(processor)
        cfg["architecture"] = describe(model)  # parameter count and tied/untied head, before quantizing
    elif variant == "int8" and cfg["quantized_path"]:
        model, processor = load_quantized_model(cfg["quantized_path"], device="cpu")
    else:
        model, processor = load_float_model(cfg["model"], device="cpu")
    modules = linear_module_names(model, include_lm_head=cfg.get("include_lm_head", False))
    if variant == "int8" and (cfg["full_size_random"] or not cfg["quantized_path"]):
        method = resolve_method(cfg["method"], "cpu")
        apply_quantization(model, method, modules, _dynamic_backend() if method == "int8_dynamic" else "torchao")
    if variant == "float" or cfg["full_size_random"] or not cfg["quantized_path"]:
        sizes = weight_bytes(model, modules)
    else:
        sizes = json.loads((Path(cfg["quantized_path"]) / "quantization.json").read_text())["weight_bytes_quantized"]
    load_seconds = time.perf_counter() - start

    images = [Image.open(crop).convert("RGB") for crop, _, _ in items]
    n = cfg["fixed_new_tokens"]
    predict(model, processor, images[:1], items[0][1], max_new_tokens=n, min_new_tokens=n, batch_size=1)  # warm-up
    latencies = []
    for _ in range(cfg["repeats"]):
        for image, (_, region, _) in zip(images, items):
            t = time.perf_counter()
            out = predict(model, processor, [image], region, max_new_tokens=n, min_new_tokens=n, batch_size=1)
            latencies.append(time.perf_counter() - t)
            assert out[0].new_tokens == n, f"expected {n} new tokens, got {out[0].new_tokens}"
    latencies.sort()
    result = {"variant": variant, "weight_bytes": sizes, "load_seconds": load_seconds,
              "latency_p50_s": statistics.median(latencies),
              "latency_p95_s": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))],
              "latency_samples": len(latencies), "outputs": None, "field_accuracy": None,
              "architecture": cfg.get("architecture")}
    if not cfg["full_size_random"]:
        scores, outputs = [], []
        for image, (_, region, annotation) in zip(images, items):
            pred = predict(model, processor, [image], region, max_new_tokens=cfg["max_new_tokens"], batch_size=1)[0]
            fields = read_region_annotation(Path(annotation))[1]
            scores.append(field_accuracy(pred.parsed, fields, region=region))
            outputs.append(pred.raw_text)
        result["field_accuracy"] = sum(s.correct for s in scores) / max(1, sum(s.total for s in scores))
        result["outputs"] = outputs
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def _items(data: Path | None, limit: int, full_size: bool) -> list[tuple[str, str, str]]:
    if data is None:
        raise ConfigError("--data is required (a folder with crops/ and annotations/)")
    annotations = sorted((data / "annotations").glob("*.json"))[:limit]
    if not annotations:
        raise ConfigError(f"{data}/annotations holds no .json files; pass a folder written by `finscribe generate`")
    items = []
    for annotation in annotations:
        crop = data / "crops" / f"{annotation.stem}.png"
        if not crop.is_file():
            raise ConfigError(f"{annotation} has no crop {crop}; re-export the crop or remove the annotation")
        region, _ = read_region_annotation(annotation)
        items.append((str(crop), region, str(annotation)))
    return items


def benchmark_quantization(cfg: QuantBenchmarkConfig) -> dict[str, Any]:
    """Run float and INT8 in fresh processes; write quantization.json/.md into cfg.output."""
    items = _items(cfg.data, cfg.limit, cfg.full_size_random)
    raw = config_to_dict(cfg)
    context = multiprocessing.get_context("spawn")
    results = {}
    for variant in ("float", "int8"):
        with context.Pool(1) as pool:
            results[variant] = pool.apply(_measure, (variant, raw, items))
    f, q = results["float"], results["int8"]
    summary = {
        "config": raw, "crops": len(items), "float": f, "int8": q,
        "quantized_layers_ratio": f["weight_bytes"]["quantized_layers"] / q["weight_bytes"]["quantized_layers"],
        "total_weights_ratio": f["weight_bytes"]["total"] / q["weight_bytes"]["total"],
        "latency_p50_speedup": f["latency_p50_s"] / q["latency_p50_s"],
        "peak_rss_ratio": f["peak_rss_bytes"] / q["peak_rss_bytes"],
    }
    if f["field_accuracy"] is not None:
        summary["field_accuracy_drop_points"] = 100 * (f["field_accuracy"] - q["field_accuracy"])
        summary["same_outputs"] = sum(a == b for a, b in zip(f["outputs"], q["outputs"]))
    cfg.output.mkdir(parents=True, exist_ok=True)
    write_json_atomic(cfg.output / "quantization.json", summary)
    write_text_atomic(cfg.output / "quantization.md", markdown_table(summary))
    save_config(cfg, cfg.output, name="benchmark_config.json")
    return summary


def markdown_table(s: dict[str, Any]) -> str:
    f, q = s["float"], s["int8"]
    mb = lambda b: f"{b / 1e6:,.2f} MB"  # noqa: E731
    acc = lambda r: "–" if r["field_accuracy"] is None else f"{100 * r['field_accuracy']:.1f} %"  # noqa: E731
    rows = [
        ("weights, quantized layers", mb(f["weight_bytes"]["quantized_layers"]), mb(q["weight_bytes"]["quantized_layers"]),
         f"{s['quantized_layers_ratio']:.2f}x smaller"),
        ("weights, total", mb(f["weight_bytes"]["total"]), mb(q["weight_bytes"]["total"]), f"{s['total_weights_ratio']:.2f}x smaller"),
        ("peak RSS (process)", mb(f["peak_rss_bytes"]), mb(q["peak_rss_bytes"]), f"{s['peak_rss_ratio']:.2f}x"),
        (f"latency p50 / crop ({s['config']['fixed_new_tokens']} tokens)", f"{1000 * f['latency_p50_s']:.0f} ms",
         f"{1000 * q['latency_p50_s']:.0f} ms", f"{s['latency_p50_speedup']:.2f}x faster"),
        ("latency p95 / crop", f"{1000 * f['latency_p95_s']:.0f} ms", f"{1000 * q['latency_p95_s']:.0f} ms", ""),
        ("field accuracy", acc(f), acc(q),
         "" if "field_accuracy_drop_points" not in s else f"{s['field_accuracy_drop_points']:+.1f} points drop"),
    ]
    lines = ["| metric | float32 | INT8 | change |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines) + "\n"


@dataclass
class QuantBenchmarkConfig:
    model: str = arg(help="float model folder (with --full-size-random: the folder whose processor is used)")
    output: Path = arg(help="folder for quantization.json + quantization.md")
    data: Path | None = arg(None, "folder with crops/*.png + annotations/*.json")
    quantized_path: str | None = arg(None, "an existing `finscribe quantize` folder (default: quantize in memory)")
    method: str = arg("auto", "quantization method when quantizing in memory")
    limit: int = arg(8, "most crops to use")
    repeats: int = arg(3, "latency passes over the crops")
    fixed_new_tokens: int = arg(32, "tokens generated per crop for latency (EOS ignored)")
    max_new_tokens: int = arg(160, "generation limit for the accuracy pass")
    full_size_random: bool = arg(False, "benchmark the real v1 config.json (0.9B, untied head) with random weights instead")
    threads: int = arg(0, "torch threads (0 = torch default)")
    include_lm_head: bool = arg(False, "also quantize the LM head when quantizing in memory")


def main(argv: list[str] | None = None, prog: str = "finscribe benchmark-quant") -> int:
    """`finscribe benchmark-quant --model M --data D --output OUT`."""
    cfg = parse_config(QuantBenchmarkConfig, argv, prog, "Float vs INT8 size, memory, latency and accuracy.")
    summary = benchmark_quantization(cfg)
    print(markdown_table(summary))
    print(f"wrote {cfg.output / 'quantization.json'} and quantization.md")
    return 0
