"""validate_document: each rule broken on purpose, and correct documents pass."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict

from hypothesis import given, settings
from hypothesis import strategies as st

from finscribe.eval.validation import Violation, is_valid, validate_document


def _label() -> dict:
    # 0.5 × 10.05 = 5.025 → 5.03 (half up; banker's rounding would give 5.02)
    # subtotal 59.97 + 5.03 = 65.00; tax (65.00 − 4.99) × 19 / 100 = 11.4019 → 11.40
    # total 65.00 − 4.99 + 11.40 = 71.41
    return {
        "vendor_block": {"vendor_name": "Acme", "address": "Main St 1"},
        "client_info": {"client_name": "Bob", "address": "High St 2"},
        "invoice_meta": {"invoice_number": "A-1", "invoice_date": "2024-03-15", "due_date": "2024-04-14",
                         "currency": "USD"},
        "line_items_table": {"line_items": [
            {"description": "Bolt", "quantity": "3", "unit_price": "19.99", "line_total": "59.97"},
            {"description": "Nut", "quantity": "0.5", "unit_price": "10.05", "line_total": "5.03"},
        ]},
        "totals_section": {"subtotal": "65.00", "discount": "4.99", "tax_rate": "19", "tax_amount": "11.40",
                           "total": "71.41", "currency": "USD"},
    }


def _rules(doc: dict) -> set[tuple[str, str]]:
    return {(v.rule, v.field) for v in validate_document(doc)}


def test_correct_label_is_valid():
    assert validate_document(_label()) == []
    assert is_valid(_label())


def test_line_total_rule_uses_round_half_up():
    doc = _label()
    doc["line_items_table"]["line_items"][1]["line_total"] = "5.02"
    doc["totals_section"].update(subtotal="64.99", tax_amount="11.40", total="71.40")  # keep the rest consistent
    assert _rules(doc) == {("line_total", "line_items_table.line_items[1].line_total")}


def test_subtotal_rule():
    doc = _label()
    doc["totals_section"]["subtotal"] = "66.00"
    assert ("subtotal", "totals_section.subtotal") in _rules(doc)


def test_tax_amount_rule():
    doc = _label()
    doc["totals_section"].update(tax_amount="11.41", total="71.42")
    assert _rules(doc) == {("tax_amount", "totals_section.tax_amount")}


def test_total_rule():
    doc = _label()
    doc["totals_section"]["total"] = "71.40"
    [violation] = validate_document(doc)
    assert (violation.rule, violation.field) == ("total", "totals_section.total")
    assert "71.41" in violation.message


def test_due_date_before_invoice_date():
    doc = _label()
    doc["invoice_meta"]["due_date"] = "2024-03-14"
    assert _rules(doc) == {("due_date", "invoice_meta.due_date")}


def test_currency_mismatch_and_unknown_currency():
    doc = _label()
    doc["totals_section"]["currency"] = "EUR"
    assert _rules(doc) == {("currency_mismatch", "totals_section.currency")}
    doc["totals_section"]["currency"] = doc["invoice_meta"]["currency"] = "XYZ"
    assert _rules(doc) == {("unknown_currency", "invoice_meta.currency"),
                           ("unknown_currency", "totals_section.currency")}


def test_discount_above_subtotal():
    doc = {"totals_section": {"subtotal": "10.00", "discount": "12.00", "tax_rate": "0", "tax_amount": "0.00",
                              "total": "-2.00", "currency": "USD"}}
    assert _rules(doc) == {("discount", "totals_section.discount"), ("negative_amount", "totals_section.total")}


def test_negative_amount():
    doc = _label()  # a credit row, arithmetic kept consistent: only the signs are flagged
    doc["line_items_table"]["line_items"][1].update(quantity="-0.5", line_total="-5.03")
    # subtotal 59.97 − 5.03 = 54.94; tax (54.94 − 4.99) × 19 / 100 = 9.4905 → 9.49; total 59.44
    doc["totals_section"].update(subtotal="54.94", tax_amount="9.49", total="59.44")
    assert _rules(doc) == {("negative_amount", "line_items_table.line_items[1].quantity"),
                           ("negative_amount", "line_items_table.line_items[1].line_total")}


def test_unparseable_value_is_a_violation_not_a_crash():
    doc = _label()
    doc["totals_section"]["total"] = "seventy-one"
    doc["invoice_meta"]["invoice_date"] = "soon"
    assert _rules(doc) == {("unparseable", "totals_section.total"), ("unparseable", "invoice_meta.invoice_date")}


def test_missing_required_field_of_a_present_region():
    doc = {"totals_section": {"subtotal": "1.00", "discount": "0.00", "tax_rate": "0", "tax_amount": "0.00",
                              "currency": "USD"}}
    assert _rules(doc) == {("missing_field", "totals_section.total")}
    assert ("missing_field", "totals_section.subtotal") in _rules({"totals_section": {}})


def test_partial_documents_check_only_what_is_present():
    label = _label()
    totals_only = {"totals_section": dict(label["totals_section"], subtotal="99.00")}
    # no line items: the subtotal cannot be checked, but tax_amount and total now fail
    assert {rule for rule, _ in _rules(totals_only)} == {"tax_amount", "total"}
    with_items = {"line_items_table": label["line_items_table"], "totals_section": totals_only["totals_section"]}
    assert {rule for rule, _ in _rules(with_items)} == {"subtotal", "tax_amount", "total"}
    assert validate_document({"region": "totals_section", "fields": label["totals_section"]}) == []
    assert validate_document({"line_items_table": label["line_items_table"]}) == []


def test_non_canonical_predictions_are_still_checked():
    doc = _label()
    doc["totals_section"].update(subtotal="$65.00", tax_rate="19%", total="71,41")
    doc["invoice_meta"]["due_date"] = "14.04.2024"
    assert validate_document(doc) == []
    doc["totals_section"]["total"] = "$71.40"
    assert _rules(doc) == {("total", "totals_section.total")}


def test_jpy_rounds_to_whole_yen_and_missing_currency_to_cents():
    row = {"description": "Tea", "quantity": "1.5", "unit_price": "333", "line_total": "500"}  # 499.5 → 500
    jpy = {"line_items_table": {"line_items": [row]},
           "totals_section": {"subtotal": "500", "discount": "0", "tax_rate": "10", "tax_amount": "50",
                              "total": "550", "currency": "JPY"}}
    assert validate_document(jpy) == []
    no_currency = {"line_items_table": {"line_items": [row]}}
    assert _rules(no_currency) == {("line_total", "line_items_table.line_items[0].line_total")}  # 499.50 expected


def test_violations_are_json_serialisable():
    doc = _label()
    doc["totals_section"]["total"] = "0.00"
    payload = json.dumps([asdict(v) for v in validate_document(doc)])
    assert json.loads(payload)[0]["rule"] == "total"
    assert Violation("total", "totals_section.total", "m") == Violation("total", "totals_section.total", "m")


def test_non_object_document():
    assert [v.rule for v in validate_document(None)] == ["missing_field"]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), items=st.integers(1, 25), locale_index=st.integers(0, 7),
       currency=st.sampled_from([None, "USD", "EUR", "JPY", "GBP", "INR"]))
def test_generated_invoices_are_valid(seed, items, locale_index, currency):
    from finscribe.synthetic.generator import SUPPORTED_LOCALES, generate_invoice

    locale = SUPPORTED_LOCALES[locale_index % len(SUPPORTED_LOCALES)]
    label = generate_invoice(num_items=items, currency=currency, seed=seed, locale=locale).to_label()
    assert validate_document(label) == []
    broken = copy.deepcopy(label)
    broken["totals_section"]["total"] = str(int(float(label["totals_section"]["total"])) + 1)
    assert "total" in {v.rule for v in validate_document(broken)}


def test_passes_validation_checks_a_region_or_a_whole_page():
    from finscribe.eval.validation import passes_validation

    totals = {"subtotal": "100.00", "discount": "0.00", "tax_rate": "10", "tax_amount": "10.00",
              "total": "110.00", "currency": "USD"}
    assert passes_validation("totals_section", totals)
    assert not passes_validation("totals_section", dict(totals, total="170.00"))  # does not add up
    assert not passes_validation("totals_section", {"total": "110.00"})  # fields missing
    # the page prompt answers with the document itself
    assert passes_validation("page", {"totals_section": totals})
    assert not passes_validation("page", {"totals_section": dict(totals, tax_amount="11.00")})
    assert not passes_validation("page", {"total": "110.00"})  # flat keys name no region
