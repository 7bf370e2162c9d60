"""Amount/date parsing and type-aware comparison (finscribe.eval.numeric)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from finscribe.eval.field_accuracy import numeric_accuracy
from finscribe.eval.numeric import parse_amount, parse_date, parse_decimal, values_equal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1234.50", "1234.50"),
        ("1,234.50", "1234.50"),
        ("1.234,50", "1234.50"),
        ("1 234,50", "1234.50"),
        ("1\u00a0234,50", "1234.50"),
        ("1'234.50", "1234.50"),
        ("$1,234.50", "1234.50"),
        ("EUR 1.234,50", "1234.50"),
        ("1.234,50 €", "1234.50"),
        ("¥1,235", "1235"),
        ("1234.5", "1234.5"),
        ("-12.00", "-12.00"),
        ("−12.00", "-12.00"),  # U+2212 minus sign
        ("(12.00)", "-12.00"),  # accounting negative
        ("12.00-", "-12.00"),
        ("-$5.00", "-5.00"),
        ("12,34,567.89", "1234567.89"),  # Indian grouping
        ("1.234.567", "1234567"),
        ("1,234", "1234"),  # a lone comma before three digits groups thousands
        ("7,5", "7.5"),
        ("0,500", "0.500"),  # a leading 0 is never a thousands group
        ("1.234", "1.234"),  # a lone dot is the decimal mark without a locale hint
        (1234.5, "1234.5"),  # a JSON number from a model
        (7, "7"),
    ],
)
def test_parse_amount_reads_printed_forms(text, expected):
    assert parse_amount(text) == Decimal(expected)


@pytest.mark.parametrize("text", ["", "abc", "12.", "1,2,3", "1e3", "NaN", "Infinity", "12 34", "1_234",
                                  "1.2.3,4,5", None, True, [1], {"a": 1}])
def test_parse_amount_rejects_non_numbers(text):
    assert parse_amount(text) is None


def test_locale_hint_turns_a_lone_dot_into_grouping():
    assert parse_amount("1.234", locale="de_DE") == Decimal("1234")
    assert parse_amount("1.234", locale="de_CH") == Decimal("1.234")
    assert parse_amount("1.234", locale="en_US") == Decimal("1.234")


def test_parse_decimal_quantities_and_rates():
    assert parse_decimal("19%") == Decimal("19")
    assert parse_decimal("7,5 %") == Decimal("7.5")  # French typography puts a space before %
    assert parse_decimal("7,5") == Decimal("7.5")
    assert parse_decimal("0.25") == Decimal("0.25")
    assert parse_amount("19%") is None  # amounts are never percentages


@pytest.mark.parametrize(
    ("text", "locale", "expected"),
    [
        ("2024-03-15", None, (2024, 3, 15)),
        ("2024/03/15", None, (2024, 3, 15)),
        ("15.03.2024", None, (2024, 3, 15)),
        ("15.3.24", None, (2024, 3, 15)),
        ("03/15/2024", None, (2024, 3, 15)),  # only the month-first reading is a date
        ("15/03/2024", "en_US", (2024, 3, 15)),  # only the day-first reading is a date
        ("04/03/2024", None, (2024, 3, 4)),  # ambiguous: day-first by default
        ("04/03/2024", "en_GB", (2024, 3, 4)),
        ("04/03/2024", "en_US", (2024, 4, 3)),  # ambiguous: month-first for en_US
        ("15 March 2024", None, (2024, 3, 15)),
        ("March 15, 2024", None, (2024, 3, 15)),
        ("Mar 5th, 2024", None, (2024, 3, 5)),
        ("15-Mar-2024", None, (2024, 3, 15)),
        ("15. März 2024", None, (2024, 3, 15)),
        ("5 de marzo de 2024", None, (2024, 3, 5)),
        ("1 août 2024", None, (2024, 8, 1)),
    ],
)
def test_parse_date_forms(text, locale, expected):
    assert parse_date(text, locale) == dt.date(*expected)


@pytest.mark.parametrize("text", ["2024-02-30", "31/02/2024", "15 Foo 2024", "yesterday", "", None, 20240315])
def test_parse_date_rejects_non_dates(text):
    assert parse_date(text) is None


def test_values_equal_money_is_exact_to_the_minor_unit():
    assert values_equal("total", "1,234.50", "1234.5")
    assert values_equal("total", "$1,234.50", "1234.50", currency="USD")
    assert not values_equal("total", "1234.51", "1234.50")
    assert not values_equal("total", "1234.505", "1234.50")
    assert not values_equal("total", "-1234.50", "1234.50")
    assert not values_equal("total", "n/a", "1234.50")
    assert not values_equal("total", None, "1234.50")


def test_values_equal_jpy_has_no_minor_unit():
    assert values_equal("unit_price", "¥1,235", "1235", currency="JPY")
    assert values_equal("unit_price", "1235.00", "1235", currency="JPY")
    assert not values_equal("unit_price", "1235.4", "1235", currency="JPY")
    assert not values_equal("unit_price", "1234", "1235", currency="JPY")


def test_values_equal_other_types():
    assert values_equal("quantity", "2.50", "2.5")
    assert values_equal("tax_rate", "19%", "19")
    assert not values_equal("quantity", "25", "2.5")
    assert values_equal("invoice_date", "15.03.2024", "2024-03-15")
    assert values_equal("due_date", "March 15, 2024", "2024-03-15")
    assert not values_equal("due_date", "2024-03-16", "2024-03-15")
    assert values_equal("currency", " eur", "EUR")
    assert not values_equal("currency", "€", "EUR")
    assert values_equal("vendor_name", "  ACME   gmbh ", "Acme GmbH")
    assert values_equal("vendor_name", "Ａｃｍｅ", "acme")  # NFKC: full-width letters
    assert not values_equal("vendor_name", "Acme GmbH & Co", "Acme GmbH")
    assert values_equal("invoice_number", 12345, "12345")  # a JSON number for a text field


def test_numeric_accuracy_counts_money_and_decimals_only():
    gt = {
        "invoice_meta": {"invoice_number": "A-1", "invoice_date": "2024-03-15", "currency": "USD"},
        "line_items_table": {"line_items": [
            {"description": "Bolt", "quantity": "2", "unit_price": "1.50", "line_total": "3.00"},
        ]},
        "totals_section": {"subtotal": "3.00", "discount": "0.00", "tax_rate": "10", "tax_amount": "0.30",
                           "total": "3.30", "currency": "USD"},
    }
    pred = {
        "invoice_meta": {"invoice_number": "WRONG", "invoice_date": "1999-01-01", "currency": "USD"},
        "line_items_table": {"line_items": [
            {"description": "Nut", "quantity": "2.0", "unit_price": "1.5", "line_total": "3.01"},
        ]},
        "totals_section": {"subtotal": "3", "discount": "0", "tax_rate": "10%", "tax_amount": "0.30",
                           "total": "3.30", "currency": "USD"},
    }
    # 8 numeric fields (3 in the row, 5 in totals); only line_total 3.01 is wrong.
    assert numeric_accuracy(pred, gt) == pytest.approx(7 / 8)
    assert numeric_accuracy(None, gt) == 0.0
