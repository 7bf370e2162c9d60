"""The data contract: invoices, regions and their canonical JSON.

Money is `decimal.Decimal` from generation to metrics. In JSON every amount is a string in
canonical form (no symbol, no thousands separator, `.` as decimal point, exactly the currency's
minor units), dates are ISO `YYYY-MM-DD`, quantities and rates are canonical decimal strings.

A full-document label is `{"<region>": {...fields}, ...}`; a region annotation (one file per
crop) is `{"region": "<name>", "fields": {...}}`. Both are read through functions here that
reject malformed input with a `SchemaError` naming the file and the field.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from finscribe.errors import FinScribeError


class SchemaError(FinScribeError, ValueError):
    """Input that violates the data contract; the message names the file/field and the fix."""


# ----------------------------------------------------------------------------- currencies


@dataclass(frozen=True)
class Currency:
    code: str
    symbol: str
    minor_units: int


CURRENCIES: dict[str, Currency] = {
    c.code: c
    for c in (
        Currency("USD", "$", 2),
        Currency("EUR", "€", 2),
        Currency("GBP", "£", 2),
        Currency("JPY", "¥", 0),
        Currency("CHF", "CHF", 2),
        Currency("CAD", "CA$", 2),
        Currency("AUD", "A$", 2),
        Currency("INR", "₹", 2),
        Currency("SEK", "kr", 2),
    )
}


def get_currency(code: str) -> Currency:
    try:
        return CURRENCIES[code]
    except KeyError:
        raise SchemaError(
            f"unknown currency {code!r}; supported: {', '.join(sorted(CURRENCIES))}"
        ) from None


def money_quantum(currency: str) -> Decimal:
    """The smallest amount of `currency`: Decimal('0.01') for USD, Decimal('1') for JPY."""
    return Decimal(1).scaleb(-get_currency(currency).minor_units)


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round to the currency's minor unit, half up (the rule the arithmetic invariants use)."""
    return amount.quantize(money_quantum(currency), rounding=ROUND_HALF_UP)


def format_money(amount: Decimal, currency: str) -> str:
    """Canonical amount string: '1234.50' for USD, '1235' for JPY, '-3.00' for a credit."""
    return format(round_money(amount, currency), "f")


def format_decimal(value: Decimal) -> str:
    """Canonical quantity/rate string: no exponent, no trailing zeros ('1.5', '10', '0.25')."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


# ----------------------------------------------------------------------------- regions

REGIONS: tuple[str, ...] = (
    "vendor_block",
    "client_info",
    "invoice_meta",
    "line_items_table",
    "totals_section",
)

REGION_FIELDS: dict[str, tuple[str, ...]] = {
    "vendor_block": ("vendor_name", "address", "tax_id", "email", "phone"),
    "client_info": ("client_name", "address", "tax_id"),
    "invoice_meta": ("invoice_number", "invoice_date", "due_date", "payment_terms", "currency"),
    "line_items_table": ("line_items",),
    "totals_section": ("subtotal", "discount", "tax_rate", "tax_amount", "total", "currency"),
}
LINE_ITEM_FIELDS: tuple[str, ...] = ("description", "quantity", "unit_price", "line_total")

# Fields that may be absent from a label (omitted, never null).
OPTIONAL_FIELDS: dict[str, frozenset[str]] = {
    "vendor_block": frozenset({"tax_id", "email", "phone"}),
    "client_info": frozenset({"tax_id"}),
    "invoice_meta": frozenset({"payment_terms"}),
    "line_items_table": frozenset(),
    "totals_section": frozenset(),
}

# The type of every scalar field, used by the reader here and by type-aware metrics.
MONEY_FIELDS = frozenset({"unit_price", "line_total", "subtotal", "discount", "tax_amount", "total"})
DECIMAL_FIELDS = frozenset({"quantity", "tax_rate"})
DATE_FIELDS = frozenset({"invoice_date", "due_date"})
CURRENCY_FIELDS = frozenset({"currency"})


def field_type(name: str) -> str:
    """'money' | 'decimal' | 'date' | 'currency' | 'text' for a field name of the contract."""
    if name in MONEY_FIELDS:
        return "money"
    if name in DECIMAL_FIELDS:
        return "decimal"
    if name in DATE_FIELDS:
        return "date"
    if name in CURRENCY_FIELDS:
        return "currency"
    return "text"


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Party:
    name: str
    address: str
    tax_id: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class LineItem:
    description: str
    quantity: Decimal
    unit_price: Decimal
    line_total: Decimal


@dataclass(frozen=True)
class Invoice:
    vendor: Party
    client: Party
    invoice_number: str
    invoice_date: dt.date
    due_date: dt.date
    payment_terms: str | None
    currency: str
    line_items: tuple[LineItem, ...]
    subtotal: Decimal
    discount: Decimal
    tax_rate: Decimal
    tax_amount: Decimal
    total: Decimal
    locale: str = "en_US"

    # -- serialisation -----------------------------------------------------------------
    def region_fields(self, region: str) -> dict[str, Any]:
        """The canonical JSON fields of one region, in the fixed field order."""
        money = lambda amount: format_money(amount, self.currency)  # noqa: E731
        if region == "vendor_block":
            fields = {
                "vendor_name": self.vendor.name,
                "address": self.vendor.address,
                "tax_id": self.vendor.tax_id,
                "email": self.vendor.email,
                "phone": self.vendor.phone,
            }
        elif region == "client_info":
            fields = {
                "client_name": self.client.name,
                "address": self.client.address,
                "tax_id": self.client.tax_id,
            }
        elif region == "invoice_meta":
            fields = {
                "invoice_number": self.invoice_number,
                "invoice_date": self.invoice_date.isoformat(),
                "due_date": self.due_date.isoformat(),
                "payment_terms": self.payment_terms,
                "currency": self.currency,
            }
        elif region == "line_items_table":
            fields = {
                "line_items": [
                    {
                        "description": item.description,
                        "quantity": format_decimal(item.quantity),
                        "unit_price": money(item.unit_price),
                        "line_total": money(item.line_total),
                    }
                    for item in self.line_items
                ]
            }
        elif region == "totals_section":
            fields = {
                "subtotal": money(self.subtotal),
                "discount": money(self.discount),
                "tax_rate": format_decimal(self.tax_rate),
                "tax_amount": money(self.tax_amount),
                "total": money(self.total),
                "currency": self.currency,
            }
        else:
            raise SchemaError(f"unknown region {region!r}; expected one of {', '.join(REGIONS)}")
        return {k: v for k, v in fields.items() if v is not None}

    def to_label(self) -> dict[str, dict[str, Any]]:
        """The full-document label: every region's fields."""
        return {region: self.region_fields(region) for region in REGIONS}

    @classmethod
    def from_label(cls, label: dict[str, Any], *, locale: str = "en_US", source: str = "label") -> Invoice:
        """Rebuild an Invoice from a full-document label; `SchemaError` names the bad field."""
        label = validate_label(label, source=source)
        vendor, client = label["vendor_block"], label["client_info"]
        meta, items, totals = label["invoice_meta"], label["line_items_table"], label["totals_section"]
        return cls(
            vendor=Party(
                name=vendor["vendor_name"],
                address=vendor["address"],
                tax_id=vendor.get("tax_id"),
                email=vendor.get("email"),
                phone=vendor.get("phone"),
            ),
            client=Party(name=client["client_name"], address=client["address"], tax_id=client.get("tax_id")),
            invoice_number=meta["invoice_number"],
            invoice_date=dt.date.fromisoformat(meta["invoice_date"]),
            due_date=dt.date.fromisoformat(meta["due_date"]),
            payment_terms=meta.get("payment_terms"),
            currency=meta["currency"],
            line_items=tuple(
                LineItem(
                    description=row["description"],
                    quantity=Decimal(row["quantity"]),
                    unit_price=Decimal(row["unit_price"]),
                    line_total=Decimal(row["line_total"]),
                )
                for row in items["line_items"]
            ),
            subtotal=Decimal(totals["subtotal"]),
            discount=Decimal(totals["discount"]),
            tax_rate=Decimal(totals["tax_rate"]),
            tax_amount=Decimal(totals["tax_amount"]),
            total=Decimal(totals["total"]),
            locale=locale,
        )


# ----------------------------------------------------------------------------- JSON


def canonical_json(obj: Any) -> str:
    """Compact JSON with keys in the order given (the field order above), UTF-8 kept as is."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _check_scalar(name: str, value: Any, where: str, currency: str | None) -> None:
    if not isinstance(value, str):
        raise SchemaError(f"{where}.{name}: expected a string, got {type(value).__name__} {value!r}")
    kind = field_type(name)
    if kind in ("money", "decimal"):
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise SchemaError(
                f"{where}.{name}: {value!r} is not a canonical number (write e.g. '1234.50', "
                "no currency symbol or thousands separator)"
            ) from None
        if not number.is_finite():
            raise SchemaError(f"{where}.{name}: {value!r} is not a finite number")
        if kind == "money" and currency is not None and value != format_money(number, currency):
            raise SchemaError(
                f"{where}.{name}: {value!r} is not canonical for {currency} "
                f"(expected {format_money(number, currency)!r})"
            )
    elif kind == "date":
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise SchemaError(f"{where}.{name}: {value!r} is not an ISO date YYYY-MM-DD") from None
    elif kind == "currency":
        get_currency(value)


def validate_region_fields(
    region: str, fields: Any, *, source: str = "annotation", currency: str | None = None
) -> dict[str, Any]:
    """Check one region's fields against the contract and return them; raise `SchemaError`.

    `currency` (when known) makes money strings be checked for the currency's minor units.
    """
    if region not in REGION_FIELDS:
        raise SchemaError(f"{source}: unknown region {region!r}; expected one of {', '.join(REGIONS)}")
    where = f"{source}: {region}"
    if not isinstance(fields, dict):
        raise SchemaError(f"{where}: fields must be a JSON object, got {type(fields).__name__}")
    allowed = REGION_FIELDS[region]
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise SchemaError(f"{where}: unknown field(s) {unknown}; allowed: {list(allowed)}")
    missing = [f for f in allowed if f not in fields and f not in OPTIONAL_FIELDS[region]]
    if missing:
        raise SchemaError(f"{where}: missing required field(s) {missing}")
    currency = fields.get("currency", currency)
    if isinstance(currency, str) and currency not in CURRENCIES:
        raise SchemaError(f"{where}.currency: unknown currency {currency!r}; supported: {sorted(CURRENCIES)}")
    for name, value in fields.items():
        if name == "line_items":
            if not isinstance(value, list):
                raise SchemaError(f"{where}.line_items: expected a list of rows, got {type(value).__name__}")
            for i, row in enumerate(value):
                row_where = f"{where}.line_items[{i}]"
                if not isinstance(row, dict):
                    raise SchemaError(f"{row_where}: expected an object, got {type(row).__name__}")
                if set(row) != set(LINE_ITEM_FIELDS):
                    raise SchemaError(f"{row_where}: fields must be exactly {list(LINE_ITEM_FIELDS)}, got {list(row)}")
                for key in LINE_ITEM_FIELDS:
                    _check_scalar(key, row[key], row_where, currency)
        else:
            _check_scalar(name, value, where, currency)
    return fields


def validate_label(label: Any, *, source: str = "label") -> dict[str, Any]:
    """Check a full-document label (all five regions, currencies agree) and return it."""
    if not isinstance(label, dict):
        raise SchemaError(f"{source}: a label must be a JSON object of regions, got {type(label).__name__}")
    missing = [r for r in REGIONS if r not in label]
    unknown = sorted(set(label) - set(REGIONS))
    if missing or unknown:
        raise SchemaError(f"{source}: missing regions {missing}, unknown regions {unknown}")
    currency = label["invoice_meta"].get("currency") if isinstance(label["invoice_meta"], dict) else None
    for region in REGIONS:
        validate_region_fields(region, label[region], source=source, currency=currency)
    if label["totals_section"]["currency"] != currency:
        raise SchemaError(
            f"{source}: totals_section.currency {label['totals_section']['currency']!r} "
            f"differs from invoice_meta.currency {currency!r}"
        )
    return label


def _load_json(path: Path) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SchemaError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise SchemaError(f"{path}: not UTF-8 text; save the file as UTF-8 JSON") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise SchemaError(f"{path}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None


def read_label(path: Path) -> dict[str, Any]:
    """Read and validate a full-document label file."""
    return validate_label(_load_json(path), source=str(path))


def read_region_annotation(path: Path) -> tuple[str, dict[str, Any]]:
    """Read a region annotation `{"region": ..., "fields": {...}}` → (region, fields)."""
    data = _load_json(path)
    if not isinstance(data, dict) or "region" not in data or "fields" not in data:
        raise SchemaError(f'{path}: expected {{"region": "<name>", "fields": {{...}}}}')
    region = data["region"]
    if not isinstance(region, str):
        raise SchemaError(f"{path}: region must be a string")
    return region, validate_region_fields(region, data["fields"], source=str(path))
