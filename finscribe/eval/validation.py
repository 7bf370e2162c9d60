"""validate_document(): the arithmetic and consistency rules an invoice must satisfy.

Checked exactly to the currency's minor unit with ROUND_HALF_UP (DESIGN §3):

    line_total = quantity × unit_price            rule "line_total"
    subtotal   = Σ line_total                     rule "subtotal"
    tax_amount = (subtotal − discount) × tax_rate / 100   rule "tax_amount"
    total      = subtotal − discount + tax_amount rule "total"

and: due_date not before invoice_date ("due_date"), invoice_meta and totals_section name the
same currency ("currency_mismatch"), a known currency code ("unknown_currency"), discount ≤
subtotal ("discount"), no negative amount, quantity or rate ("negative_amount"), every number
and date readable ("unparseable"), and every required field of a present region there
("missing_field", so an empty prediction does not pass). Each stated value is checked against
the other stated values (a wrong line total breaks "line_total", not also "subtotal").

Works on a full label and on partial documents: only the rules whose regions are present run
(`{"totals_section": {...}}` checks tax_amount and total; add `line_items_table` and subtotal
is checked too). A region annotation `{"region": ..., "fields": ...}` is accepted as well.
Values go through `numeric.parse_*`, so a non-canonical prediction ("1,234.50") is still
checked. The currency for rounding comes from the document; without one (or with an unknown
code) amounts are rounded to 2 minor units. An empty list means the document is valid.

    from finscribe.eval.validation import validate_document
    problems = validate_document(json.load(open("labels/inv_000001.json")))
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from finscribe.data.formatters import PAGE
from finscribe.data.schema import (
    CURRENCY_CODES,
    LINE_ITEM_FIELDS,
    OPTIONAL_FIELDS,
    REGION_FIELDS,
    document_currency,
    field_type,
    money_quantum,
)
from finscribe.eval.field_accuracy import as_document
from finscribe.eval.numeric import parse_amount, parse_date, parse_decimal


@dataclass(frozen=True)
class Violation:
    rule: str
    field: str  # path of the offending field, e.g. "totals_section.total"
    message: str


_DEFAULT_QUANTUM = Decimal("0.01")  # when the document names no (known) currency


class _Reader:
    """Parses a document's values once, collecting "unparseable"/"negative_amount" violations."""

    def __init__(self, locale: str | None) -> None:
        self.locale = locale
        self.violations: list[Violation] = []

    def number(self, fields: dict, name: str, path: str) -> Decimal | None:
        if name not in fields:
            return None
        raw = fields[name]
        parse = parse_amount if field_type(name) == "money" else parse_decimal
        value = parse(raw, self.locale)
        if value is None:
            self.violations.append(Violation("unparseable", path, f"{path}: {raw!r} is not a number"))
        elif value < 0:
            self.violations.append(Violation("negative_amount", path, f"{path}: {raw!r} is negative"))
        return value

    def date(self, fields: dict, name: str, path: str) -> Any:
        if name not in fields:
            return None
        value = parse_date(fields[name], self.locale)
        if value is None:
            self.violations.append(Violation("unparseable", path, f"{path}: {fields[name]!r} is not a date"))
        return value


def _check_missing(doc: dict, out: list[Violation]) -> None:
    for region, fields in doc.items():
        if region not in REGION_FIELDS:
            continue
        if not isinstance(fields, dict):
            out.append(Violation("missing_field", region, f"{region}: expected an object of fields"))
            continue
        for name in REGION_FIELDS[region]:
            if name not in fields and name not in OPTIONAL_FIELDS[region]:
                out.append(Violation("missing_field", f"{region}.{name}", f"{region}.{name} is missing"))


def _currency(doc: dict, out: list[Violation]) -> Decimal:
    codes = {}
    for region in ("invoice_meta", "totals_section"):
        fields = doc.get(region)
        if isinstance(fields, dict) and isinstance(fields.get("currency"), str):
            codes[region] = fields["currency"].strip().upper()
    if len(set(codes.values())) > 1:
        out.append(Violation(
            "currency_mismatch", "totals_section.currency",
            f"totals_section.currency {codes['totals_section']!r} differs from "
            f"invoice_meta.currency {codes['invoice_meta']!r}",
        ))
    for region, code in codes.items():
        if code not in CURRENCY_CODES:
            out.append(Violation("unknown_currency", f"{region}.currency",
                                 f"{region}.currency {code!r} is not an ISO 4217 currency code"))
    code = (document_currency(doc) or "").strip().upper()
    return money_quantum(code) if code in CURRENCY_CODES else _DEFAULT_QUANTUM


def _mismatch(rule: str, path: str, stated: Decimal, expected: Decimal, formula: str) -> Violation:
    return Violation(rule, path, f"{path} is {stated} but {formula} = {expected}")


def validate_document(doc: dict, *, locale: str | None = None) -> list[Violation]:
    """All rule violations of a full label, a partial document or a region annotation."""
    doc = as_document(doc)
    if not isinstance(doc, dict):
        return [Violation("missing_field", "", f"expected a JSON object of regions, got {type(doc).__name__}")]
    out: list[Violation] = []
    _check_missing(doc, out)
    quantum = _currency(doc, out)
    read = _Reader(locale)
    rnd = lambda value: value.quantize(quantum, rounding=ROUND_HALF_UP)  # noqa: E731

    line_totals: list[Decimal | None] | None = None
    items = doc.get("line_items_table")
    if isinstance(items, dict) and isinstance(items.get("line_items"), list):
        line_totals = []
        for i, row in enumerate(items["line_items"]):
            base = f"line_items_table.line_items[{i}]"
            if not isinstance(row, dict):
                out.append(Violation("missing_field", base, f"{base}: expected an object"))
                line_totals.append(None)
                continue
            out.extend(Violation("missing_field", f"{base}.{k}", f"{base}.{k} is missing")
                       for k in LINE_ITEM_FIELDS if k not in row)
            quantity = read.number(row, "quantity", f"{base}.quantity")
            price = read.number(row, "unit_price", f"{base}.unit_price")
            line_total = read.number(row, "line_total", f"{base}.line_total")
            line_totals.append(line_total)
            if None not in (quantity, price, line_total) and line_total != rnd(quantity * price):
                out.append(_mismatch("line_total", f"{base}.line_total", line_total, rnd(quantity * price),
                                     f"quantity × unit_price ({quantity} × {price})"))

    totals = doc.get("totals_section")
    if isinstance(totals, dict):
        t = "totals_section"
        subtotal = read.number(totals, "subtotal", f"{t}.subtotal")
        discount = read.number(totals, "discount", f"{t}.discount")
        rate = read.number(totals, "tax_rate", f"{t}.tax_rate")
        tax = read.number(totals, "tax_amount", f"{t}.tax_amount")
        total = read.number(totals, "total", f"{t}.total")
        if subtotal is not None and line_totals is not None and None not in line_totals:
            expected = rnd(sum(line_totals, Decimal(0)))
            if subtotal != expected:
                out.append(_mismatch("subtotal", f"{t}.subtotal", subtotal, expected, "Σ line_total"))
        if None not in (subtotal, discount) and discount > subtotal:
            out.append(Violation("discount", f"{t}.discount", f"{t}.discount {discount} exceeds subtotal {subtotal}"))
        if None not in (subtotal, discount, rate, tax):
            expected = rnd((subtotal - discount) * rate / 100)
            if tax != expected:
                out.append(_mismatch("tax_amount", f"{t}.tax_amount", tax, expected,
                                     f"(subtotal − discount) × tax_rate / 100 (({subtotal} − {discount}) × {rate} / 100)"))
        if None not in (subtotal, discount, tax, total):
            expected = rnd(subtotal - discount + tax)
            if total != expected:
                out.append(_mismatch("total", f"{t}.total", total, expected,
                                     f"subtotal − discount + tax_amount ({subtotal} − {discount} + {tax})"))

    meta = doc.get("invoice_meta")
    if isinstance(meta, dict):
        issued = read.date(meta, "invoice_date", "invoice_meta.invoice_date")
        due = read.date(meta, "due_date", "invoice_meta.due_date")
        if issued is not None and due is not None and due < issued:
            out.append(Violation("due_date", "invoice_meta.due_date",
                                 f"invoice_meta.due_date {due} is before invoice_date {issued}"))
    return out + read.violations


def is_valid(doc: dict, *, locale: str | None = None) -> bool:
    """True when `validate_document` finds no violation."""
    return not validate_document(doc, locale=locale)


def passes_validation(region: str, fields: dict[str, Any]) -> bool:
    """Whether one region's predicted fields break none of `validate_document`'s rules: the `accept`
    check of beam decoding (`predict(..., beams=k, accept=passes_validation)`). For the whole-page
    prompt (`region` "page") `fields` is the document itself, and it must name a known region."""
    if region == PAGE:
        return any(name in REGION_FIELDS for name in fields) and not validate_document(fields)
    return not validate_document({region: fields})
