"""Per-record scores of a prediction and their summary (the numbers of `finscribe evaluate`).

`score_record(record, prediction)` turns one dataset record + its `inference.Prediction` into a
flat row (the line of predictions.jsonl); `summarise(rows)` turns rows into the report: overall
metrics with bootstrap 95 % intervals over documents, per region, per layout, seen vs held-out
layouts, per field, the error breakdown and the worst examples.

Every metric is a ratio of sums over rows (see `metric_terms`), so that the overall number, a
per-region number and a bootstrap resample are all computed the same way:

  field_accuracy       Σ correct fields / Σ ground-truth fields (micro; DESIGN §7, type-aware)
  numeric_accuracy     the same over money and decimal fields only
  exact_match          share of records with every field right (and valid JSON)
  field_f1, tree_edit_accuracy   Donut's, averaged over records
  teds, teds_structure TEDS of the line-item table (full / structure only), over records with one
  row_exact_match      Σ ground-truth line-item rows read exactly (every field of the row, rows paired
                       by eval/rows.py) / Σ ground-truth rows, over records with a table; the report's
                       `row_positions` splits it by the row's place in the table (rows 1-4, 5-8, ...)
  validation_pass_rate share of records whose parsed output passes `validate_document`
                       (a region's output is checked as `{region: fields}`; invalid JSON fails)
  json_validity_rate   share of outputs that parse as a JSON object
  repetition_rate      share of outputs stopped by the repetition guard
  char_accuracy        1 − normalised Levenshtein(raw_text, target), averaged (moves first in training)

`score_records` scores many records on every CPU core: tree-edit accuracy and TEDS run APTED, which
is pure Python, so once generation is fast (a GPU, vLLM) scoring a pass is the slow part of it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from rapidfuzz.distance import Levenshtein

from finscribe.data.formatters import PAGE
from finscribe.data.schema import document_currency
from finscribe.eval.bootstrap import bootstrap_ci, paired_bootstrap
from finscribe.eval.digits import digit_position_accuracy
from finscribe.eval.field_accuracy import (
    FieldAccuracy,
    aggregate,
    field_accuracy_details,
    field_f1,
    tree_edit_accuracy,
)
from finscribe.eval.rows import align_rows, row_cost
from finscribe.eval.teds import table_teds
from finscribe.eval.validation import validate_document

# (key, label); all are "higher is better" except repetition_rate.
METRICS: tuple[tuple[str, str], ...] = (
    ("field_accuracy", "field accuracy"),
    ("numeric_accuracy", "numeric accuracy"),
    ("exact_match", "exact match (all fields)"),
    ("field_f1", "field F1"),
    ("tree_edit_accuracy", "tree-edit accuracy"),
    ("teds", "TEDS (line items)"),
    ("teds_structure", "TEDS structure-only"),
    ("row_exact_match", "line-item rows exact"),
    ("validation_pass_rate", "validation pass rate"),
    ("json_validity_rate", "JSON validity rate"),
    ("repetition_rate", "repetition rate"),
    ("char_accuracy", "character accuracy"),
)
LOWER_IS_BETTER = frozenset({"repetition_rate"})
SEEN, HELD_OUT = "seen layouts", "held-out layouts"


def _table_pair(region: str, parsed: Any, gt: dict[str, Any]) -> tuple[list[Any], list[Any], Any, dict[str, Any], str | None] | None:
    """(predicted rows, ground-truth rows, predicted table, ground-truth table, currency) of a record
    with a line-item table (a `line_items_table` crop or a whole page), else None."""
    if region == "line_items_table":
        pred_table, gt_table, currency = parsed, gt, None
    elif region == PAGE and isinstance(gt.get("line_items_table"), dict):
        pred_table = parsed.get("line_items_table") if isinstance(parsed, dict) else None
        gt_table, currency = gt["line_items_table"], document_currency(gt)
    else:
        return None
    pred_rows = pred_table.get("line_items") if isinstance(pred_table, dict) else None
    pred_rows = pred_rows if isinstance(pred_rows, list) else []
    return pred_rows, gt_table.get("line_items") or [], pred_table, gt_table, currency


def _exact_rows(pred_rows: list[Any], gt_rows: list[Any], currency: str | None) -> set[int]:
    """Indices of the ground-truth rows read exactly (rows paired by eval/rows.py)."""
    return {j for i, j in align_rows(pred_rows, gt_rows, currency)
            if i is not None and j is not None and row_cost(pred_rows[i], gt_rows[j], currency) == 0}


def _table_scores(region: str, parsed: Any, gt: dict[str, Any]) -> tuple[float | None, float | None, int, int]:
    """(TEDS, structure-only TEDS, rows read exactly, ground-truth rows) when the record has a
    line-item table, else (None, None, 0, 0)."""
    pair = _table_pair(region, parsed, gt)
    if pair is None:
        return None, None, 0, 0
    pred_rows, gt_rows, pred_table, gt_table, currency = pair
    return (table_teds(pred_table, gt_table, currency=currency),
            table_teds(pred_table, gt_table, structure_only=True, currency=currency),
            len(_exact_rows(pred_rows, gt_rows, currency)), len(gt_rows))


ROWS_PER_BAND = 4


def row_position_accuracy(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{"rows 1-4": {correct, total, accuracy}, "rows 5-8": ...}: ground-truth line-item rows read
    exactly, by their place in the table, over the scored rows that have a table (recomputed from
    `parsed` and `target`). A reader that reads the top of a long table and invents the rest shows
    here as a falling curve, where row_exact_match gives one average."""
    counts: dict[int, list[int]] = {}
    for row in rows:
        try:
            gt = json.loads(row["target"])
        except (json.JSONDecodeError, TypeError):
            continue  # score_record already refused such a target
        pair = _table_pair(row["region"], row["parsed"], gt) if isinstance(gt, dict) else None
        if pair is None:
            continue
        pred_rows, gt_rows, _, _, currency = pair
        exact = _exact_rows(pred_rows, gt_rows, currency)
        for j in range(len(gt_rows)):
            tally = counts.setdefault(j // ROWS_PER_BAND, [0, 0])
            tally[0] += j in exact
            tally[1] += 1
    return {f"rows {band * ROWS_PER_BAND + 1}-{(band + 1) * ROWS_PER_BAND}":
            {"correct": correct, "total": total, "accuracy": correct / total}
            for band, (correct, total) in sorted(counts.items())}


def score_record(record: dict[str, Any], prediction: Any) -> dict[str, Any]:
    """One predictions.jsonl row: the record's identity, the model output and every per-record score."""
    region = record["region"]
    try:
        gt = json.loads(record["target"])
    except (json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"record {record.get('source_id')}/{region}: target is not JSON ({err})") from None
    parsed = prediction.parsed
    field_region = None if region == PAGE else region
    fields = field_accuracy_details(parsed, gt, region=field_region)
    numeric = field_accuracy_details(parsed, gt, region=field_region, field_types=("money", "decimal"))
    teds_full, teds_structure, rows_correct, rows_total = _table_scores(region, parsed, gt)
    violations = [] if parsed is None else validate_document(parsed if region == PAGE else {region: parsed})
    return {
        "source_id": record.get("source_id"), "region": region, "layout": record.get("layout"),
        "split": record.get("split"), "image": str(record.get("image")),
        "target": record["target"], "raw_text": prediction.raw_text, "parsed": parsed,
        "error": prediction.error, "repetition": prediction.repetition, "json_valid": parsed is not None,
        "field_accuracy": fields.accuracy, "fields_correct": fields.correct, "fields_total": fields.total,
        "per_field": fields.per_field, "extra_fields": fields.extra_fields,
        "numeric_correct": numeric.correct, "numeric_total": numeric.total,
        "field_f1": field_f1(parsed, gt), "tree_edit_accuracy": tree_edit_accuracy(parsed, gt),
        "teds": teds_full, "teds_structure": teds_structure, "rows_correct": rows_correct, "rows_total": rows_total,
        "validation_passed": parsed is not None and not violations,
        "violations": [f"{v.rule}: {v.field}" for v in violations],
        "char_accuracy": 1.0 - Levenshtein.normalized_distance(prediction.raw_text, record["target"]),
        "prompt_tokens": prediction.prompt_tokens, "new_tokens": prediction.new_tokens,
        "seconds": prediction.seconds, "beam": prediction.beam,
    }


# Below this many records per process, starting a process costs more than it saves.
RECORDS_PER_PROCESS = 24


def _available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _score_chunk(pairs: list[tuple[dict[str, Any], Any]]) -> list[dict[str, Any]]:
    return [score_record(record, prediction) for record, prediction in pairs]


def score_records(records: Sequence[dict[str, Any]], predictions: Sequence[Any], *,
                  processes: int | None = None) -> list[dict[str, Any]]:
    """`score_record` of every (record, prediction) pair, in order; the same rows as scoring them one
    by one. `processes` (default: one per available CPU, at most one per RECORDS_PER_PROCESS
    records) > 1 spreads the pairs over worker processes."""
    # Only what score_record reads crosses to a worker, not a record's decoded image.
    pairs = [({key: record.get(key) for key in ("source_id", "region", "layout", "split", "target")}
              | {"image": str(record.get("image"))}, prediction)
             for record, prediction in zip(records, predictions, strict=True)]
    if processes is None:
        processes = min(_available_cpus(), len(pairs) // RECORDS_PER_PROCESS)
    if processes <= 1 or len(pairs) < 2:
        return _score_chunk(pairs)
    # Strided chunks: records come grouped by region and tables cost the most, so every chunk gets
    # its share of them; several chunks per process even out what is left.
    n_chunks = min(len(pairs), processes * 4)
    chunks = [pairs[k::n_chunks] for k in range(n_chunks)]
    rows: list[dict[str, Any]] = [{}] * len(pairs)
    # fork: workers inherit the imported scorers (and the Prediction class) instead of importing torch.
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with context.Pool(processes) as pool:
        for k, chunk_rows in enumerate(pool.imap(_score_chunk, chunks)):
            rows[k::n_chunks] = chunk_rows
    return rows


def metric_terms(row: dict[str, Any], key: str) -> tuple[float, float]:
    """(numerator, denominator) of metric `key` for one row (see the module docstring)."""
    if key == "field_accuracy":
        return row["fields_correct"], row["fields_total"]
    if key == "numeric_accuracy":
        return row["numeric_correct"], row["numeric_total"]
    if key == "exact_match":
        return float(row["json_valid"] and row["fields_correct"] == row["fields_total"]), 1.0
    if key in ("teds", "teds_structure"):
        return (0.0, 0.0) if row[key] is None else (row[key], 1.0)
    if key == "row_exact_match":  # rows written before this metric existed count for nothing
        return float(row.get("rows_correct", 0)), float(row.get("rows_total", 0))
    if key == "validation_pass_rate":
        return float(row["validation_passed"]), 1.0
    if key == "json_validity_rate":
        return float(row["json_valid"]), 1.0
    if key == "repetition_rate":
        return float(row["repetition"]), 1.0
    return float(row[key]), 1.0  # field_f1, tree_edit_accuracy, char_accuracy


def metric_value(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    """Σ num / Σ den of a metric over rows; None when no row counts (no table for TEDS)."""
    terms = [metric_terms(row, key) for row in rows]
    den = sum(d for _, d in terms)
    return sum(n for n, _ in terms) / den if den else None


def metrics(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"records": len(rows), **{key: metric_value(rows, key) for key, _ in METRICS}}


def paired_deltas(base_rows: Sequence[dict[str, Any]], model_rows: Sequence[dict[str, Any]], *,
                  resamples: int = 1000, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Every metric's model − base on the same rows (row i of both is the same record), with a
    paired bootstrap 95 % interval over documents (source_id): {key: {base, model, delta, ci_low, ci_high}}."""
    groups = [row["source_id"] for row in base_rows]
    out = {}
    for key, _ in METRICS:
        base_terms = [metric_terms(row, key) for row in base_rows]
        model_terms = [metric_terms(row, key) for row in model_rows]
        out[key] = paired_bootstrap([n for n, _ in base_terms], [d for _, d in base_terms],
                                    [n for n, _ in model_terms], [d for _, d in model_terms], groups,
                                    resamples=resamples, seed=seed)
    return out


def per_field_accuracy(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Accuracy of every field path over scored rows (row numbers merged), with its counts."""
    return aggregate(
        FieldAccuracy(row["field_accuracy"], row["fields_correct"], row["fields_total"], row["per_field"],
                      valid=row["json_valid"]) for row in rows
    )["per_field"]


def error_kind(row: dict[str, Any]) -> str:
    """One bucket per row: repetition loop, invalid JSON, some fields wrong, all fields correct."""
    if row["repetition"]:
        return "repetition loop"
    if not row["json_valid"]:
        return "invalid JSON"
    if row["fields_correct"] < row["fields_total"]:
        return "some fields wrong"
    return "all fields correct"


def _grouped(rows: Iterable[dict[str, Any]], key: Any) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(str(key(row)), []).append(row)
    return dict(sorted(groups.items()))


def _excerpt(text: str | None, limit: int = 160) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summarise(rows: Sequence[dict[str, Any]], *, held_out_layouts: Sequence[str] = (), resamples: int = 1000,
              seed: int = 0, worst: int = 10) -> dict[str, Any]:
    """The report dict of `finscribe evaluate` (without run metadata)."""
    groups = [row["source_id"] for row in rows]
    intervals = {}
    for key, _ in METRICS:
        terms = [metric_terms(row, key) for row in rows]
        ci = bootstrap_ci([n for n, _ in terms], [d for _, d in terms], groups, resamples=resamples, seed=seed)
        intervals[key] = {"ci_low": ci["ci_low"], "ci_high": ci["ci_high"]}
    held_out = set(held_out_layouts)
    report: dict[str, Any] = {
        "records": len(rows), "documents": len(set(groups)),
        "overall": metrics(rows), "ci95": intervals, "bootstrap": {"resamples": resamples, "seed": seed,
                                                                   "unit": "document (source_id)"},
        "per_region": {name: metrics(part) for name, part in _grouped(rows, lambda r: r["region"]).items()},
        "per_layout": {name: metrics(part) for name, part in _grouped(rows, lambda r: r["layout"]).items()},
        "held_out_layouts": sorted(held_out),
    }
    if held_out:
        split = _grouped(rows, lambda r: HELD_OUT if r["layout"] in held_out else SEEN)
        report["generalisation"] = {name: metrics(split.get(name, [])) for name in (SEEN, HELD_OUT)}
    report["per_field"] = per_field_accuracy(rows)
    report["digit_positions"] = digit_position_accuracy(rows)
    report["row_positions"] = row_position_accuracy(rows)
    report["error_breakdown"] = dict(Counter(error_kind(row) for row in rows).most_common())
    report["violations"] = dict(Counter(v.split(":")[0] for row in rows for v in row["violations"]).most_common())
    n = max(len(rows), 1)
    report["timing"] = {
        "mean_seconds_per_image": sum(r["seconds"] for r in rows) / n,
        "mean_new_tokens": sum(r["new_tokens"] for r in rows) / n,
        "mean_prompt_tokens": sum(r["prompt_tokens"] for r in rows) / n,
    }
    ranked = sorted(rows, key=lambda r: (r["field_accuracy"], r["char_accuracy"], str(r["source_id"]), r["region"]))
    report["worst_examples"] = [
        {"source_id": r["source_id"], "region": r["region"], "layout": r["layout"],
         "field_accuracy": r["field_accuracy"], "char_accuracy": r["char_accuracy"], "error": r["error"],
         "repetition": r["repetition"], "raw_text": _excerpt(r["raw_text"]), "target": _excerpt(r["target"])}
        for r in ranked[:worst]
    ]
    return report
