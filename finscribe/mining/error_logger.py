"""The hard-sample log: an append-only, crash-safe record of every sample the model got wrong.

Layout of an error folder (default `data/hard_samples/`):

    errors.jsonl          one JSON object per line, one line per logged error (never rewritten
                          in place; `compact_error_log` replaces it atomically)
    images/<sha256>.png   the input crop (or page), content-addressed: the same image is stored once
    crops/<sha16>__<region>.png   region crops of logged pages, cut by the replay (a cache)
    .errors.lock          the lock file writers serialise on

Written by `finscribe mine` (`finscribe.mining.mine`); read back by `read_error_log` and turned
into training records by `finscribe.mining.replay_dataset.build_hard_sample_dataset`.

Concurrency and crashes: a writer takes an exclusive `fcntl.flock` on the lock file, then appends
its whole line with ONE `os.write` on an `O_APPEND` descriptor and `fsync`s it, so lines from
several processes never interleave. If an earlier writer died mid-line (a torn line without its
newline), the next writer starts on a fresh line: the torn fragment stays isolated and the
reader reports it by line number instead of losing the record after it.

Dedupe: the key of a sample is `(image sha256, region)`. Re-logging it appends another line with
the same key (`count: 1`); `read_error_log` collapses lines by key, keeping the latest line's
content (gt, pred, error type, model) and summing the counts. The history of error types and
models stays visible in `error_types` / `models`. `compact_error_log` folds the history into one
line per key when the file has grown.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from finscribe.data.formatters import PAGE, REGION_PROMPTS
from finscribe.data.schema import REGIONS, document_currency, label_problems, region_problems
from finscribe.errors import FinScribeError
from finscribe.fileio import atomic_file, write_bytes_atomic
from finscribe.mining.error_classifier import ErrorType

LOG_NAME = "errors.jsonl"
LOCK_NAME = ".errors.lock"
IMAGES_DIR = "images"
CROPS_DIR = "crops"  # region crops of logged pages, cut by the replay
DEFAULT_ERROR_DIR = Path("data/hard_samples")


class ErrorLogError(FinScribeError, ValueError):
    """An error folder that cannot be read or written; the message names the path and the fix."""


@dataclass(frozen=True)
class LogProblem:
    """One bad line of errors.jsonl (1-based `line`), or a record whose image is missing."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"{LOG_NAME} line {self.line}: {self.message}"


@dataclass
class ErrorLog:
    """The collapsed records of an error folder plus every problem found while reading it."""

    error_dir: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[LogProblem] = field(default_factory=list)
    lines: int = 0  # JSON lines read (including the corrupt ones)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def record_key(image_sha256: str, region: str) -> str:
    """The dedupe key / record id of a logged sample."""
    return f"{image_sha256[:16]}:{region}"


@contextlib.contextmanager
def _locked(error_dir: Path) -> Iterator[None]:
    fd = os.open(error_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _store_image(image_path: Path, error_dir: Path) -> tuple[str, str]:
    """Copy the image into images/<sha256><ext> unless it is there; → (relative path, sha256)."""
    image_path = Path(image_path)
    if not image_path.is_file():
        raise ErrorLogError(f"{image_path}: image not found; log_error needs the crop the model saw")
    sha = file_sha256(image_path)
    ext = image_path.suffix.lower() or ".png"
    relative = f"{IMAGES_DIR}/{sha}{ext}"
    target = error_dir / relative
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        # A unique temp name per writer, then an atomic rename: two processes storing the same
        # crop both succeed and the file is never seen half-copied.
        with atomic_file(target, fsync=True) as tmp:
            shutil.copyfile(image_path, tmp)
    return relative, sha


def _append_line(error_dir: Path, payload: bytes) -> None:
    """Append one line under the lock: a single write on O_APPEND + fsync."""
    with _locked(error_dir):
        fd = os.open(error_dir / LOG_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size:
                with open(error_dir / LOG_NAME, "rb") as reader:
                    reader.seek(size - 1)
                    if reader.read(1) != b"\n":
                        payload = b"\n" + payload  # isolate a torn line left by a crashed writer
            written = os.write(fd, payload)
            if written != len(payload):
                raise ErrorLogError(f"{error_dir / LOG_NAME}: short write ({written}/{len(payload)} bytes); disk full?")
            os.fsync(fd)
        finally:
            os.close(fd)


def _is_document(gt: dict[str, Any]) -> bool:
    """A document-shaped label (`{"totals_section": {...}, ...}`) rather than one region's fields:
    its keys are region names (no region has a field named after a region)."""
    return bool(gt) and all(key in REGIONS for key in gt)


def usable_ground_truth(gt: Any, region: str, source: str = "gt") -> dict[str, Any]:
    """The ground truth `log_error` stores for `region`, or an `ErrorLogError` listing why the
    replay (`replay_dataset.hard_sample_records`) could not train on it: a full label for region
    "page"; for a region, its fields, or its slice of a document-shaped label."""
    if not isinstance(gt, dict):
        raise ErrorLogError(f"{source}: gt must be the ground truth as a dict, got {type(gt).__name__}")
    if region == PAGE:
        problems, fields = label_problems(gt, source=source), gt
    elif _is_document(gt):
        if region not in gt:
            raise ErrorLogError(f"{source}: the document label has no {region!r} region (it has {list(gt)}); "
                                f"log the page with region='page', or give the {region} fields")
        fields = gt[region]
        problems = region_problems(region, fields, source=source, currency=document_currency(gt))
    else:
        problems, fields = region_problems(region, gt, source=source), gt
    if problems:
        raise ErrorLogError("ground truth that no replay could train on: " + "; ".join(problems))
    return fields


def _page_boxes(boxes: Any, image_path: Path) -> dict[str, list[int]]:
    """`boxes` as {region: [x0, y0, x1, y1]} ints inside the page, or an `ErrorLogError` naming the bad one."""
    if not isinstance(boxes, dict):
        raise ErrorLogError(f"boxes must be {{region: [x0, y0, x1, y1]}}, got {type(boxes).__name__}")
    try:
        with Image.open(image_path) as page:  # the header only
            width, height = page.size
    except (OSError, UnidentifiedImageError) as err:
        raise ErrorLogError(f"{image_path}: cannot read the page image ({err})") from None
    out = {}
    for region, box in boxes.items():
        if region not in REGIONS:
            raise ErrorLogError(f"boxes: unknown region {region!r}; expected some of {list(REGIONS)}")
        if (not isinstance(box, (list, tuple)) or len(box) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)):
            raise ErrorLogError(f"boxes[{region!r}]: expected [x0, y0, x1, y1] page pixels, got {box!r}")
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise ErrorLogError(f"boxes[{region!r}] {list(box)} is empty or outside the {width}x{height} page {image_path}")
        out[region] = [x0, y0, x1, y1]
    return out


def log_error(
    image_path: str | Path,
    gt: dict[str, Any],
    pred: dict[str, Any] | None,
    error_type: ErrorType | str,
    error_dir: str | Path = DEFAULT_ERROR_DIR,
    region: str = "totals_section",
    model: str | None = None,
    raw_text: str | None = None,
    *,
    errors: list[dict[str, Any]] | None = None,
    source_id: str | None = None,
    layout: str | None = None,
    boxes: dict[str, Any] | None = None,
) -> str:
    """Store the image and append one error record; return the record id (`sha16:region`).

    `gt` is the ground truth: for a region, its fields, or a document-shaped label
    (`{"totals_section": {...}, ...}`) of which the region's slice is stored; for region "page"
    (the image is a whole page), the full document label. It is checked at once with the rules
    the replay applies (`usable_ground_truth`): what is logged can be trained on. `boxes` (page
    records only) are the page's region boxes `{region: [x0, y0, x1, y1]}` in page pixels, as the
    manifest and the detector give them: the replay crops each region there (else it detects).
    `pred` is the parsed prediction (None when it was not JSON), `raw_text` the model's text,
    `errors` the `FieldError.to_dict()` list from `find_errors`. Usage (what `finscribe mine` does):

        error_type = classify_error(pred, gt, raw_text=raw)
        if error_type != "OTHER":
            log_error(crop_path, gt, pred, error_type, "data/hard_samples", region="totals_section")
        log_error(page_path, label, document, error_type, region="page", boxes=boxes)  # a whole page
    """
    try:
        error_type = ErrorType(error_type)
    except ValueError:
        raise ErrorLogError(f"unknown error type {error_type!r}; expected one of {[e.value for e in ErrorType]}") from None
    if error_type is ErrorType.OTHER:
        raise ErrorLogError("error type OTHER means the prediction is correct: there is nothing to log")
    if region not in REGION_PROMPTS:
        raise ErrorLogError(f"unknown region {region!r}; expected one of {list(REGION_PROMPTS)}")
    gt = usable_ground_truth(gt, region, source=f"{image_path}")
    if boxes is not None and region != PAGE:
        raise ErrorLogError(f"boxes= belongs to a page (region='page'); a {region} record's image is its crop already")
    if not Path(image_path).is_file():
        raise ErrorLogError(f"{image_path}: image not found; log_error needs the crop the model saw")
    page_boxes = _page_boxes(boxes, Path(image_path)) if boxes is not None else None
    error_dir = Path(error_dir)
    error_dir.mkdir(parents=True, exist_ok=True)
    relative, sha = _store_image(Path(image_path), error_dir)
    key = record_key(sha, region)
    record = {
        "id": key,
        "image": relative,
        "image_sha256": sha,
        "source_image": str(image_path),
        "source_id": source_id,
        "layout": layout,
        "region": region,
        "prompt": REGION_PROMPTS[region],
        "model": model,
        "error_type": error_type.value,
        "errors": errors or [],
        "gt": gt,
        "pred": pred,
        "raw_text": raw_text,
        **({"boxes": page_boxes} if page_boxes is not None else {}),
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
        "count": 1,
    }
    try:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    except TypeError as err:
        raise ErrorLogError(f"record for {image_path} is not JSON-serialisable ({err}); pass money as strings") from None
    _append_line(error_dir, (line + "\n").encode("utf-8"))
    return key


_REQUIRED = ("id", "image", "image_sha256", "region", "error_type", "gt", "count")


def _collapse(into: dict[str, Any] | None, record: dict[str, Any]) -> dict[str, Any]:
    if into is None:
        merged = dict(record)
        merged["first_time"] = record.get("first_time", record.get("time"))
        merged["error_types"] = sorted(set(record.get("error_types", [record["error_type"]])))
        merged["models"] = sorted({m for m in record.get("models", [record.get("model")]) if m})
        return merged
    merged = dict(record)  # the latest line wins for the content
    merged["count"] = into["count"] + record["count"]
    merged["first_time"] = into["first_time"]
    merged["error_types"] = sorted(set(into["error_types"]) | set(record.get("error_types", [record["error_type"]])))
    merged["models"] = sorted(set(into["models"]) | {m for m in record.get("models", [record.get("model")]) if m})
    return merged


def _parse_log(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, int], list[LogProblem], int]:
    """Collapse the lines of errors.jsonl by key → (records by key, last line of each key, problems, lines)."""
    by_key: dict[str, dict[str, Any]] = {}
    line_of: dict[str, int] = {}
    problems: list[LogProblem] = []
    number = 0
    if not path.exists():
        return by_key, line_of, problems, number
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                problems.append(LogProblem(number, f"not valid JSON ({err}); a torn or corrupt line, skipped"))
                continue
            missing = [k for k in _REQUIRED if not isinstance(record, dict) or k not in record]
            if missing:
                problems.append(LogProblem(number, f"record lacks {missing}; skipped"))
                continue
            by_key[record["id"]] = _collapse(by_key.get(record["id"]), record)
            line_of[record["id"]] = number
    return by_key, line_of, problems, number


def load_error_log(error_dir: str | Path) -> ErrorLog:
    """Read errors.jsonl: collapse by key, keep the good records, list every problem found."""
    error_dir = Path(error_dir)
    if not error_dir.is_dir():
        raise ErrorLogError(f"{error_dir}: error folder not found; run `finscribe mine --output-dir {error_dir}` first")
    by_key, line_of, problems, lines = _parse_log(error_dir / LOG_NAME)
    log = ErrorLog(error_dir=error_dir, problems=problems, lines=lines)
    for key, record in by_key.items():
        image = error_dir / record["image"]
        if not image.is_file():
            log.problems.append(LogProblem(line_of[key], f"image {image} of record {key} is missing; record skipped"))
            continue
        record["image_path"] = str(image.resolve())
        log.records.append(record)
    log.problems.sort(key=lambda p: p.line)
    return log


def read_error_log(error_dir: str | Path, *, strict: bool = False) -> list[dict[str, Any]]:
    """The collapsed records of `error_dir` (one per image+region, `count` = times logged).

    Each problem (corrupt line, missing image) is reported with its line number as a warning,
    and the good records are kept; `strict=True` raises `ErrorLogError` listing them instead.
    Each record gains `image_path` (absolute), `first_time`, `error_types` and `models`.
    """
    log = load_error_log(error_dir)
    if log.problems:
        report = f"{Path(error_dir) / LOG_NAME}: {len(log.problems)} problem(s):\n" + "\n".join(
            f"  {p}" for p in log.problems
        )
        if strict:
            raise ErrorLogError(report)
        warnings.warn(report, stacklevel=2)
    return log.records


def compact_error_log(error_dir: str | Path) -> list[LogProblem]:
    """Rewrite errors.jsonl as one line per key (counts summed), atomically, under the lock.

    Corrupt lines cannot be kept: they are dropped and returned (with their old line numbers)
    so the caller can show them. Records whose image is missing are kept in the file.
    """
    error_dir = Path(error_dir)
    if not (error_dir / LOG_NAME).exists():
        raise ErrorLogError(f"{error_dir / LOG_NAME}: no error log to compact")
    with _locked(error_dir):
        by_key, _, problems, _ = _parse_log(error_dir / LOG_NAME)
        lines = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n" for record in by_key.values())
        write_bytes_atomic(error_dir / LOG_NAME, "".join(lines).encode("utf-8"), fsync=True)
    return problems
