"""Trainer callbacks: metrics as JSONL, generation-based field accuracy on validation, loss plot."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from finscribe.eval.charts import plt, save_figure
from finscribe.eval.field_accuracy import field_accuracy
from finscribe.inference import GenerationArgs, predict_records

logger = logging.getLogger(__name__)


class MetricsJsonlCallback(TrainerCallback):
    """Append every log event (train loss, lr, eval metrics) as one JSON line to `path`.

    Flushed per line so a crashed run keeps its history; on resume the file continues."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        row = {"step": state.global_step, "epoch": state.epoch, "time": round(time.time(), 3), **logs}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")


class GenerationEvalCallback(TrainerCallback):
    """After each evaluation, greedy-decode a few validation records with
    `finscribe.inference.predict` and log their mean field accuracy (`eval_field_accuracy`) and
    JSON validity (`eval_json_valid`).

    Runs on the main process only and is skipped under FSDP (sharded weights can't generate on
    one rank). If the inference/eval modules are missing the callback logs a note and does nothing.
    """

    def __init__(self, processor: Any, records: list[dict[str, Any]], max_new_tokens: int = 512):
        self.processor = processor
        self.records = records
        self.max_new_tokens = max_new_tokens
        self.log = None  # set to trainer.log once the Trainer exists

    def on_evaluate(self, args, state, control, model=None, metrics=None, **kwargs):
        if not self.records or not state.is_world_process_zero or model is None:
            return
        if args.fsdp:
            logger.info("generation-based eval skipped under FSDP")
            return
        generation = GenerationArgs(model="(the model in training)", batch_size=args.per_device_eval_batch_size,
                                    max_new_tokens=self.max_new_tokens)
        predictions = predict_records(model, self.processor, self.records, generation, show_progress=False)
        scores, valid = [], 0
        for record, prediction in zip(self.records, predictions):
            gt = json.loads(record["target"])
            scores.append(field_accuracy(prediction.parsed, gt, region=record["region"]))
            valid += prediction.parsed is not None
        extra = {"eval_field_accuracy": sum(scores) / len(scores), "eval_json_valid": valid / len(scores)}
        if metrics is not None:
            metrics.update(extra)
        # Through Trainer.log so TensorBoard, metrics.jsonl and log_history all get it.
        if self.log is not None:
            self.log(extra)
        logger.info("step %d: field accuracy %.3f, JSON valid %.3f on %d validation samples",
                    state.global_step, extra["eval_field_accuracy"], extra["eval_json_valid"], len(scores))


def plot_loss_curve(metrics_path: Path, output_path: Path) -> Path | None:
    """Training (and validation) loss vs step from metrics.jsonl as a PNG; None if nothing logged."""
    rows = [json.loads(line) for line in Path(metrics_path).read_text(encoding="utf-8").splitlines() if line.strip()] \
        if Path(metrics_path).is_file() else []
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
    acc = [(r["step"], r["eval_field_accuracy"]) for r in rows if "eval_field_accuracy" in r]
    if not train and not val:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train loss (per answer token)")
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    if acc:
        ax2 = ax.twinx()
        ax2.plot(*zip(*acc), "s--", color="tab:green", label="val field accuracy")
        ax2.set_ylim(0, 1)
        ax2.set_ylabel("field accuracy")
        ax2.legend(loc="upper center")
    ax.legend(loc="upper right")
    ax.set_title("FinScribe fine-tuning")
    fig.tight_layout()
    return save_figure(fig, Path(output_path))
