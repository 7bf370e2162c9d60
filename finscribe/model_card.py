"""What a trained model folder says about itself: its base model and its model card (README.md).

    from finscribe.model_card import base_model_of, write_model_card
    base_model_of("./finetuned_finscribe_vl")      # -> the model it was fine-tuned from
    write_model_card("./finetuned_finscribe_vl")   # README.md with Hub front matter

`base_model_of` reads, in order: a LoRA adapter's `adapter_config.json`
(`base_model_name_or_path`), `train_config.json` written by `finscribe train` (`model`), and
`quantization.json` written by `finscribe quantize` (`source_model`, followed to its own base).
`compare_base_vs_finetuned.py` uses it when `--base` is not given, so the comparison is with the
model this one was really trained from, never a hub id picked blindly.

`write_model_card` builds the card from the files the stages leave in the folder
(train_config.json, training_data.json, metrics.jsonl, quantization.json): base model, data,
recipe, the metrics that are known, limits and intended use. Light: no torch import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finscribe.errors import FinScribeError
from finscribe.fileio import write_text_atomic


class ModelProvenanceError(FinScribeError, ValueError):
    """A model folder that does not say which base model it came from."""


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _resolve(value: str, folder: Path) -> str:
    """A relative local path as it was given at training time: relative to the working directory;
    if that does not exist, relative to the model folder; else as given (a hub id)."""
    if Path(value).expanduser().exists() or Path(value).is_absolute():
        return value
    beside = folder / value
    return str(beside) if beside.exists() else value


def base_model_of(model_dir: str | Path) -> str:
    """The hub id or folder the model in `model_dir` was fine-tuned (or quantized) from.

    Raises ModelProvenanceError naming the folder when nothing in it says so."""
    folder = Path(model_dir)
    adapter = _read_json(folder / "adapter_config.json")
    if adapter and adapter.get("base_model_name_or_path"):
        return _resolve(str(adapter["base_model_name_or_path"]), folder)
    trained = _read_json(folder / "train_config.json")
    if trained and trained.get("model"):
        return _resolve(str(trained["model"]), folder)
    quantized = _read_json(folder / "quantization.json")
    if quantized and quantized.get("source_model"):
        source = _resolve(str(quantized["source_model"]), folder)
        try:
            return base_model_of(source)
        except ModelProvenanceError:
            return source
    raise ModelProvenanceError(
        f"{folder}: says nothing about its base model (no adapter_config.json, train_config.json or "
        "quantization.json); pass the base explicitly, e.g. --base PaddlePaddle/PaddleOCR-VL or a local folder")


def _metrics(folder: Path) -> dict[str, Any]:
    """The last value of each logged metric in metrics.jsonl (train loss, eval field accuracy, ...)."""
    last: dict[str, Any] = {}
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return last
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        for key, value in row.items():
            if key in ("loss", "train_loss", "eval_loss", "eval_field_accuracy", "eval_json_valid", "train_runtime") \
                    and isinstance(value, (int, float)):
                last[key] = (row.get("step"), value)
    return last


def model_card(model_dir: str | Path, *, evaluation: dict[str, Any] | None = None) -> str:
    """The Markdown model card of a trained (or quantized) model folder, with Hub front matter."""
    folder = Path(model_dir)
    config = _read_json(folder / "train_config.json") or {}
    data = _read_json(folder / "training_data.json") or {}
    quant = _read_json(folder / "quantization.json")
    adapter = (folder / "adapter_config.json").is_file()
    try:
        base = base_model_of(folder)
    except ModelProvenanceError:
        base = "unknown"
    tags = ["finscribe", "paddleocr-vl", "invoice-extraction", "document-understanding"]
    tags += ["lora"] if adapter else []
    tags += ["int8", "torchao"] if quant else []
    front = ["---", f"base_model: {json.dumps(base)}", f"library_name: {'peft' if adapter else 'transformers'}",
             "pipeline_tag: image-text-to-text", "tags:", *[f"- {t}" for t in tags], "---", ""]
    kind = "LoRA adapter" if adapter else "INT8-quantized model" if quant else "fine-tuned model"
    lines = [f"# FinScribe {kind}: PaddleOCR-VL → invoice JSON", "",
             "Reads a crop of an invoice region (vendor block, client info, invoice meta, line-item table, totals) "
             "or a whole page and answers with the canonical JSON of its fields (money as exact decimal strings, "
             "dates YYYY-MM-DD), in the prompt and chat template FinScribe trains with.", "",
             "## Base model", "", f"`{base}`" + (" (this folder holds only the adapter; `finscribe.model.load_model` "
                                                   "loads the base and applies it)" if adapter else ""), ""]
    lines += ["## Training data", ""]
    if data:
        lines += [f"- files: {', '.join(f'`{d}`' for d in data.get('data', [])) or 'n/a'}",
                  f"- training records: {data.get('train_records', 'n/a')}"
                  + (f" (mixed at shares {data['mix']})" if data.get("mix") else "")]
        coverage = data.get("field_coverage") or {}
        for region, cover in sorted(coverage.items()):  # partial annotations: say which fields were taught
            fields = ", ".join(f"{name} {count}" for name, count in cover.get("fields", {}).items())
            lines.append(f"- {region}: {cover.get('records', 'n/a')} records; fields annotated: {fields or 'none'}")
    else:
        lines.append("- not recorded in this folder")
    lines += ["", "## Recipe", ""]
    if config:
        method = (f"LoRA (r {config.get('lora_r')}, alpha {config.get('lora_alpha') or 2 * int(config.get('lora_r') or 0)}, "
                  f"preset {config.get('lora_preset')})") if config.get("use_lora") else "full fine-tuning"
        steps = config.get("max_steps")
        lines += [f"- {method}, completion-only loss (prompt tokens masked)",
                  f"- learning rate {config.get('learning_rate')} ({config.get('lr_scheduler')}, warm-up ratio "
                  f"{config.get('warmup_ratio')}), batch {config.get('batch_size')} × {config.get('gradient_accumulation_steps')} "
                  "accumulation, " + (f"{steps} steps" if steps and steps > 0 else f"{config.get('epochs')} epochs"),
                  f"- seed {config.get('seed')}; full settings in `train_config.json`"]
    if quant:
        before, after = quant.get("weight_bytes_float", {}), quant.get("weight_bytes_quantized", {})
        lines += [f"- quantized: {quant.get('method')} ({quant.get('format', quant.get('backend'))}) from "
                  f"`{quant.get('source_model')}`; weights {before.get('total', 0) / 1e6:.2f} → "
                  f"{after.get('total', 0) / 1e6:.2f} MB (LM head kept float, tied to the embeddings)"]
    if not config and not quant:
        lines.append("- not recorded in this folder")
    lines += ["", "## Metrics", ""]
    known = _metrics(folder)
    names = {"loss": "train loss (last logged)", "train_loss": "mean train loss", "eval_loss": "validation loss",
             "eval_field_accuracy": "validation field accuracy (greedy, a sample of val records)",
             "eval_json_valid": "validation JSON validity", "train_runtime": "training time (s)"}
    rows = [f"| {names[k]} | {v:.4g} | step {s} |" for k, (s, v) in known.items()]
    rows += [f"| {k} | {v:.4g} | `finscribe evaluate` |" for k, v in (evaluation or {}).items() if isinstance(v, (int, float))]
    if rows:
        lines += ["| metric | value | where |", "|---|---|---|", *rows, ""]
    lines += ["Test-set metrics are not part of training: run `finscribe evaluate --model <this folder> --data ... "
              "--split test` (and `--blank-images` for the prior-only control) and read its report.md.", ""]
    lines += ["## Intended use", "",
              "Extracting fields from invoices into validated JSON, with the arithmetic checked afterwards "
              "(`finscribe.eval.validation.validate_document`) and a human reviewing documents that fail it.", "",
              "## Limits", "",
              "- Trained on the data above only: layouts, languages, currencies and scan qualities it did not see "
              "are not measured; synthetic-only training does not guarantee accuracy on real scans.",
              "- A model can answer with the right schema from priors without reading the image: compare against "
              "the blank-image control before trusting a field-accuracy figure.",
              "- Long tables can make the decoder loop; FinScribe's repetition guard stops and flags such outputs.",
              "- Not for unattended payment decisions.", "",
              "## Use", "", "```python", "from finscribe.model import load_model",
              "from finscribe.inference import predict", f"model, processor = load_model({str(folder)!r})",
              "[pred] = predict(model, processor, ['crop.png'], 'totals_section')", "print(pred.parsed)", "```", ""]
    return "\n".join(front + lines)


def write_model_card(model_dir: str | Path, *, evaluation: dict[str, Any] | None = None) -> Path:
    """Write `model_dir/README.md` (atomically) and return its path."""
    path = Path(model_dir) / "README.md"
    write_text_atomic(path, model_card(model_dir, evaluation=evaluation))
    return path
