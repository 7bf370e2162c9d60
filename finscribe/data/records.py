"""Training records: their keys, their JSONL file, the check of their targets, their field counts.

A record is `{"image", "prompt", "target", "region", "split", "source_id", "layout"}`: the one
key list (`RECORD_KEYS`) that build-dataset, the hard-sample replay and the trainer share. Its
target is the canonical JSON of a region's fields (or a page's document label). Every way
records come in (build-dataset, a hand-written JSONL read by evaluate/train, the hard-sample
log) checks the targets here, with the schema's validator, and lists every offending record.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from finscribe.data.formatters import OCR_PROMPT, PAGE
from finscribe.data.schema import LINE_ITEM_FIELDS, REGION_FIELDS, REGIONS, target_problems
from finscribe.errors import FinScribeError
from finscribe.fileio import atomic_file

RECORD_KEYS = ("image", "prompt", "target", "region", "split", "source_id", "layout")


class DatasetBuildError(FinScribeError, ValueError):
    """Some inputs are invalid; `.problems` lists every one of them."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


def target_fields(record: dict[str, Any]) -> Any:
    """The parsed JSON target of a record (None if it is not JSON)."""
    try:
        return json.loads(record["target"])
    except (TypeError, json.JSONDecodeError):
        return None


def record_problems(records: Iterable[dict[str, Any]], source: str) -> list[str]:
    """One line per problem of every record's target (JSON, region known, canonical values).

    Records with another prompt than a region's JSON prompt (the "OCR:" replay samples) have
    free-text targets and are not checked.
    """
    problems = []
    for n, record in enumerate(records, start=1):
        region = record.get("region")
        if region not in (*REGIONS, PAGE):
            problems.append(f"{source}: record {n}: unknown region {region!r}; expected one of {[*REGIONS, PAGE]}")
            continue
        if record.get("prompt") == OCR_PROMPT:
            continue
        fields = target_fields(record)
        where = f"{source}: record {n} ({record.get('source_id', '?')})"
        if fields is None:
            problems.append(f"{where}: target is not JSON")
            continue
        problems += target_problems(region, fields, source=where)
    return problems


def check_records(records: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """`records` if every target is canonical, else a `DatasetBuildError` listing each offence."""
    problems = record_problems(records, source)
    if problems:
        shown = "\n".join(f"  - {p}" for p in problems)
        raise DatasetBuildError(
            f"{len(problems)} non-canonical or invalid target(s) in {source}; they would be scored or "
            f"trained on wrongly:\n{shown}\nFix them, or convert them with a report: "
            f"`finscribe normalize-annotations --input {source} --output FIXED.jsonl "
            "[--date-format DD/MM/YYYY] [--decimal-comma]`",
            problems,
        )
    return records


def field_coverage(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per region: how many records, how many carried each field, and how many fields they
    carried ({"records": n, "fields": {name: count}, "fields_per_record": {"3": count, ...}}).

    Partial annotations train on exactly their fields; this says how many that was.
    """
    counts: dict[str, Counter] = defaultdict(Counter)
    per_record: dict[str, Counter] = defaultdict(Counter)
    totals: Counter = Counter()
    for record in records:
        region, fields = record["region"], target_fields(record)
        if record.get("prompt") == OCR_PROMPT or not isinstance(fields, dict):
            continue
        names = _field_names(region, fields)
        totals[region] += 1
        counts[region].update(names)
        per_record[region][len(names)] += 1
    return {
        region: {"records": totals[region], "fields": dict(counts[region]),
                 "fields_per_record": {str(k): v for k, v in sorted(per_record[region].items())}}
        for region in sorted(totals)
    }


def _field_names(region: str, fields: dict[str, Any]) -> list[str]:
    if region == PAGE:  # a document label: region.field names
        return [f"{r}.{name}" for r in REGIONS if isinstance(fields.get(r), dict)
                for name in _field_names(r, fields[r])]
    names = [name for name in REGION_FIELDS.get(region, ()) if name in fields and name != "line_items"]
    rows = fields.get("line_items")
    if isinstance(rows, list):  # a table counts the row fields it carried
        names += [f"line_items.{f}" for f in LINE_ITEM_FIELDS if any(isinstance(r, dict) and f in r for r in rows)]
    return names


def write_jsonl_atomic(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """One JSON record per line, written to a temp file and renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def read_jsonl_records(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file (image paths made absolute), each with every `RECORD_KEYS` key;
    a `DatasetBuildError` names the first line that is not such a record."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DatasetBuildError(f"{path}: not found (build it with `finscribe build-dataset`)") from None
    except IsADirectoryError:
        raise DatasetBuildError(f"{path}: is a folder; pass the records .jsonl file inside it") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetBuildError(f"{path}: cannot be read ({err}); pass a UTF-8 JSONL of records") from None
    records = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DatasetBuildError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
        missing = [k for k in RECORD_KEYS if not isinstance(record, dict) or k not in record]
        if missing:
            raise DatasetBuildError(f"{path}:{lineno}: record lacks {missing}; rebuild with `finscribe build-dataset`")
        image = Path(record["image"])
        record["image"] = str(image if image.is_absolute() else (path.parent / image).resolve())
        records.append(record)
    return records
