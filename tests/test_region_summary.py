"""The quickstart's region table: per-region figures recomputed from scored rows, with issue 28's goals."""

from __future__ import annotations

import json

from finscribe.data.formatters import serialize_target
from finscribe.eval.region_summary import read_rows, region_goals, region_table
from finscribe.eval.scoring import score_record
from finscribe.inference import Prediction


def _row(region, target, parsed, source="a"):
    record = {"source_id": source, "region": region, "target": serialize_target(target), "layout": "classic"}
    return score_record(record, Prediction(parsed=parsed, raw_text=json.dumps(parsed), error=None, repetition=False,
                                           prompt_tokens=1, new_tokens=1, seconds=0.0))


VENDOR = {"vendor_name": "Acme", "address": "1 Main St"}
CLIENT = {"client_name": "Bob", "address": "2 Side Rd"}
ITEMS = {"line_items": [{"description": "Bolt", "quantity": "2", "unit_price": "1.00", "line_total": "2.00"}]}


def test_fields_are_per_region_and_the_gap_is_greedy_minus_blank(tmp_path):
    model = [_row("vendor_block", VENDOR, VENDOR), _row("client_info", CLIENT, {**CLIENT, "address": "wrong"}),
             _row("line_items_table", ITEMS, ITEMS)]
    blank = [_row("vendor_block", VENDOR, {"vendor_name": "Acme"}), _row("client_info", CLIENT, {}),
             _row("line_items_table", ITEMS, {"line_items": []})]
    table = region_table(model, blank_rows=blank)
    assert table["vendor_block"]["per_field"]["address"] == 1.0 and table["client_info"]["per_field"]["address"] == 0.0
    assert table["vendor_block"]["image_gap"] == 0.5 and table["client_info"]["image_gap"] == 0.5
    items = table["line_items_table"]
    assert items["teds"] == 1.0 and items["row_exact_match"] == 1.0 and items["validated_beams"] is None
    assert items["rows_by_position"] == {"rows 1-4": 1.0}
    # read back from a predictions file: the same table
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in model))
    assert region_table(read_rows(path), blank_rows=blank) == table
    assert read_rows(tmp_path / "absent.jsonl") == []

    goals = {g["goal"]: g for g in region_goals(table, seconds=1500)}
    assert goals["vendor_block field accuracy"]["met"] is True and goals["client_info field accuracy"]["met"] is False
    assert goals["line_items_table TEDS"]["target"] == 0.90 and goals["line_items_table TEDS"]["met"] is True
    assert goals["client_info blank-image gap (points)"]["measured"] == 0.5
    minutes = goals["quickstart minutes, this run (goal: the default run, idle 2-core machine, set-up included)"]
    assert minutes["at_most"] and minutes["measured"] == 25 and minutes["met"] is False
    assert "totals_section field accuracy" not in goals  # a region that did not run has no goal
    greedy = {"validated_beams": 1, "detected": {"field_accuracy": 0.95, "exact_match": 0.6}}
    pages = {g["goal"]: g for g in region_goals(table, pages=greedy)}
    # read greedily, the page figures are not the goals' (validated beams): not measured, never called met
    assert pages["document field accuracy, validated beams, detected boxes"]["met"] is None
    pages = {g["goal"]: g for g in region_goals(table, pages={**greedy, "validated_beams": 4})}
    assert pages["document field accuracy, validated beams, detected boxes"]["measured"] == 0.95
    assert pages["pages with every field right, validated beams, detected boxes"]["met"] is True


def test_answers_that_used_the_whole_token_cap_are_counted_per_region():
    """A table whose JSON is longer than max_new_tokens is cut short and scores 0: the summary must
    say so, or the figure reads as the model's."""
    model = [_row("line_items_table", ITEMS, None), _row("line_items_table", ITEMS, ITEMS), _row("vendor_block", VENDOR, VENDOR)]
    model[0]["new_tokens"] = 384
    table = region_table(model, token_cap=384)
    assert table["line_items_table"]["stopped_at_cap"] == 1 and table["vendor_block"]["stopped_at_cap"] == 0
    assert region_table(model)["line_items_table"]["stopped_at_cap"] is None
