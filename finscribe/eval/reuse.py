"""Reuse a `finscribe evaluate` run's answers instead of generating them again.

Greedy (or beam) decoding of the same model on the same pixels gives the same answers, so the
quickstart reads each test crop once per decoding:

- `finscribe compare --model-predictions DIR` (`reused_predictions`): the fine-tuned side of a
  comparison is the evaluate pass in DIR, used only when it is provably the same pass: its
  config.json names the same generation settings and record selection, it was not a blank-image
  or page run, and its predictions.jsonl holds exactly the selected records, in order.
- `finscribe evaluate --pages --reads-from DIR` (`earlier_reads`, `with_earlier_reads`): a page's
  region whose crop is, pixel for pixel after `prompting.load_image` (what the model is given),
  one of DIR's crops of the same region takes that crop's answer instead of being read again;
  DIR must have the same generation settings. At the true boxes a generated page's crops are the
  dataset's crops, so the oracle pass costs no reading; the others are read as usual.

Anything else is an error that names the mismatch; a report never silently mixes two models.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from finscribe.config import config_to_dict
from finscribe.data.formatters import prompt_for
from finscribe.data.selection import RecordSelection, load_selection
from finscribe.errors import ConfigError, FinScribeError
from finscribe.generation_args import GenerationArgs
from finscribe.inference import Prediction
from finscribe.prompting import load_image


def _read_json(path: Path, option: str = "--model-predictions") -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{option}: {path} not found; pass the --output-dir of a finished "
                          f"`finscribe evaluate` run") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{option}: {path} is not valid JSON ({err}); re-run `finscribe evaluate`") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{option}: {path} must hold a JSON object; re-run `finscribe evaluate`")
    return data


def _crop_run_config(folder: Path, generation: GenerationArgs, option: str) -> dict[str, Any]:
    """config.json of a plain `finscribe evaluate` on crops in `folder` with `generation`'s settings."""
    config = _read_json(folder / "config.json", option)
    if config.get("stage") != "EvaluateConfig":
        raise ConfigError(f"{option}: {folder} is not a `finscribe evaluate` output folder "
                          f"(its config.json has stage {config.get('stage')!r})")
    if config.get("blank_images") or config.get("pages"):
        raise ConfigError(f"{option}: {folder} is a blank-image or whole-page run; pass the folder of a "
                          f"plain `finscribe evaluate` on crops")
    saved = config.get("generation")
    problem = _mismatch(saved if isinstance(saved, dict) else {}, config_to_dict(generation), "generation")
    if problem:
        raise ConfigError(f"{option}: {folder} is another pass ({problem}); evaluate with the same "
                          f"options or leave {option} out")
    return config


def _mismatch(saved: dict[str, Any], wanted: dict[str, Any], group: str) -> str | None:
    for key in sorted(set(saved) | set(wanted)):
        if saved.get(key) != wanted.get(key):
            return f"{group}.{key} is {saved.get(key)!r} there and {wanted.get(key)!r} here"
    return None


def _rows(path: Path, option: str = "--model-predictions") -> list[dict[str, Any]]:
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"{option}: {path} not found; the evaluate run did not finish, re-run it") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{option}: {path} line {number} is not JSON ({err}); re-run `finscribe evaluate`") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{option}: {path} line {number} is not a JSON object; re-run `finscribe evaluate`")
        rows.append(row)
    return rows


def _identity(record: dict[str, Any]) -> tuple[Any, Any, str]:
    return record.get("source_id"), record.get("region"), str(record.get("image"))


def reused_predictions(folder: Path, generation: GenerationArgs, selection: RecordSelection,
                       records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], float]:
    """(scored rows, prediction wall seconds) of the evaluate run in `folder`, checked to be the
    pass that `generation` would make on `records` (selected by `selection`)."""
    folder = Path(folder)
    config = _crop_run_config(folder, generation, "--model-predictions")
    saved = config.get("records")
    problem = _mismatch(saved if isinstance(saved, dict) else {}, config_to_dict(selection), "records")
    if problem:
        raise ConfigError(f"--model-predictions: {folder} is another pass ({problem}); evaluate with the same "
                          f"options or leave --model-predictions out")
    rows = _rows(folder / "predictions.jsonl")
    if [_identity(r) for r in rows] != [_identity(r) for r in records]:
        raise ConfigError(f"--model-predictions: {folder / 'predictions.jsonl'} holds {len(rows)} rows that are not "
                          f"the {len(records)} selected records in order (was the data rebuilt?); re-run `finscribe evaluate`")
    report = _read_json(folder / "report.json")
    return rows, float(report.get("prediction_seconds") or 0.0)


def image_key(image: Any, region: str) -> str:
    """The identity of one read: the region (its prompt) and the exact pixels the model is given."""
    pixels = load_image(image)
    digest = hashlib.sha256(f"{region}|{pixels.mode}|{pixels.size}|".encode())
    digest.update(pixels.tobytes())
    return digest.hexdigest()


ANSWER_KEYS = ("parsed", "raw_text", "error", "repetition", "prompt_tokens", "new_tokens", "seconds")


def earlier_reads(folder: Path, generation: GenerationArgs) -> dict[str, Prediction]:
    """{image_key: the answer} of every crop of the evaluate run in `folder` (`--reads-from`),
    checked to have `generation`'s settings. Only answers to the region's own prompt count: the
    run's records are read again for their prompts (a replay set's "OCR:" records share regions)."""
    folder = Path(folder)
    config = _crop_run_config(folder, generation, "--reads-from")
    path = folder / "predictions.jsonl"
    rows = _rows(path, "--reads-from")
    try:
        saved = config["records"]
        selection = RecordSelection(data=Path(saved["data"]), split=saved["split"], regions=tuple(saved["regions"]),
                                    limit=saved["limit"])
        records = load_selection(selection)
    except (KeyError, TypeError) as err:
        raise ConfigError(f"--reads-from: {folder / 'config.json'} has no usable records group ({err!r}); "
                          f"re-run `finscribe evaluate`") from None
    except FinScribeError as err:
        raise ConfigError(f"--reads-from: the records of {folder} cannot be read again: {err}") from None
    if [_identity(r) for r in rows] != [_identity(r) for r in records]:
        raise ConfigError(f"--reads-from: {path} holds {len(rows)} rows that are not the {len(records)} records of "
                          f"{selection.data} in order (was the data rebuilt?); re-run `finscribe evaluate`")
    reads: dict[str, Prediction] = {}
    for number, (row, record) in enumerate(zip(rows, records), 1):
        if (record.get("prompt") or prompt_for(record["region"])) != prompt_for(record["region"]):
            continue  # answered to another prompt (e.g. "OCR:"): not a read of this region
        missing = [k for k in ANSWER_KEYS if k not in row]
        if missing:
            raise ConfigError(f"--reads-from: {path} row {number} lacks {', '.join(missing)}; re-run `finscribe evaluate`")
        try:
            key = image_key(row["image"], row["region"])
        except FinScribeError as err:  # the crop was moved or deleted since
            raise ConfigError(f"--reads-from: {path} row {number}: {err}") from None
        reads.setdefault(key, Prediction(**{k: row[k] for k in ANSWER_KEYS}, constrained=generation.constrained,
                                         beam=int(row.get("beam") or 0), beams=generation.beams))
    return reads


def with_earlier_reads(predict: Callable[[list[dict[str, Any]]], list[Prediction]], reads: dict[str, Prediction],
                       reused: list[int]) -> Callable[[list[dict[str, Any]]], list[Prediction]]:
    """`predict` (records {image, region} → Predictions) that answers a record from `reads` when
    its image_key is there and reads only the others; `reused[0]` counts the answers taken."""
    def read(records: list[dict[str, Any]]) -> list[Prediction]:
        keys = [image_key(r["image"], r["region"]) for r in records]
        unread = [r for r, k in zip(records, keys) if k not in reads]
        fresh = iter(predict(unread) if unread else [])
        reused[0] += len(records) - len(unread)
        return [reads[k] if k in reads else next(fresh) for k in keys]
    return read
