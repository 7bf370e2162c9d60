"""Resuming a training run: from the newest COMPLETE checkpoint, with metrics for the whole run.

    finscribe train ... --output-dir runs/x --resume-from-checkpoint latest

* A kill during a checkpoint save leaves a half-written `checkpoint-N` (no weights, or no
  `trainer_state.json`, which Trainer writes last). `latest` skips such folders and resumes from
  the newest complete one (`latest_complete_checkpoint`); the broken ones are removed so the
  resumed run can write those steps again cleanly.
* Trainer's summary `train_loss` only averages the steps run since the resume. Each checkpoint
  therefore carries `loss_total.json` (the sum of every step's loss so far, written before
  `trainer_state.json`), and the resumed run reports the mean over the whole run.
* `metrics.jsonl` is cut back to the resumed step (rows the killed run logged after its last
  checkpoint are redone by the resumed run; kept, they would appear twice in the file and plot).
* A run killed before its first complete checkpoint: `latest` starts from step 0 and says so,
  and a run that starts from step 0 (that way or without --resume-from-checkpoint) empties the
  killed run's `metrics.jsonl` first (`reset_metrics`) instead of appending to it.
* A run killed after its last step (in the final save, when `checkpoint-<max_steps>` is complete
  but the model and summary are not written): the resume trains no further step (the Trainer would
  run one more before checking max_steps, see `FinScribeTrainer._run_epoch`); it logs the summary
  and saves the model.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from finscribe.errors import FinScribeError
from finscribe.fileio import write_json_atomic, write_text_atomic

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
LOSS_FILE = "loss_total.json"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors",
                "pytorch_model.bin", "pytorch_model.bin.index.json", "adapter_model.bin")
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class ResumeError(FinScribeError, ValueError):
    """No usable checkpoint to resume from; the message names the folder and what is missing."""


def _read_state(folder: Path) -> dict[str, Any] | None:
    try:
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return state if isinstance(state, dict) and "global_step" in state else None


def incomplete_reason(folder: Path) -> str | None:
    """None when `folder` is a complete checkpoint (weights + a readable trainer_state.json), else what is missing."""
    folder = Path(folder)
    if not any((folder / name).is_file() and (folder / name).stat().st_size > 0 for name in WEIGHT_FILES):
        return "no model or adapter weights"
    if _read_state(folder) is None:
        return f"no readable {STATE_FILE}"
    return None


def checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint-N folder in `output_dir`, newest first."""
    found = []
    for entry in Path(output_dir).iterdir() if Path(output_dir).is_dir() else []:
        match = _CHECKPOINT.match(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return sorted(found, reverse=True)


def latest_complete_checkpoint(output_dir: Path, remove_broken: bool = False) -> Path:
    """The newest complete checkpoint in `output_dir`; newer incomplete ones are reported (and
    removed with `remove_broken`, so that the resumed run rewrites them from scratch)."""
    skipped = []
    for _, folder in checkpoints(output_dir):
        reason = incomplete_reason(folder)
        if reason is None:
            return folder
        skipped.append(f"{folder.name} ({reason})")
        logger.warning("skipping %s: %s (a save that was interrupted)", folder, reason)
        if remove_broken:
            shutil.rmtree(folder)
    raise ResumeError(f"--resume-from-checkpoint latest: no complete checkpoint in {output_dir}"
                      + (f" (incomplete: {', '.join(skipped)})" if skipped else "")
                      + "; drop --resume-from-checkpoint to start over")


def latest_or_none(output_dir: Path, remove_broken: bool = False) -> Path | None:
    """`latest_complete_checkpoint`, or None (with a warning saying the run starts from step 0)
    when `output_dir` holds no complete checkpoint (a run killed before its first save)."""
    try:
        return latest_complete_checkpoint(output_dir, remove_broken=remove_broken)
    except ResumeError as err:
        logger.warning("%s", str(err).replace("; drop --resume-from-checkpoint to start over", "")
                       + ": starting from step 0")
        return None


def reset_metrics(metrics_path: Path) -> None:
    """Empty the metrics.jsonl an earlier (killed) run left in the output folder: a run that starts
    from step 0 logs its steps afresh, never after the old rows."""
    metrics_path = Path(metrics_path)
    if metrics_path.is_file() and metrics_path.stat().st_size:
        logger.warning("%s: rows of an earlier run in this folder removed (this run starts from step 0)", metrics_path)
        write_text_atomic(metrics_path, "")


def checked_checkpoint(path: Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise ResumeError(f"--resume-from-checkpoint {path}: no such checkpoint folder")
    reason = incomplete_reason(path)
    if reason is not None:
        raise ResumeError(f"--resume-from-checkpoint {path}: incomplete checkpoint ({reason}); "
                          "pass an older one or 'latest'")
    return path


def loss_total(checkpoint: Path) -> float:
    """Sum of the per-step training losses up to `checkpoint`: from its loss_total.json, else
    estimated from the logged losses in trainer_state.json (each logged mean × its steps)."""
    checkpoint = Path(checkpoint)
    try:
        return float(json.loads((checkpoint / LOSS_FILE).read_text(encoding="utf-8"))["loss_total"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        pass
    state = _read_state(checkpoint) or {}
    step, previous, total = int(state.get("global_step", 0)), 0, 0.0
    for row in state.get("log_history", []):
        if "loss" in row and row.get("step", 0) <= step:
            total += row["loss"] * (row["step"] - previous)
            previous = row["step"]
    # steps after the last logged loss: assume the logged mean (the best estimate there is)
    return total * step / previous if previous else 0.0


def write_loss_total(checkpoint: Path, global_step: int, total: float) -> None:
    Path(checkpoint).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(checkpoint) / LOSS_FILE, {"global_step": global_step, "loss_total": total})


def trim_metrics(metrics_path: Path, checkpoint: Path) -> None:
    """Cut metrics.jsonl back to the checkpoint's step (rows after it are redone by the resumed
    run); a run resumed into a new folder starts from the checkpoint's logged history."""
    metrics_path, state = Path(metrics_path), _read_state(Path(checkpoint)) or {}
    step = int(state.get("global_step", 0))
    if metrics_path.is_file():
        lines = [line for line in metrics_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        kept = []
        for line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by the kill
                continue
            if row.get("step", 0) <= step and "train_runtime" not in row:
                kept.append(line)
        dropped = len(lines) - len(kept)
        if dropped:
            logger.info("metrics.jsonl: dropped %d row(s) after step %d, redone by the resumed run", dropped, step)
    else:
        kept = [json.dumps({"step": row.get("step"), **row}) for row in state.get("log_history", [])]
    write_text_atomic(metrics_path, "".join(line + "\n" for line in kept))
