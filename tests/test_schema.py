"""The data contract: canonical money/decimal strings, label round-trip, clear rejections."""

import datetime as dt
import json
from decimal import Decimal

import pytest

from finscribe.data.formatters import (
    OutputParseError,
    parse_output,
    prompt_for,
    serialize_target,
)
from finscribe.data.schema import (
    REGIONS,
    Invoice,
    LineItem,
    Party,
    SchemaError,
    canonical_json,
    format_decimal,
    format_money,
    read_label,
    read_region_annotation,
    validate_label,
)
from finscribe.fileio import write_json_atomic


def make_invoice(currency: str = "EUR") -> Invoice:
    items = (
        LineItem("Beratung", Decimal("7.5"), Decimal("120.00"), Decimal("900.00")),
        LineItem("Lizenz", Decimal("2"), Decimal("49.99"), Decimal("99.98")),
    )
    return Invoice(
        vendor=Party("Müller GmbH", "Hauptstr. 1, 10115 Berlin", tax_id="DE123456789", email="a@b.de"),
        client=Party("ACME SA", "1 rue X, Paris"),
        invoice_number="RE-2024-0042",
        invoice_date=dt.date(2024, 3, 15),
        due_date=dt.date(2024, 4, 14),
        payment_terms="30 Tage netto",
        currency=currency,
        line_items=items,
        subtotal=Decimal("999.98"),
        discount=Decimal("0.00"),
        tax_rate=Decimal("19"),
        tax_amount=Decimal("190.00"),
        total=Decimal("1189.98"),
        locale="de_DE",
    )


def test_money_and_decimal_are_canonical():
    assert format_money(Decimal("1234.5"), "USD") == "1234.50"
    assert format_money(Decimal("1234.5"), "JPY") == "1235"  # half up to the yen
    assert format_money(Decimal("0.005"), "EUR") == "0.01"
    assert format_decimal(Decimal("7.50")) == "7.5"
    assert format_decimal(Decimal("10")) == "10"
    assert format_decimal(Decimal("1E+1")) == "10"


def test_label_round_trip_is_exact():
    invoice = make_invoice()
    label = invoice.to_label()
    assert list(label) == list(REGIONS)
    text = canonical_json(label)
    again = Invoice.from_label(json.loads(text), locale="de_DE")
    assert again == invoice
    assert label["client_info"] == {"client_name": "ACME SA", "address": "1 rue X, Paris"}  # optional omitted
    assert label["line_items_table"]["line_items"][0]["quantity"] == "7.5"


def test_reader_names_the_bad_field(tmp_path):
    label = make_invoice().to_label()
    label["totals_section"]["total"] = "1.189,98"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(label))
    with pytest.raises(SchemaError, match=r"bad.json: totals_section.total"):
        read_label(path)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda l: l.pop("invoice_meta"), "missing regions"),
        (lambda l: l["invoice_meta"].update(invoice_date="15.03.2024"), "invoice_date"),
        (lambda l: l["invoice_meta"].update(currency="XYZ"), "unknown currency"),
        (lambda l: l["totals_section"].update(subtotal=999.98), "expected a string"),
        (lambda l: l["totals_section"].update(total="1189.9"), "not canonical for EUR"),
        (lambda l: l["line_items_table"]["line_items"][1].update(sku="X1"), r"line_items\[1\]: unknown field"),
        (lambda l: l["vendor_block"].update(iban="DE00"), "unknown field"),
    ],
)
def test_malformed_labels_are_rejected(mutate, message):
    label = make_invoice().to_label()
    mutate(label)
    with pytest.raises(SchemaError, match=message):
        validate_label(label, complete=True)


def test_region_annotation_reader(tmp_path):
    invoice = make_invoice("JPY")
    good = tmp_path / "a.json"
    fields = invoice.region_fields("totals_section")
    assert fields["total"] == "1190"
    good.write_text(json.dumps({"region": "totals_section", "fields": fields}))
    assert read_region_annotation(good) == ("totals_section", fields)

    unknown = tmp_path / "b.json"
    unknown.write_text(json.dumps({"region": "footer", "fields": {}}))
    with pytest.raises(SchemaError, match="unknown region 'footer'"):
        read_region_annotation(unknown)

    broken = tmp_path / "c.json"
    broken.write_text('{"region": "totals_section", "fields": {')
    with pytest.raises(SchemaError, match="c.json: malformed JSON at line 1"):
        read_region_annotation(broken)


def test_atomic_write_leaves_no_temp(tmp_path):
    path = tmp_path / "x.json"
    write_json_atomic(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_prompts_and_parser():
    assert prompt_for("totals_section") != prompt_for("page")
    with pytest.raises(ValueError, match="unknown region"):
        prompt_for("footer")
    fields = make_invoice().region_fields("totals_section")
    target = serialize_target(fields)
    assert parse_output(target) == fields
    assert parse_output(f"```json\n{target}\n```\n") == fields
    for bad, reason in [("", "empty"), ('{"total": "1"', "not valid JSON"), ("[1, 2]", "JSON object")]:
        with pytest.raises(OutputParseError, match=reason):
            parse_output(bad)
