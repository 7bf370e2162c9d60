"""The error taxonomy: every type from a crafted pair, OTHER for correct predictions, paths."""

from __future__ import annotations

import copy

import pytest

from finscribe.mining.error_classifier import ErrorType, classify_error, find_errors

TOTALS = {"subtotal": "100.00", "discount": "0.00", "tax_rate": "10", "tax_amount": "10.00",
          "total": "110.00", "currency": "USD"}
ROWS = [
    {"description": "Widget", "quantity": "2", "unit_price": "10.00", "line_total": "20.00"},
    {"description": "Gadget", "quantity": "1", "unit_price": "30.00", "line_total": "30.00"},
    {"description": "Cable", "quantity": "5", "unit_price": "4.00", "line_total": "20.00"},
    {"description": "Support", "quantity": "3", "unit_price": "10.00", "line_total": "30.00"},
]
LABEL = {
    "vendor_block": {"vendor_name": "Acme GmbH", "address": "1 Main St, Springfield"},
    "client_info": {"client_name": "Globex", "address": "2 Side Rd, Shelbyville"},
    "invoice_meta": {"invoice_number": "INV-0042", "invoice_date": "2024-03-15",
                     "due_date": "2024-04-14", "currency": "USD"},
    "line_items_table": {"line_items": ROWS},
    "totals_section": TOTALS,
}


def with_(base: dict, **changes) -> dict:
    out = copy.deepcopy(base)
    out.update(changes)
    return out


def test_error_type_is_a_str_enum_in_severity_order():
    assert ErrorType.OTHER == "OTHER"
    assert list(ErrorType)[0] is ErrorType.INVALID_JSON and list(ErrorType)[-1] is ErrorType.OTHER
    assert ErrorType.MISSING_FIELD.severity < ErrorType.TEXT_MISMATCH.severity


def test_correct_prediction_is_other_even_with_other_spellings():
    assert classify_error(copy.deepcopy(TOTALS), TOTALS) == "OTHER"
    spelled = with_(TOTALS, subtotal="100", total="$110.00", currency="usd")
    assert classify_error(spelled, TOTALS) is ErrorType.OTHER
    big = with_(TOTALS, subtotal="1234.50", tax_amount="123.45", total="1357.95")
    assert classify_error(with_(big, subtotal="1,234.50"), big) is ErrorType.OTHER
    assert find_errors(copy.deepcopy(LABEL), LABEL) == []


@pytest.mark.parametrize("pred", [None, '{"subtotal": "100.00", ', ["not", "an", "object"]])
def test_invalid_json(pred):
    assert classify_error(pred, TOTALS) is ErrorType.INVALID_JSON


def test_repetition_wins_over_field_errors_but_not_over_invalid_json():
    assert classify_error(copy.deepcopy(TOTALS), TOTALS, repetition=True) is ErrorType.REPETITION
    assert classify_error(with_(TOTALS, total="1"), TOTALS, repetition=True) is ErrorType.REPETITION
    looped = '{"subtotal": "100.00", "subtotal": "100.00", "subtotal": "100.00'
    errors = find_errors(None, TOTALS, raw_text=looped, repetition=True)
    assert [e.error_type for e in errors] == [ErrorType.INVALID_JSON, ErrorType.REPETITION]
    assert errors[0].pred == looped


def test_missing_and_extra_fields():
    pred = {k: v for k, v in TOTALS.items() if k != "total"}
    assert classify_error(pred, TOTALS) is ErrorType.MISSING_FIELD
    assert classify_error(with_(TOTALS, total=None), TOTALS) is ErrorType.MISSING_FIELD
    errors = find_errors(with_(TOTALS, notes="paid"), TOTALS, region="totals_section")
    assert [(e.path, e.error_type, e.pred) for e in errors] == [("totals_section.notes", ErrorType.EXTRA_FIELD, "paid")]


def test_dropped_row_is_one_missing_row_not_a_cascade():
    pred = {"line_items": [ROWS[0], ROWS[2], ROWS[3]]}
    errors = find_errors(pred, {"line_items": ROWS}, region="line_items_table")
    assert [(e.path, e.error_type) for e in errors] == [
        ("line_items_table.line_items[1]", ErrorType.TABLE_ROW_MISSING)]
    assert errors[0].gt == ROWS[1]


def test_extra_row():
    extra = {"description": "Ghost", "quantity": "1", "unit_price": "1.00", "line_total": "1.00"}
    pred = {"line_items": [ROWS[0], extra, *ROWS[1:]]}
    errors = find_errors(pred, {"line_items": ROWS})
    assert [(e.path, e.error_type) for e in errors] == [("line_items[1]", ErrorType.TABLE_ROW_EXTRA)]
    assert classify_error(pred, {"line_items": ROWS}) is ErrorType.TABLE_ROW_EXTRA


def test_consistent_misread_is_numeric_mismatch():
    # Subtotal, tax and total all read 2x: the prediction still adds up, so no validator can
    # catch it -- the silent kind.
    pred = with_(TOTALS, subtotal="200.00", tax_amount="20.00", total="220.00")
    assert classify_error(pred, TOTALS) is ErrorType.NUMERIC_MISMATCH
    paths = [e.path for e in find_errors(pred, TOTALS)]
    assert paths == ["subtotal", "tax_amount", "total"]


def test_misread_that_breaks_the_arithmetic_is_arithmetic_inconsistent():
    pred = with_(TOTALS, total="111.00")
    errors = find_errors(pred, TOTALS, region="totals_section")
    assert classify_error(pred, TOTALS) is ErrorType.ARITHMETIC_INCONSISTENT
    assert {e.error_type for e in errors} == {ErrorType.ARITHMETIC_INCONSISTENT}
    field_error = next(e for e in errors if e.path == "totals_section.total")
    assert (field_error.pred, field_error.gt) == ("111.00", "110.00")
    assert len(errors) == 2  # the misread field and the rule it breaks
    assert errors[1].message.startswith("total: ")


def test_date_and_text_mismatch():
    meta = LABEL["invoice_meta"]
    assert classify_error(with_(meta, invoice_date="2024-03-16"), meta) is ErrorType.DATE_MISMATCH
    assert classify_error(with_(meta, invoice_date="15.03.2024"), meta) is ErrorType.OTHER
    vendor = LABEL["vendor_block"]
    assert classify_error(with_(vendor, vendor_name="Acne GmbH"), vendor) is ErrorType.TEXT_MISMATCH
    assert classify_error(with_(vendor, vendor_name="  ACME   gmbh "), vendor) is ErrorType.OTHER


def test_full_label_paths_and_precedence():
    pred = copy.deepcopy(LABEL)
    pred["line_items_table"]["line_items"][3]["quantity"] = "8"  # breaks qty x price = line_total
    pred["vendor_block"]["vendor_name"] = "Acme"
    errors = find_errors(pred, LABEL)
    by_path = {e.path: e for e in errors}
    assert by_path["line_items_table.line_items[3].quantity"].error_type is ErrorType.ARITHMETIC_INCONSISTENT
    assert by_path["line_items_table.line_items[3].quantity"].pred == "8"
    assert by_path["vendor_block.vendor_name"].error_type is ErrorType.TEXT_MISMATCH
    assert classify_error(pred, LABEL) is ErrorType.ARITHMETIC_INCONSISTENT
    del pred["totals_section"]["total"]
    assert classify_error(pred, LABEL) is ErrorType.MISSING_FIELD
    assert "totals_section.total" in {e.path for e in find_errors(pred, LABEL)}
    assert [e.error_type.severity for e in find_errors(pred, LABEL)] == sorted(
        e.error_type.severity for e in find_errors(pred, LABEL))


def test_field_error_serialises():
    (error,) = find_errors(with_(TOTALS, currency="EUR"), TOTALS)
    assert error.to_dict() == {"path": "currency", "error_type": "TEXT_MISMATCH", "pred": "EUR",
                               "gt": "USD", "message": "predicted 'EUR', expected 'USD'"}
