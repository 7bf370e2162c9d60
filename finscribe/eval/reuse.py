"""Reuse a `finscribe evaluate` run's predictions in `finscribe compare --model-predictions DIR`.

Greedy (or beam) decoding of the same model on the same records gives the same answers, so the
fine-tuned side of a comparison need not be generated and scored a second time: the quickstart
evaluates the fine-tuned model, then compares it with the base, and saves one full pass over the
test crops this way. The folder is used only when it is provably the same pass: its config.json
names the same generation settings and record selection, it was not a blank-image or page run, and
its predictions.jsonl holds exactly the selected records, in order. Anything else is an error that
names the mismatch; a comparison never silently mixes two models or two record sets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finscribe.config import config_to_dict
from finscribe.data.selection import RecordSelection
from finscribe.errors import ConfigError
from finscribe.generation_args import GenerationArgs


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--model-predictions: {path} not found; pass the --output-dir of a finished "
                          f"`finscribe evaluate` run") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"--model-predictions: {path} is not valid JSON ({err}); re-run `finscribe evaluate`") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--model-predictions: {path} must hold a JSON object; re-run `finscribe evaluate`")
    return data


def _mismatch(saved: dict[str, Any], wanted: dict[str, Any], group: str) -> str | None:
    for key in sorted(set(saved) | set(wanted)):
        if saved.get(key) != wanted.get(key):
            return f"{group}.{key} is {saved.get(key)!r} there and {wanted.get(key)!r} here"
    return None


def _rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"--model-predictions: {path} not found; the evaluate run did not finish, re-run it") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ConfigError(f"--model-predictions: {path} line {number} is not JSON ({err}); re-run `finscribe evaluate`") from None
        if not isinstance(row, dict):
            raise ConfigError(f"--model-predictions: {path} line {number} is not a JSON object; re-run `finscribe evaluate`")
        rows.append(row)
    return rows


def _identity(record: dict[str, Any]) -> tuple[Any, Any, str]:
    return record.get("source_id"), record.get("region"), str(record.get("image"))


def reused_predictions(folder: Path, generation: GenerationArgs, selection: RecordSelection,
                       records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], float]:
    """(scored rows, prediction wall seconds) of the evaluate run in `folder`, checked to be the
    pass that `generation` would make on `records` (selected by `selection`)."""
    folder = Path(folder)
    config = _read_json(folder / "config.json")
    if config.get("stage") != "EvaluateConfig":
        raise ConfigError(f"--model-predictions: {folder} is not a `finscribe evaluate` output folder "
                          f"(its config.json has stage {config.get('stage')!r})")
    if config.get("blank_images") or config.get("pages"):
        raise ConfigError(f"--model-predictions: {folder} is a blank-image or whole-page run; pass the folder of a "
                          f"plain `finscribe evaluate` on the same records")
    for group, wanted in (("generation", config_to_dict(generation)), ("records", config_to_dict(selection))):
        saved = config.get(group)
        problem = _mismatch(saved if isinstance(saved, dict) else {}, wanted, group)
        if problem:
            raise ConfigError(f"--model-predictions: {folder} is another pass ({problem}); evaluate with the same "
                              f"options or leave --model-predictions out")
    rows = _rows(folder / "predictions.jsonl")
    if [_identity(r) for r in rows] != [_identity(r) for r in records]:
        raise ConfigError(f"--model-predictions: {folder / 'predictions.jsonl'} holds {len(rows)} rows that are not "
                          f"the {len(records)} selected records in order (was the data rebuilt?); re-run `finscribe evaluate`")
    report = _read_json(folder / "report.json")
    return rows, float(report.get("prediction_seconds") or 0.0)
