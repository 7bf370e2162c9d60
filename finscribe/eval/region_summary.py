"""Per-region figures of a fine-tuned model, recomputed from its prediction files, with issue 28's
goals beside them: the quickstart's region table.

    from finscribe.eval.region_summary import read_rows, region_table, region_goals
    table = region_table(read_rows("runs/quickstart/eval/predictions.jsonl"),
                         blank_rows=read_rows("runs/quickstart/compare/blank_images_predictions.jsonl"),
                         beams_rows=read_rows("runs/quickstart/eval_beams/predictions.jsonl"))
    region_goals(table)

Per region: field accuracy greedy, on blank images of the same sizes (what the model writes from
its priors alone) and the gap between them (what it reads), with validated beams, and every
field's accuracy. The line-item table adds TEDS, structure-only TEDS and row-level exact match,
the last also by the row's place in the table (rows 1-4, 5-8, ...).
Fields are per region: `address` of the vendor and of the client are two different fields.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from finscribe.eval.scoring import metrics, per_field_accuracy, row_position_accuracy

TABLE_METRICS = ("teds", "teds_structure", "row_exact_match")
AMOUNTS = ("subtotal", "discount", "tax_amount", "total")


def read_rows(path: str | Path | None) -> list[dict[str, Any]]:
    """The scored rows of a predictions file (`finscribe evaluate`/`compare` write them); [] for None."""
    if path is None or not Path(path).is_file():
        return []
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def _by_region(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["region"], []).append(row)
    return groups


def _gap(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def region_table(model_rows: Sequence[dict[str, Any]], blank_rows: Sequence[dict[str, Any]] = (),
                 beams_rows: Sequence[dict[str, Any]] = (), token_cap: int | None = None) -> dict[str, dict[str, Any]]:
    """{region: figures} over the rows of each region (see the module docstring). With `token_cap`
    (the run's max_new_tokens), `stopped_at_cap` counts the greedy answers that used all of it: their
    JSON was most likely cut short, and their scores say more about the cap than the model."""
    blank, beams = _by_region(blank_rows), _by_region(beams_rows)
    table = {}
    for region, rows in sorted(_by_region(model_rows).items()):
        greedy = metrics(rows)
        control = metrics(blank[region])["field_accuracy"] if region in blank else None
        beamed = metrics(beams[region]) if region in beams else {}
        entry: dict[str, Any] = {
            "records": len(rows), "field_accuracy": greedy["field_accuracy"], "blank_images": control,
            "image_gap": _gap(greedy["field_accuracy"], control),
            "validated_beams": beamed.get("field_accuracy"), "exact_match": greedy["exact_match"],
            "json_validity_rate": greedy["json_validity_rate"],
            "stopped_at_cap": sum(row.get("new_tokens", 0) >= token_cap for row in rows) if token_cap else None,
            # within a region's table the region prefix of a field path says nothing
            "per_field": {name.removeprefix(f"{region}."): cell["accuracy"] for name, cell in per_field_accuracy(rows).items()},
        }
        if region == "line_items_table":
            entry.update({key: greedy[key] for key in TABLE_METRICS})
            entry.update({f"{key}_validated_beams": beamed.get(key) for key in TABLE_METRICS})
            entry["rows_by_position"] = {band: cell["accuracy"] for band, cell in row_position_accuracy(rows).items()}
        table[region] = entry
    return table


def _field(table: dict[str, Any], region: str, name: str) -> float | None:
    return table.get(region, {}).get("per_field", {}).get(name)


# Issue 28's goals (held-out test invoices of every layout): (goal, target, figure from the table).
# Document-level goals come from the page evaluation (`pages`: its summary, when that step ran).
def region_goals(table: dict[str, dict[str, Any]], pages: dict[str, Any] | None = None,
                 seconds: float | None = None) -> list[dict[str, Any]]:
    """Every goal whose region ran, with its measured figure (None: not measured in this run)."""
    goals: list[tuple[str, float, float | None]] = []
    if "totals_section" in table:
        goals.append(("totals_section field accuracy", 0.90, table["totals_section"]["field_accuracy"]))
        goals += [(f"totals_section.{name} exact", 0.85, _field(table, "totals_section", name)) for name in AMOUNTS
                  if _field(table, "totals_section", name) is not None]
    if "invoice_meta" in table:
        goals.append(("invoice_meta field accuracy", 0.90, table["invoice_meta"]["field_accuracy"]))
    if "line_items_table" in table:
        goals.append(("line_items_table TEDS", 0.90, table["line_items_table"]["teds"]))
        goals.append(("line-item field accuracy", 0.85, table["line_items_table"]["field_accuracy"]))
    for region in ("vendor_block", "client_info"):
        if region in table:
            goals.append((f"{region} field accuracy", 0.80, table[region]["field_accuracy"]))
    if pages is not None:
        # On page pixels (detected boxes, the product's path), and only when read with validated beams.
        beams = pages.get("validated_beams", 1) > 1
        detected = pages.get("detected", {})
        goals.append(("document field accuracy, validated beams, detected boxes", 0.88,
                      detected.get("field_accuracy") if beams else None))
        goals.append(("pages with every field right, validated beams, detected boxes", 0.50,
                      detected.get("exact_match") if beams else None))
    goals += [(f"{region} blank-image gap (points)", 0.55, entry["image_gap"]) for region, entry in table.items()]
    result = [{"goal": name, "target": target, "measured": value, "at_most": False,
               "met": None if value is None else value >= target} for name, target, value in goals]
    if seconds is not None:  # the one goal where less is better
        minutes = seconds / 60
        result.append({"goal": "quickstart minutes, this run (goal: the default run, idle 2-core machine, set-up included)", "target": 20.0,
                       "measured": minutes, "at_most": True, "met": minutes <= 20.0})
    return result
