"""Row-level exact match of the line-item table: rows paired by the one row aligner, a row counts
only when every field of it is right; summed over ground-truth rows."""

from __future__ import annotations

import json

from finscribe.data.formatters import serialize_target
from finscribe.eval.report_markdown import report_markdown
from finscribe.eval.scoring import metric_value, metrics, row_position_accuracy, score_record, summarise
from finscribe.inference import Prediction

ROWS = [{"description": "Widget", "quantity": "2", "unit_price": "5.00", "line_total": "10.00"},
        {"description": "Gadget", "quantity": "1", "unit_price": "7.50", "line_total": "7.50"},
        {"description": "Bolt", "quantity": "10", "unit_price": "0.25", "line_total": "2.50"}]


def _row(pred_rows, gt_rows=ROWS):
    target = {"line_items": gt_rows}
    record = {"source_id": "s", "region": "line_items_table", "target": serialize_target(target), "layout": "classic"}
    parsed = None if pred_rows is None else {"line_items": pred_rows}
    prediction = Prediction(parsed=parsed, raw_text=json.dumps(parsed), error=None, repetition=False,
                            prompt_tokens=1, new_tokens=1, seconds=0.0)
    return score_record(record, prediction)


def test_a_dropped_row_and_a_misread_row_leave_one_of_three_exact():
    misread = dict(ROWS[2], line_total="2.60")
    row = _row([ROWS[0], misread])  # Gadget dropped, Bolt misread
    assert (row["rows_correct"], row["rows_total"]) == (1, 3)
    assert metric_value([row], "row_exact_match") == 1 / 3


def test_rows_are_summed_over_tables_and_invalid_output_reads_no_row():
    perfect, invalid = _row(ROWS), _row(None)
    assert metric_value([perfect, invalid], "row_exact_match") == 3 / 6
    assert metrics([perfect])["row_exact_match"] == 1.0


def test_regions_without_a_table_do_not_count():
    record = {"source_id": "t", "region": "totals_section", "target": serialize_target({"total": "1.00"}), "layout": "x"}
    prediction = Prediction(parsed={"total": "1.00"}, raw_text='{"total":"1.00"}', error=None, repetition=False,
                            prompt_tokens=1, new_tokens=1, seconds=0.0)
    assert metric_value([score_record(record, prediction)], "row_exact_match") is None


def test_rows_by_position_show_where_a_long_table_stops_being_read():
    """A ten-row table read right for its first five rows, then invented: bands 1-4 and 5-8 and 9-12
    say so, and together they are row_exact_match."""
    table = [dict(ROWS[k % 3], description=f"Item {k}") for k in range(10)]
    invented = [dict(r, quantity="99") for r in table[5:]]
    long_table = _row(table[:5] + invented, gt_rows=table)
    short_table = _row(ROWS)
    totals = _row(None) | {"region": "totals_section"}  # no table: not counted
    bands = row_position_accuracy([long_table, short_table, totals])
    assert list(bands) == ["rows 1-4", "rows 5-8", "rows 9-12"]
    assert [(b["correct"], b["total"]) for b in bands.values()] == [(7, 7), (1, 4), (0, 2)]
    assert sum(b["correct"] for b in bands.values()) / sum(b["total"] for b in bands.values()) == \
        metric_value([long_table, short_table], "row_exact_match")
    report = summarise([long_table, short_table])
    assert report["row_positions"] == row_position_accuracy([long_table, short_table])
    run = {"model": "m", "data": "d", "split": "test", "max_new_tokens": 8, "blank_images": False,
           "constrained": False, "beams": 1, "beam_answers_not_top": 0, "prediction_seconds": 1.0, "field_coverage": {}}
    assert "| 9-12 | 0.000 | 0 / 2 |" in report_markdown(run | report)
