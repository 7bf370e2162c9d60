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
import functools
import json
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import babel.numbers

from finscribe.errors import FinScribeError


class SchemaError(FinScribeError, ValueError):
    """Input that violates the data contract; the message names the file/field and the fix.

    `.problems` lists every problem found (one per line of the message).
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems) if problems else [message]


# ----------------------------------------------------------------------------- currencies


@dataclass(frozen=True)
class Currency:
    code: str
    symbol: str
    minor_units: int


# Every ISO 4217 code Babel (CLDR) knows, with its minor units and English symbol: CLDR is kept
# up to date by the Unicode consortium, so a new currency needs a Babel upgrade, not an edit here.
CURRENCY_CODES: frozenset[str] = frozenset(babel.numbers.list_currencies())


def _unknown_currency(code: Any) -> SchemaError:
    return SchemaError(f"unknown currency {code!r}: not an ISO 4217 code; write its three capital letters, "
                       "e.g. 'USD', 'EUR', 'MYR', 'JPY'")


@functools.cache
def _currency(code: str) -> Currency:
    return Currency(code, babel.numbers.get_currency_symbol(code, locale="en"),
                    babel.numbers.get_currency_precision(code))


def get_currency(code: str) -> Currency:
    """The currency of an ISO 4217 code ('USD', 'JPY', 'BHD', ...); `SchemaError` for any other."""
    if not isinstance(code, str) or code not in CURRENCY_CODES:
        raise _unknown_currency(code)
    return _currency(code)


def document_currency(obj: Any, default: str | None = None) -> str | None:
    """The currency code a document or region states, else `default`.

    Looks at the object's own `currency` (a region's fields), then `invoice_meta.currency` and
    `totals_section.currency` (a full document). The one helper every stage uses for this.
    """
    if isinstance(obj, dict):
        for holder in (obj, obj.get("invoice_meta"), obj.get("totals_section")):
            if isinstance(holder, dict) and isinstance(holder.get("currency"), str):
                return holder["currency"]
    return default


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
        label = validate_label(label, source=source, complete=True)
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


# Canonical numbers: optional minus, no leading zeros, `.` as decimal point, nothing else
# (Decimal() alone would also take " 12", "1_000", "1e3" and "Infinity").
_CANONICAL_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _scalar_problem(name: str, value: Any, where: str, currency: str | None) -> str | None:
    """Why `value` is not a canonical value of field `name`, or None if it is."""
    if not isinstance(value, str):
        return f"{where}.{name}: expected a string, got {type(value).__name__} {value!r}"
    kind = field_type(name)
    if kind in ("money", "decimal"):
        if not _CANONICAL_NUMBER.fullmatch(value):
            return (f"{where}.{name}: {value!r} is not a canonical number (write e.g. '1234.50': digits and '.', "
                    "no currency symbol, thousands separator or spaces; "
                    "`finscribe normalize-annotations` converts them)")
        number = Decimal(value)
        if kind == "money" and currency is not None and value != format_money(number, currency):
            return (f"{where}.{name}: {value!r} is not canonical for {currency} "
                    f"(expected {format_money(number, currency)!r})")
        if kind == "decimal" and value != format_decimal(number):
            return f"{where}.{name}: {value!r} is not canonical (expected {format_decimal(number)!r}, no trailing zeros)"
    elif kind == "date":
        try:
            if not _ISO_DATE.fullmatch(value):
                raise ValueError(value)
            dt.date.fromisoformat(value)
        except ValueError:
            return (f"{where}.{name}: {value!r} is not an ISO date YYYY-MM-DD "
                    "(`finscribe normalize-annotations --date-format ...` converts them)")
    elif kind == "currency" and value not in CURRENCY_CODES:
        return f"{where}.{name}: " + str(_unknown_currency(value))
    return None


def _rows_problems(rows: Any, where: str, currency: str | None) -> list[str]:
    if not isinstance(rows, list):
        return [f"{where}.line_items: expected a list of rows, got {type(rows).__name__}"]
    problems = []
    for i, row in enumerate(rows):
        row_where = f"{where}.line_items[{i}]"
        if not isinstance(row, dict):
            problems.append(f"{row_where}: expected an object, got {type(row).__name__}")
            continue
        unknown = [key for key in row if key not in LINE_ITEM_FIELDS]
        if unknown:
            problems.append(f"{row_where}: unknown field(s) {unknown}; allowed: {list(LINE_ITEM_FIELDS)}")
        if not any(key in row for key in LINE_ITEM_FIELDS):
            problems.append(f"{row_where}: empty row; give some of {list(LINE_ITEM_FIELDS)}")
        problems += [p for key in LINE_ITEM_FIELDS if key in row
                     if (p := _scalar_problem(key, row[key], row_where, currency))]
    return problems


def region_problems(
    region: Any, fields: Any, *, source: str = "annotation", currency: str | None = None, complete: bool = False
) -> list[str]:
    """Every way one region's fields break the contract (empty list: valid).

    Any non-empty subset of the region's fields is valid (real documents lack some); unknown
    fields are not. `complete` also requires every non-optional field (synthetic labels).
    `currency` (when known) makes money strings be checked for the currency's minor units.
    """
    if region not in REGION_FIELDS:
        return [f"{source}: unknown region {region!r}; expected one of {', '.join(REGIONS)}"]
    where = f"{source}: {region}"
    if not isinstance(fields, dict):
        return [f"{where}: fields must be a JSON object, got {type(fields).__name__}"]
    allowed = REGION_FIELDS[region]
    problems = []
    unknown = [name for name in fields if name not in allowed]
    if unknown:
        problems.append(f"{where}: unknown field(s) {unknown}; allowed: {list(allowed)}")
    if not any(name in fields for name in allowed):
        problems.append(f"{where}: no fields; annotate at least one of {list(allowed)}")
    missing = [f for f in allowed if f not in fields and f not in OPTIONAL_FIELDS[region]]
    if complete and missing:
        problems.append(f"{where}: missing required field(s) {missing}")
    currency = fields.get("currency", currency)
    currency = currency if isinstance(currency, str) and currency in CURRENCY_CODES else None
    for name in allowed:
        if name == "line_items" and name in fields:
            problems += _rows_problems(fields[name], where, currency)
        elif name in fields and (problem := _scalar_problem(name, fields[name], where, currency)):
            problems.append(problem)
    return problems


def label_problems(label: Any, *, source: str = "label", complete: bool = False) -> list[str]:
    """Every way a document label breaks the contract: known regions, each a valid (partial)
    region, currencies agreeing; `complete` requires all five regions and their fields."""
    if not isinstance(label, dict):
        return [f"{source}: a label must be a JSON object of regions, got {type(label).__name__}"]
    problems = []
    missing = [r for r in REGIONS if r not in label]
    unknown = [r for r in label if r not in REGIONS]
    if complete and missing:
        problems.append(f"{source}: missing regions {missing}")
    if unknown:
        problems.append(f"{source}: unknown regions {unknown}; expected some of {list(REGIONS)}")
    if not any(r in label for r in REGIONS):
        problems.append(f"{source}: no regions; give at least one of {list(REGIONS)}")
    currencies = {r: label[r]["currency"] for r in ("invoice_meta", "totals_section")
                  if isinstance(label.get(r), dict) and "currency" in label[r]}
    if len(set(map(str, currencies.values()))) > 1:
        problems.append(f"{source}: totals_section.currency {currencies['totals_section']!r} "
                        f"differs from invoice_meta.currency {currencies['invoice_meta']!r}")
    currency = document_currency(label)
    for region in REGIONS:
        if region in label:
            problems += region_problems(region, label[region], source=source, currency=currency, complete=complete)
    return problems


def _raise_if(problems: list[str]) -> None:
    if problems:
        raise SchemaError("; ".join(problems) if len(problems) < 2 else "\n".join(problems), problems)


def validate_region_fields(
    region: str, fields: Any, *, source: str = "annotation", currency: str | None = None, complete: bool = False
) -> dict[str, Any]:
    """Check one region's fields (see `region_problems`) and return them; `SchemaError` lists
    every problem (`.problems`)."""
    _raise_if(region_problems(region, fields, source=source, currency=currency, complete=complete))
    return fields


def validate_label(label: Any, *, source: str = "label", complete: bool = False) -> dict[str, Any]:
    """Check a document label (see `label_problems`) and return it; `SchemaError` lists every problem."""
    _raise_if(label_problems(label, source=source, complete=complete))
    return label


def ordered_fields(region: str, fields: dict[str, Any]) -> dict[str, Any]:
    """`fields` in the contract's order (regions of a page, fields of a region, keys of a row), so
    that a hand-written or imported annotation trains the same target order as synthetic ones."""
    if region == "page":
        return {r: ordered_fields(r, fields[r]) for r in REGIONS if isinstance(fields.get(r), dict)}
    order = {name: i for i, name in enumerate((*REGION_FIELDS.get(region, ()), *LINE_ITEM_FIELDS))}
    ranked = lambda d: dict(sorted(d.items(), key=lambda kv: order.get(kv[0], len(order))))  # noqa: E731
    out = ranked(fields)
    if isinstance(out.get("line_items"), list):
        out["line_items"] = [ranked(row) if isinstance(row, dict) else row for row in out["line_items"]]
    return out


def target_problems(region: str, fields: Any, *, source: str) -> list[str]:
    """The problems of a record's target: a page's document label or a region's fields."""
    if region == "page":
        return label_problems(fields, source=source)
    return region_problems(region, fields, source=source)


def load_json(path: Path) -> Any:
    """The JSON in `path`; a one-line `SchemaError` for a missing, unreadable or malformed file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SchemaError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise SchemaError(f"{path}: is a folder, not a JSON file; rename or remove it") from None
    except UnicodeDecodeError:
        raise SchemaError(f"{path}: not UTF-8 text; save the file as UTF-8 JSON") from None
    except OSError as err:  # a symlink loop (ELOOP), no permission, ...
        raise SchemaError(f"{path}: cannot be read ({err.strerror or err}); fix or remove it") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise SchemaError(f"{path}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None


def read_label(path: Path, *, complete: bool = False) -> dict[str, Any]:
    """Read and validate a document label file (all its problems in one `SchemaError`)."""
    return validate_label(load_json(path), source=str(path), complete=complete)


def read_region_annotation(path: Path, *, currency: str | None = None) -> tuple[str, dict[str, Any]]:
    """Read a region annotation `{"region": ..., "fields": {...}}` → (region, fields); a
    `SchemaError` lists every problem of the file."""
    data = load_json(path)
    if not isinstance(data, dict) or "region" not in data or "fields" not in data:
        raise SchemaError(f'{path}: expected {{"region": "<name>", "fields": {{...}}}}')
    region = data["region"]
    if not isinstance(region, str):
        raise SchemaError(f"{path}: region must be a string")
    return region, validate_region_fields(region, data["fields"], source=str(path), currency=currency)
