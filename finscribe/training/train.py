"""Fine-tune PaddleOCR-VL on FinScribe records: full SFT or LoRA, one or many devices.

    finscribe train --data-dir data --model models/tiny --output-dir runs/tiny --epochs 4
    python train_finscribe_vl.py --data-dir data --output-dir ./finetuned_finscribe_vl --use-lora --lora-r 16
    accelerate launch --config_file configs/accelerate/ddp.yaml -m finscribe.training.train --data-dir data ...
    torchrun --nproc_per_node 2 -m finscribe.training.train --data-dir data ...

transformers `Trainer` does the loop, mixed precision, checkpointing and DDP/FSDP/DeepSpeed.
The loss is completion-only (see collate.py) and normalised by the number of answer tokens
across the whole accumulated batch (and across devices): PaddleOCR-VL's forward accepts loss
kwargs, so Trainer passes `num_items_in_batch` and the model sums token losses and divides by it
(tests/test_train.py checks this against a hand computation). That is what lets `--sampling
batch_rebalance` cut a step's random records into micro-batches by length (a table's crop then pads
only other tables) without changing the update.

The output folder holds the model (or LoRA adapter) + processor + chat template (loadable with
`load_model(output_dir)`), config.json, metrics.jsonl, TensorBoard logs under runs/,
loss_curve.png and the checkpoints (checkpoint-N, resumable with --resume-from-checkpoint).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

import datasets
import torch
from peft import PeftModel
from transformers import TrainingArguments

from finscribe.config import build_parser, parse_config, save_config, trainer_arguments
from finscribe.data.build_dataset import (
    build_dataset_from_manifest,
    load_records,
)
from finscribe.data.mixing import mix_datasets_by_share
from finscribe.data.records import RECORD_KEYS, field_coverage
from finscribe.errors import FinScribeError
from finscribe.fileio import ensure_output_dir, write_json_atomic
from finscribe.mining.replay_dataset import build_hard_sample_dataset, mix_datasets
from finscribe.model import set_max_pixels
from finscribe.model_card import write_model_card
from finscribe.training.callbacks import (
    GenerationEvalCallback,
    MetricsJsonlCallback,
    plot_loss_curve,
)
from finscribe.training.collate import CompletionCollator, with_token_lengths
from finscribe.training.lora import apply_lora
from finscribe.training.model import (
    load_model,
)
from finscribe.training.resume import (
    checked_checkpoint,
    latest_or_none,
    loss_total,
    reset_metrics,
    trim_metrics,
)
from finscribe.training.train_config import TrainConfig  # noqa: F401  (the stage's config, torch-free)
from finscribe.training.trainer import FinScribeTrainer, is_vision

logger = logging.getLogger(__name__)


class TrainingDataError(FinScribeError, ValueError):
    """The training data can't be found or holds no usable records; the message says what to do."""


# ----------------------------------------------------------------------------- data


def _data_files(config: TrainConfig) -> list[Path]:
    if config.data:
        return [Path(path) for path in config.data]
    if config.data_dir is None:
        raise TrainingDataError("no training data: pass --data-dir DIR or --data FILE")
    files = find_data_files(Path(config.data_dir))
    logger.info("--data-dir %s: using %s", config.data_dir, ", ".join(map(str, files)))
    return files


def find_data_files(folder: Path) -> list[Path]:
    """The record files below `folder` (subfolders too): every `training_manifest.json` (written by
    `finscribe generate`) and every records `.jsonl` (`finscribe build-dataset`), sorted by path.

    `python train_finscribe_vl.py --data-dir data` after generating into data/synthetic_invoices
    finds data/synthetic_invoices/training_manifest.json (and data/training_dataset.jsonl, if built).
    JSONL files inside a folder that holds a manifest are that export's own files and are skipped,
    as are hidden folders and JSONL files that are not records (hard-sample logs, predictions);
    everything used or skipped is printed."""
    if not folder.is_dir():
        raise TrainingDataError(f"--data-dir {folder}: folder not found. Create data with `finscribe generate "
                                "--output-dir {folder}/synthetic_invoices` and/or `finscribe build-dataset`.")
    manifests = sorted(p for p in folder.rglob("training_manifest.json") if not _hidden(p, folder))
    exports = [m.parent for m in manifests]
    candidates = sorted(p for p in folder.rglob("*.jsonl") if not _hidden(p, folder) and not any(e in p.parents for e in exports))
    jsonl = [p for p in candidates if _is_records_file(p)]
    skipped = [p for p in candidates if p not in jsonl]
    if skipped:  # hard-sample logs, predictions, metrics: other JSONL files, said out loud
        print(f"not training records (first line lacks {list(RECORD_KEYS)}), skipped: {', '.join(map(str, skipped))}")
    files = manifests + jsonl
    if not files:
        raise TrainingDataError(f"--data-dir {folder}: found no training_manifest.json or records .jsonl in it or "
                                "its subfolders. Create data with `finscribe generate` and/or `finscribe build-dataset`.")
    print(f"training data found under {folder}: {', '.join(map(str, files))}", flush=True)
    return files


def _is_records_file(path: Path) -> bool:
    with path.open(encoding="utf-8", errors="replace") as f:
        first = next((line for line in f if line.strip()), "")
    try:
        row = json.loads(first)
    except json.JSONDecodeError:
        return True  # let load_records name the broken line rather than skip the file
    return isinstance(row, dict) and set(RECORD_KEYS) <= set(row)


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _combine(parts: list[Any], config: TrainConfig | None) -> Any:
    """One set from the sets of several --data files: mixed at --mix shares, else concatenated."""
    if len(parts) == 1:
        return parts[0]
    if config is not None and config.mix:
        mixed = mix_datasets_by_share(parts, config.mix, seed=config.seed)
        logger.info("mixed %s at shares %s: %d training records", [str(p) for p in config.data], list(config.mix), len(mixed))
        return mixed
    columns = list(RECORD_KEYS)
    return datasets.concatenate_datasets([p.select_columns(columns).cast(parts[0].select_columns(columns).features)
                                          for p in parts])


def load_splits(config: TrainConfig) -> tuple[Any, Any]:
    """(train, val) 🤗 Datasets of records; val is None when the data has no 'val' split."""

    wanted = set(config.regions)
    trains, vals = [], []
    for path in _data_files(config):
        if path.suffix == ".json":
            data = build_dataset_from_manifest(path, include_pages="page" in config.regions)
        else:
            data = load_records(path)
        if config.regions:
            data = data.filter(lambda r: r["region"] in wanted)
        trains.append(data.filter(lambda r: r["split"] == "train"))
        vals.append(data.filter(lambda r: r["split"] == "val"))
        if len(trains[-1]) == 0:
            raise TrainingDataError(f"{path}: no 'train' records" + (f" for regions {list(config.regions)}" if config.regions else ""))
    train, val = _combine(trains, config), _combine(vals, None)
    if config.val_limit is not None and len(val) > config.val_limit:
        val = val.select(range(config.val_limit))
    if config.hard_samples is not None:

        hard = build_hard_sample_dataset(config.hard_samples, region_type=None)  # ErrorLogError names the folder
        if config.regions:
            hard = hard.filter(lambda r: r["region"] in wanted)
        try:
            train = mix_datasets(train, hard, ratio=config.hard_ratio, seed=config.seed)
        except ValueError as err:  # e.g. no hard samples for these regions: say so instead of training without replay
            raise TrainingDataError(f"--hard-samples {config.hard_samples}: {err}") from None
        logger.info("replaying %d hard samples from %s (ratio %.2f)", len(hard), config.hard_samples, config.hard_ratio)
    return train, (val if len(val) else None)


def _given_records(data: Any) -> datasets.Dataset:
    data = datasets.Dataset.from_list(list(data)) if isinstance(data, list) else data
    missing = [c for c in RECORD_KEYS if c not in data.column_names]
    if missing or len(data) == 0:
        raise TrainingDataError(f"train_dataset: needs records with columns {list(RECORD_KEYS)}"
                                + (f" (missing {missing})" if missing else " (it is empty)"))
    return data.select_columns(list(RECORD_KEYS))


# ----------------------------------------------------------------------------- model


def prepare_model(config: TrainConfig, dtype: torch.dtype) -> tuple[Any, Any]:
    """Load the starting model and make the right parameters trainable (LoRA or full)."""

    source = config.model
    if Path(source).exists():  # absolute, so a saved adapter finds its base from anywhere
        source = str(Path(source).resolve())
    model, processor = load_model(source, dtype=dtype, device="cpu")
    if config.max_pixels is not None:
        set_max_pixels(processor, config.max_pixels)
    if isinstance(model, PeftModel):
        if config.use_lora:  # continue training the given adapter
            for name, param in model.named_parameters():
                param.requires_grad = "lora_" in name
        else:  # full SFT from an adapter: fold it in first
            model = model.merge_and_unload()
    elif config.use_lora:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = apply_lora(model, config.lora_preset, config.lora_r, config.lora_alpha, config.lora_dropout)
    if config.freeze_vision:
        for name, param in model.named_parameters():
            if is_vision(name):
                param.requires_grad = False
    model.config.use_cache = False  # the KV cache is useless in training and conflicts with checkpointing
    return model, processor


def training_arguments(config: TrainConfig, bf16: bool, has_val: bool) -> TrainingArguments:
    """TrainingArguments from the config's `arg(trainer=...)` options plus what follows from the run."""
    options = trainer_arguments(config)
    checkpointing = {"gradient_checkpointing": options.pop("gradient_checkpointing"),
                     "gradient_checkpointing_kwargs": {"use_reentrant": False} if config.gradient_checkpointing else None}
    # Later transformers 5.x renamed these to activation_checkpointing* and warn on the old names.
    if "activation_checkpointing" in {field.name for field in dataclasses.fields(TrainingArguments)}:
        checkpointing = {name.replace("gradient_", "activation_"): value for name, value in checkpointing.items()}
    return TrainingArguments(
        **options,
        **checkpointing,
        output_dir=str(config.output_dir),
        eval_strategy="steps" if has_val else "no",
        eval_steps=(config.eval_steps or config.save_steps) if has_val else None,
        bf16=bf16,
        remove_unused_columns=False,  # the collator needs image/prompt/target
        report_to=[r for r in config.report_to if r != "none"],
        average_tokens_across_devices=True,  # normalise by answer tokens summed over all ranks
        ddp_find_unused_parameters=False,
        # accelerate only sets up multi-process CPU (gloo) training under torchrun when told it is on CPU.
        use_cpu=not torch.cuda.is_available(),
    )


def _resolve_resume(config: TrainConfig, is_main: bool = True) -> str | None:
    """The checkpoint to resume from: 'latest' is the newest COMPLETE checkpoint-N, or None (step 0)
    when there is none yet (see resume.py)."""
    if config.resume_from_checkpoint is None:
        return None
    if config.resume_from_checkpoint == "latest":
        latest = latest_or_none(Path(config.output_dir), remove_broken=is_main)
        return None if latest is None else str(latest)
    return str(checked_checkpoint(Path(config.resume_from_checkpoint)))


def train(config: TrainConfig, callbacks: list[Any] | None = None, train_dataset: Any = None) -> Path:
    """Fine-tune per `config`; returns the output folder (loadable with `load_model`).

    `callbacks`: extra `transformers.TrainerCallback`s (e.g. to inspect the model per rank).
    `train_dataset`: records to train on instead of `config.data`/`data_dir` (a 🤗 Dataset or a list
    of records with RECORD_KEYS, e.g. the seed's `normal_dataset + hard_samples[:len(normal_dataset) // 4]`)."""
    output_dir = ensure_output_dir(config.output_dir)  # before loading data and model
    if train_dataset is not None:
        train_set, val_set = _given_records(train_dataset), None
    else:
        train_set, val_set = load_splits(config)
    on_cuda = torch.cuda.is_available()
    bf16 = config.bf16 if config.bf16 is not None else (on_cuda and torch.cuda.is_bf16_supported())
    # Full SFT keeps fp32 master weights (bf16 autocast computes); a frozen LoRA base can live in bf16.
    dtype = torch.bfloat16 if (bf16 and config.use_lora) else torch.float32
    model, processor = prepare_model(config, dtype)
    if config.sampling != "random":  # the length-aware samplers read a `length` column
        train_set = with_token_lengths(train_set, processor)
    if config.sampling == "group_by_length" and val_set is not None:  # (the only one that groups the val set too)
        val_set = with_token_lengths(val_set, processor)
    args = training_arguments(config, bf16, val_set is not None)
    if args.process_index == 0:  # not config.json: a full model's own config.json goes there
        save_config(config, output_dir, name="train_config.json")
        # what the model was trained on, per region: records and how many carried each field
        write_json_atomic(output_dir / "training_data.json", {
            "data": [str(p) for p in _data_files(config)] if train_dataset is None else ["train_dataset (passed in Python)"],
            "mix": list(config.mix), "train_records": len(train_set),
            "field_coverage": field_coverage(train_set.select_columns(["region", "prompt", "target"]))})
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info("training %s parameters of %s (%s), %d train / %d val records", f"{trainable:,}", f"{total:,}",
                "LoRA" if config.use_lora else "full SFT", len(train_set), len(val_set) if val_set else 0)

    callbacks = [MetricsJsonlCallback(output_dir / "metrics.jsonl"), *(callbacks or [])]
    generation_eval = None
    if val_set is not None and config.eval_generate_samples > 0:
        sample = val_set.select(range(min(config.eval_generate_samples, len(val_set)))).to_list()
        generation_eval = GenerationEvalCallback(processor, sample, config.max_new_tokens)
        callbacks.append(generation_eval)
    collator = CompletionCollator(processor, max_length=config.max_length)
    trainer = FinScribeTrainer(
        model=model, args=args, train_dataset=train_set, eval_dataset=val_set, data_collator=collator,
        processing_class=processor, callbacks=callbacks, vision_lr=config.vision_lr,
    )
    if generation_eval is not None:
        generation_eval.log = trainer.log
    checkpoint = _resolve_resume(config, is_main=args.process_index == 0)
    if checkpoint is not None:
        trainer.loss_before_resume = loss_total(Path(checkpoint))
        if args.process_index == 0:
            trim_metrics(output_dir / "metrics.jsonl", Path(checkpoint))
    elif args.process_index == 0:
        reset_metrics(output_dir / "metrics.jsonl")
    trainer.train(resume_from_checkpoint=checkpoint)
    if collator.truncated:
        logger.warning("%d answers were cut to --max-length %s", collator.truncated, config.max_length)
    trainer.save_model(str(output_dir))  # model or adapter (+ processor, as processing_class)
    if trainer.is_world_process_zero():
        processor.save_pretrained(str(output_dir))
        plot_loss_curve(output_dir / "metrics.jsonl", output_dir / "loss_curve.png")
        write_model_card(output_dir)  # README.md: base, data, recipe, metrics, limits (Hub convention)
    return output_dir


def main(argv: list[str] | None = None, prog: str = "finscribe train") -> int:
    """`finscribe train --data-dir DATA --model MODEL --output-dir OUT [--use-lora] ...`"""
    logging.basicConfig(level=logging.INFO if int(os.environ.get("LOCAL_RANK", "0")) == 0 else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = parse_config(TrainConfig, argv, prog, "Fine-tune PaddleOCR-VL into an invoice → JSON extractor "
                          "(completion-only loss; full SFT or LoRA; runs under accelerate/torchrun).")
    if not config.data and config.data_dir is None:  # (the Python API may pass train(..., train_dataset=) instead)
        build_parser(TrainConfig, prog, "").error("pass --data-dir or --data")
    path = train(config)
    print(f"trained model written to {path}")
    return 0


if __name__ == "__main__":
    from finscribe.cli import run

    raise SystemExit(run(main, prog="python -m finscribe.training.train"))
