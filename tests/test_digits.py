"""Digit-position accuracy of amounts: aligned at the decimal point, scored on the reference's digits."""

from __future__ import annotations

import json

from finscribe.eval.digits import amount_digit_scores, digit_position_accuracy, digit_table


def _row(parsed, target):
    return {"parsed": parsed, "target": json.dumps(target)}


def test_digits_are_aligned_at_the_decimal_point():
    target = {"subtotal": "1204.50", "total": "0.75", "currency": "USD"}
    scores = amount_digit_scores({"subtotal": "204.59", "total": "$0.75"}, target)
    assert scores == [("subtotal", 3, False), ("subtotal", 2, True), ("subtotal", 1, True), ("subtotal", 0, True),
                      ("subtotal", -1, True), ("subtotal", -2, False), ("total", -1, True), ("total", -2, True)]


def test_a_shorter_spelling_of_the_same_value_is_right_and_a_missing_amount_is_wrong_everywhere():
    target = {"totals_section": {"tax_amount": "12.50", "total": "100.00"}}
    scores = amount_digit_scores({"totals_section": {"tax_amount": "12.5"}}, target)
    assert [right for path, _, right in scores if path.endswith("tax_amount")] == [True] * 4
    assert [right for path, _, right in scores if path.endswith("total")] == [False] * 5
    assert all(not right for _, _, right in amount_digit_scores(None, target))
    unreadable = amount_digit_scores({"totals_section": {"total": "one hundred"}}, target)
    assert [right for path, _, right in unreadable if path.endswith("total")] == [False] * 5


def test_accuracy_per_field_and_position_and_its_table():
    rows = [_row({"total": "19.99"}, {"total": "19.99"}), _row({"total": "18.99"}, {"total": "19.99"}),
            _row({"total": "5.00"}, {"total": "5.00", "line_items": [{"line_total": "5.00"}]})]
    table = digit_position_accuracy(rows)
    assert list(table) == ["total", "all amounts"]  # row amounts are not scored here
    assert table["total"]["10^1"] == {"correct": 2, "total": 2, "accuracy": 1.0}
    assert table["total"]["10^0"] == {"correct": 2, "total": 3, "accuracy": 2 / 3}
    assert list(table["total"]) == ["10^1", "10^0", "10^-1", "10^-2"]
    lines = digit_table(table)
    assert lines[0] == "| field | 10^1 | 10^0 | 10^-1 | 10^-2 |"
    assert lines[2] == "| total | 100 % (2) | 67 % (3) | 100 % (3) | 100 % (3) |"
