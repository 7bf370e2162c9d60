"""Float vs INT8: weight bytes, peak memory, per-record latency and field accuracy, side by side.

    finscribe benchmark-quant --model runs/ft --data data/synthetic_invoices/training_manifest.json \
        --split test --regions totals_section --output-dir runs/quant [--cpu-kernels both]
    finscribe benchmark-quant --full-size-random --model models/tiny --data D --output-dir runs/quant-full

`--data` is a manifest or records JSONL (`RecordSelection`: --split, --regions, --limit; default
limit 8), or a folder with `crops/` + `annotations/`. The INT8 model is the artefact
`finscribe quantize` writes (quantized here into OUTPUT_DIR/int8_model unless --quantized-path
names one), loaded with `load_quantized_model`; `--cpu-kernels both` times it on fbgemm and on
torchao's own kernels. Each variant runs in its own fresh process, so its peak RSS is its own.
Latency is measured one record at a time with a fixed output length (`--fixed-new-tokens`, EOS
ignored, repetition guard off: a fixed-length run must not be cut short), so every variant
generates the same number of tokens; accuracy uses normal greedy decoding with the shared
generation flags (`--max-new-tokens`, `--repetition-window`, `--batch-size`). `--full-size-random`
builds the released 0.9B v1 architecture from its real config.json (../shared/paddleocr_vl/v1 or
$FINSCRIBE_REAL_FILES, translated by finscribe.checkpoint: untied head) with random weights and
quantizes it in memory: speed and size only, no accuracy; the report gives its parameter count
and head (`architecture`). Writes `quantization.json` + `quantization.md`.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoProcessor, PaddleOCRVLForConditionalGeneration

from finscribe.checkpoint import describe, load_config, real_files_folder, use_token_ids_of
from finscribe.config import config_to_dict, parse_config, save_config
from finscribe.data.build_dataset import build_dataset
from finscribe.data.formatters import PAGE
from finscribe.data.selection import RecordSelection, load_selection, select_records
from finscribe.deploy.quant_benchmark_config import DEFAULT_LIMIT, QuantBenchmarkConfig
from finscribe.deploy.quantize import (
    META_FILE,
    QuantizationError,
    _dynamic_backend,
    apply_quantization,
    linear_module_names,
    load_float_model,
    load_quantized_model,
    quantize_model,
    resolve_method,
    weight_bytes,
)
from finscribe.errors import ConfigError
from finscribe.eval.field_accuracy import field_accuracy_details
from finscribe.fileio import ensure_output_dir, write_json_atomic, write_text_atomic
from finscribe.inference import predict
from finscribe.prompting import load_image


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


def _load_variant(variant: str, cfg: dict[str, Any]) -> tuple[Any, Any, dict[str, int]]:
    """(model, processor, weight bytes) of one variant: "float", "int8" (fbgemm) or "int8_torchao"."""
    generation = cfg["generation"]
    if cfg["full_size_random"]:
        processor = AutoProcessor.from_pretrained(generation["model"])
        model = _full_size_model(processor)
        cfg["architecture"] = describe(model)  # parameter count and tied/untied head, before quantizing
        modules = linear_module_names(model)
        if variant != "float":  # no folder for 0.9B random weights: quantize in memory, same kernels
            backend = "torch.ao" if variant == "int8" and _dynamic_backend() == "torch.ao" else "torchao"
            apply_quantization(model, resolve_method(cfg["method"], "cpu"), modules, backend)
        return model, processor, weight_bytes(model, modules)
    if variant == "float":
        model, processor = load_float_model(generation["model"], device="cpu")
        return model, processor, weight_bytes(model, linear_module_names(model))
    folder = Path(cfg["quantized_path"])
    model, processor = load_quantized_model(folder, device="cpu", cpu_kernels="torchao" if variant == "int8_torchao" else "fbgemm")
    return model, processor, json.loads((folder / META_FILE).read_text(encoding="utf-8"))["weight_bytes_quantized"]


def _measure(variant: str, cfg: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs in a fresh process: load one variant, time it, score it."""
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    start = time.perf_counter()
    model, processor, sizes = _load_variant(variant, cfg)
    load_seconds = time.perf_counter() - start

    images = [load_image(item["image"]) for item in items]
    n = cfg["fixed_new_tokens"]
    # Fixed length: EOS ignored (min_new_tokens) and the repetition guard off, or a looping tiny model
    # would be stopped early and the variants would not generate the same number of tokens.
    fixed = {"max_new_tokens": n, "min_new_tokens": n, "batch_size": 1, "repetition_window": 0}
    predict(model, processor, images[:1], items[0]["region"], **fixed)  # warm-up
    latencies = []
    for _ in range(cfg["repeats"]):
        for image, item in zip(images, items):
            t = time.perf_counter()
            out = predict(model, processor, [image], item["region"], **fixed)
            latencies.append(time.perf_counter() - t)
            if out[0].new_tokens != n:
                raise QuantizationError(f"{variant}: expected {n} new tokens, got {out[0].new_tokens}")
    latencies.sort()
    result = {"variant": variant, "weight_bytes": sizes, "load_seconds": load_seconds,
              "latency_p50_s": statistics.median(latencies),
              "latency_p95_s": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))],
              "latency_samples": len(latencies), "outputs": None, "field_accuracy": None,
              "architecture": cfg.get("architecture")}
    if not cfg["full_size_random"]:
        generation = cfg["generation"]
        scores, outputs = [], []
        for image, item in zip(images, items):
            pred = predict(model, processor, [image], item["region"], max_new_tokens=generation["max_new_tokens"],
                           batch_size=1, repetition_window=generation["repetition_window"])[0]
            scores.append(field_accuracy_details(pred.parsed, json.loads(item["target"]), region=_field_region(item)))
            outputs.append(pred.raw_text)
        result["field_accuracy"] = sum(s.correct for s in scores) / max(1, sum(s.total for s in scores))
        result["outputs"] = outputs
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def _field_region(item: dict[str, Any]) -> str | None:
    return None if item["region"] == PAGE else item["region"]


def load_benchmark_records(selection: RecordSelection) -> list[dict[str, Any]]:
    """The records to time and score: `load_selection` for a manifest or JSONL; a folder with
    crops/ + annotations/ (the export layout) is read with build_dataset. Default limit 8."""
    data = Path(selection.data)
    if data.is_dir():
        if not (data / "annotations").is_dir():
            raise ConfigError(f"--data {data}: a folder must hold crops/ and annotations/ (or pass a manifest / JSONL)")
        records = [dict(r) for r in build_dataset(data / "crops", data / "annotations", split="test")]
        chosen = select_records(records, "all", selection.regions, str(data), skip_ocr=True)
    else:
        chosen = load_selection(dataclasses.replace(selection, limit=None), skip_ocr=True)
    return chosen[: selection.limit or DEFAULT_LIMIT]


def _ratio_words(ratio: float, better: str, worse: str) -> str:
    """2.00 → "2.00× faster"; 0.50 → "2.00× slower": never a ratio below 1 with the better word."""
    return f"{ratio:.2f}× {better}" if ratio >= 1 else f"{1 / ratio:.2f}× {worse}"


def benchmark_quantization(cfg: QuantBenchmarkConfig) -> dict[str, Any]:
    """Run float and INT8 in fresh processes; write quantization.json/.md into cfg.output_dir."""
    output = ensure_output_dir(cfg.output_dir)
    items = load_benchmark_records(cfg.records)
    if not cfg.full_size_random and cfg.quantized_path is None:
        cfg.quantized_path = str(quantize_model(cfg.generation.model, output / "int8_model", cfg.method, device="cpu"))
    raw = config_to_dict(cfg)
    variants = ["float", *({"fbgemm": ["int8"], "torchao": ["int8_torchao"], "both": ["int8", "int8_torchao"]}[cfg.cpu_kernels])]
    context = multiprocessing.get_context("spawn")
    results = {}
    for variant in variants:
        with context.Pool(1) as pool:
            results[variant] = pool.apply(_measure, (variant, raw, items))
    f = results["float"]
    summary: dict[str, Any] = {"config": raw, "records": len(items), **results, "variants": variants}
    for variant in variants[1:]:
        q = results[variant]
        summary[f"{variant}_vs_float"] = compared = {
            "quantized_layers_ratio": f["weight_bytes"]["quantized_layers"] / q["weight_bytes"]["quantized_layers"],
            "total_weights_ratio": f["weight_bytes"]["total"] / q["weight_bytes"]["total"],
            "latency_p50_speedup": f["latency_p50_s"] / q["latency_p50_s"],
            "peak_rss_ratio": f["peak_rss_bytes"] / q["peak_rss_bytes"],
        }
        if f["field_accuracy"] is not None:
            compared["field_accuracy_drop_points"] = 100 * (f["field_accuracy"] - q["field_accuracy"])
            compared["same_outputs"] = sum(a == b for a, b in zip(f["outputs"], q["outputs"]))
    write_json_atomic(output / "quantization.json", summary)
    write_text_atomic(output / "quantization.md", markdown_table(summary))
    save_config(cfg, output, name="benchmark_config.json")
    return summary


def markdown_table(s: dict[str, Any]) -> str:
    """One column per variant, one row per metric; the change columns say "faster"/"slower"."""
    variants = s["variants"]
    mb = lambda b: f"{b / 1e6:,.2f} MB"  # noqa: E731
    acc = lambda r: "–" if r["field_accuracy"] is None else f"{100 * r['field_accuracy']:.1f} %"  # noqa: E731
    names = {"float": "float32", "int8": "INT8 (fbgemm)", "int8_torchao": "INT8 (torchao kernels)"}
    rows = {
        "weights, quantized layers": [mb(s[v]["weight_bytes"]["quantized_layers"]) for v in variants],
        "weights, total": [mb(s[v]["weight_bytes"]["total"]) for v in variants],
        "peak RSS (process)": [mb(s[v]["peak_rss_bytes"]) for v in variants],
        f"latency p50 / record ({s['config']['fixed_new_tokens']} tokens)": [f"{1000 * s[v]['latency_p50_s']:.0f} ms" for v in variants],
        "latency p95 / record": [f"{1000 * s[v]['latency_p95_s']:.0f} ms" for v in variants],
        "field accuracy": [acc(s[v]) for v in variants],
    }
    changes = {v: s[f"{v}_vs_float"] for v in variants[1:]}
    change_rows = {
        "weights, quantized layers": lambda c: _ratio_words(c["quantized_layers_ratio"], "smaller", "larger"),
        "weights, total": lambda c: _ratio_words(c["total_weights_ratio"], "smaller", "larger"),
        "peak RSS (process)": lambda c: _ratio_words(c["peak_rss_ratio"], "smaller", "larger"),
        f"latency p50 / record ({s['config']['fixed_new_tokens']} tokens)": lambda c: _ratio_words(c["latency_p50_speedup"], "faster", "slower"),
        "field accuracy": lambda c: "" if "field_accuracy_drop_points" not in c else f"{c['field_accuracy_drop_points']:+.1f} points drop",
    }
    header = ["metric", *(names[v] for v in variants), *(f"change, {names[v]}" for v in variants[1:])]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for metric, values in rows.items():
        change = [change_rows[metric](changes[v]) if metric in change_rows else "" for v in variants[1:]]
        lines.append("| " + " | ".join([metric, *values, *change]) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None, prog: str = "finscribe benchmark-quant") -> int:
    """`finscribe benchmark-quant --model M --data D --output-dir OUT`."""
    cfg = parse_config(QuantBenchmarkConfig, argv, prog, "Float vs INT8 size, memory, latency and accuracy.")
    summary = benchmark_quantization(cfg)
    print(markdown_table(summary))
    print(f"wrote {cfg.output_dir / 'quantization.json'} and quantization.md")
    return 0
