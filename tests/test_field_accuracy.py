"""Field accuracy, Donut field F1 and tree-edit accuracy on hand-worked cases."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from finscribe.data.schema import Invoice, LineItem, Party
from finscribe.eval.field_accuracy import (
    aggregate,
    field_accuracy,
    field_accuracy_details,
    field_f1,
    tree_edit_accuracy,
)

TOTALS = {"subtotal": "1234.50", "discount": "0.00", "tax_rate": "19", "tax_amount": "234.56",
          "total": "1469.06", "currency": "EUR"}
ROWS = [
    {"description": "Bolt M8", "quantity": "10", "unit_price": "0.50", "line_total": "5.00"},
    {"description": "Nut M8", "quantity": "4", "unit_price": "0.25", "line_total": "1.00"},
    {"description": "Washer", "quantity": "2", "unit_price": "0.10", "line_total": "0.20"},
]


def _invoice(currency: str = "USD") -> Invoice:
    return Invoice(
        vendor=Party("Acme GmbH", "Main St 1, Berlin", tax_id="DE123"),
        client=Party("Bob Ltd", "High St 2, London"),
        invoice_number="INV-7",
        invoice_date=dt.date(2024, 3, 15),
        due_date=dt.date(2024, 4, 14),
        payment_terms=None,
        currency=currency,
        line_items=(LineItem("Widget", Decimal("3"), Decimal("1200"), Decimal("3600")),),
        subtotal=Decimal("3600"), discount=Decimal("0"), tax_rate=Decimal("10"),
        tax_amount=Decimal("360"), total=Decimal("3960"),
    )


def test_exact_prediction_scores_one_and_non_canonical_numbers_count_as_right():
    pred = dict(TOTALS, subtotal="1,234.50", total="€ 1.469,06", tax_rate="19%")
    result = field_accuracy_details(pred, TOTALS)
    assert (result.accuracy, result.correct, result.total) == (1.0, 6, 6)
    assert result.per_field["total"] is True


def test_missing_and_wrong_fields_are_wrong_and_extra_fields_are_reported_not_counted():
    pred = {"subtotal": "1234.50", "discount": "0.00", "tax_rate": "19", "tax_amount": "234.57",
            "currency": "EUR", "note": "thanks"}  # total missing, tax_amount off by one cent
    result = field_accuracy_details(pred, TOTALS, region="totals_section")
    assert (result.correct, result.total) == (4, 6)
    assert result.accuracy == pytest.approx(4 / 6)
    assert result.per_field["totals_section.total"] is False
    assert result.per_field["totals_section.tax_amount"] is False
    assert result.extra_fields == ["totals_section.note"]


def test_line_items_compared_row_by_row_and_reordering_is_wrong():
    gt = {"line_items": ROWS}
    reordered = {"line_items": [ROWS[1], ROWS[0], ROWS[2]]}
    result = field_accuracy_details(reordered, gt, region="line_items_table")
    # rows 0 and 1 swapped: every field of both differs (all four values differ), row 2 right
    assert (result.correct, result.total) == (4, 12)
    assert result.per_field["line_items_table.line_items[2].unit_price"] is True
    assert result.per_field["line_items_table.line_items[0].description"] is False


def test_missing_row_makes_its_fields_wrong_and_extra_row_is_extra():
    gt = {"line_items": ROWS}
    short = field_accuracy_details({"line_items": ROWS[:2]}, gt)
    assert (short.correct, short.total) == (8, 12)
    assert all(not ok for path, ok in short.per_field.items() if path.startswith("line_items[2]"))
    longer = field_accuracy_details({"line_items": ROWS + [ROWS[0]]}, gt)
    assert longer.accuracy == 1.0
    assert longer.extra_fields == sorted(f"line_items[3].{k}" for k in ROWS[0])


def test_a_dropped_middle_row_costs_only_its_own_fields():
    """Rows are aligned (eval.rows.align_rows, the aligner mining uses): dropping row 1 does not
    shift row 2 onto row 1's fields."""
    result = field_accuracy_details({"line_items": [ROWS[0], ROWS[2]]}, {"line_items": ROWS})
    assert (result.correct, result.total) == (8, 12)
    assert all(not ok for path, ok in result.per_field.items() if path.startswith("line_items[1]"))
    assert all(ok for path, ok in result.per_field.items() if path.startswith(("line_items[0]", "line_items[2]")))


def test_eval_and_mining_pair_rows_the_same_way():
    from finscribe.mining.error_classifier import find_errors

    pred = {"line_items": [ROWS[0], dict(ROWS[2], line_total="1.00")]}
    wrong_fields = {p for p, ok in field_accuracy_details(pred, {"line_items": ROWS}).per_field.items() if not ok}
    errors = {e.path for e in find_errors(pred, {"line_items": ROWS})}
    assert wrong_fields == {f"line_items[1].{k}" for k in ROWS[1]} | {"line_items[2].line_total"}
    assert "line_items[1]" in errors and "line_items[2].line_total" in errors


def test_none_or_non_object_prediction_scores_zero_over_all_gt_fields():
    for pred in (None, [], "not json"):
        result = field_accuracy_details(pred, TOTALS)
        assert (result.accuracy, result.correct, result.total, result.valid) == (0.0, 0, 6, False)
    empty = field_accuracy_details({}, TOTALS)
    assert (empty.accuracy, empty.total, empty.valid) == (0.0, 6, True)


def test_full_label_paths_and_jpy_amounts():
    label = _invoice("JPY").to_label()
    pred = _invoice("JPY").to_label()
    pred["totals_section"] = dict(pred["totals_section"], total="¥3,960", tax_amount="360.4")
    pred["invoice_meta"] = dict(pred["invoice_meta"], invoice_date="15.03.2024")
    del pred["client_info"]
    result = field_accuracy_details(pred, label)
    assert result.per_field["totals_section.total"] is True
    assert result.per_field["totals_section.tax_amount"] is False  # JPY has no minor unit
    assert result.per_field["invoice_meta.invoice_date"] is True
    assert result.per_field["client_info.client_name"] is False
    assert result.per_field["line_items_table.line_items[0].unit_price"] is True
    # vendor 3 (no email, phone) + client 2 + meta 4 (no terms) + one row 4 + totals 6 = 19; 3 wrong
    assert (result.correct, result.total) == (16, 19)


def test_region_annotation_shape_is_accepted():
    annotation = {"region": "totals_section", "fields": TOTALS}
    result = field_accuracy_details(annotation, annotation)
    assert result.accuracy == 1.0
    assert "totals_section.total" in result.per_field


def test_aggregate_micro_per_field_and_per_region():
    a = field_accuracy_details({"line_items": ROWS[:2]}, {"line_items": ROWS}, region="line_items_table")  # 8/12
    b = field_accuracy_details(dict(TOTALS, total="0.00"), TOTALS, region="totals_section")  # 5/6
    c = field_accuracy_details(None, TOTALS, region="totals_section")  # 0/6
    report = aggregate([a, b, c])
    assert report["overall"] == pytest.approx(13 / 24)
    assert report["mean_document_accuracy"] == pytest.approx((8 / 12 + 5 / 6 + 0) / 3)
    assert report["invalid_predictions"] == 1
    assert report["per_region"]["line_items_table"]["accuracy"] == pytest.approx(8 / 12)
    assert report["per_region"]["totals_section"]["accuracy"] == pytest.approx(5 / 12)
    assert report["per_field"]["totals_section.total"] == {"accuracy": 0.0, "correct": 0, "total": 2}
    assert report["per_field"]["line_items_table.line_items[].quantity"]["total"] == 3


def test_field_f1_hand_cases():
    gt = {"a": "x", "b": "y"}
    # tp = 1 (a), fp = 2 (b=z, c=w), fn = 1 (b=y): 1 / (1 + 3/2)
    assert field_f1({"a": "x", "b": "z", "c": "w"}, gt, canonical=False) == pytest.approx(0.4)
    assert field_f1(gt, gt) == 1.0
    assert field_f1(None, gt) == 0.0
    # Donut flattens rows under their key: F1 ignores row order
    assert field_f1({"line_items": ROWS[::-1]}, {"line_items": ROWS}) == 1.0
    # type-aware by default, exact strings with canonical=False
    assert field_f1({"total": "1,234.50"}, {"total": "1234.5"}) == 1.0
    assert field_f1({"total": "1,234.50"}, {"total": "1234.5"}, canonical=False) == 0.0


def test_tree_edit_accuracy_hand_cases():
    gt = {"a": "xy"}  # root -> a -> leaf "xy": TED(empty, gt) = 1 (node a) + 2 (leaf length) = 3
    assert tree_edit_accuracy(gt, gt) == 1.0
    assert tree_edit_accuracy({"a": "xz"}, gt, canonical=False) == pytest.approx(1 - 1 / 3)  # leaf edit 1
    assert tree_edit_accuracy({"b": "xy"}, gt, canonical=False) == pytest.approx(1 - 1 / 3)  # rename a -> b
    assert tree_edit_accuracy({"a": "xy", "b": "q"}, gt, canonical=False) == pytest.approx(1 - 2 / 3)
    assert tree_edit_accuracy({"a": "xy", "b": "a long wrong value"}, gt, canonical=False) == 0.0  # clamped
    assert tree_edit_accuracy(None, gt) == 0.0
    assert tree_edit_accuracy({"total": "1,234.50"}, {"total": "1234.5"}) == 1.0


def test_tree_edit_accuracy_sees_row_order_unlike_f1():
    gt = {"line_items": ROWS}
    assert tree_edit_accuracy({"line_items": ROWS}, gt) == 1.0
    assert 0.0 < tree_edit_accuracy({"line_items": ROWS[::-1]}, gt) < 1.0


def test_field_accuracy_is_the_number_and_details_carry_the_fields():
    """The seed averages `field_accuracy(pred, gt)` directly: it is a float; the detail is elsewhere."""
    pred = dict(TOTALS, total="0.00")
    number = field_accuracy(pred, TOTALS)
    details = field_accuracy_details(pred, TOTALS)
    assert isinstance(number, float) and number == details.accuracy == 5 / 6
    assert details.per_field["total"] is False and details.correct == 5
