"""Convert annotations to the canonical form, stating every change and every value it could not read.

Real annotations are written the way the document prints them: "RM 57.40", "1.234,56 €",
"25/12/2018". The data contract wants "57.40", "1234.56" and "2018-12-25". This stage converts
them under rules you state (the date format, the decimal mark) and never guesses: a value that
does not fit the rules is left as it was and listed as unreadable, so that build-dataset still
refuses it until it is fixed by hand.

    finscribe normalize-annotations --input my_annotations --output fixed_annotations \
        --date-format DD/MM/YYYY --decimal-comma
    finscribe normalize-annotations --input hand_written.jsonl --output fixed.jsonl

A folder of region annotations (`X.json`, any depth) gives a folder of the same names; a records
JSONL (build-dataset's format) gives a JSONL with normalised targets. Beside the output goes
`normalize_report.json` (`<stem>.normalize_report.json` for a JSONL): every value changed
(file, field, before, after) and every value not read (file, field, value, why). The exit
status is 1 when some value could not be read.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from finscribe.config import arg, parse_config, save_config
from finscribe.data.records import DatasetBuildError, read_jsonl_records, write_jsonl_atomic
from finscribe.data.schema import (
    CURRENCY_CODES,
    LINE_ITEM_FIELDS,
    REGIONS,
    SchemaError,
    field_type,
    format_decimal,
    format_money,
    get_currency,
    load_json,
    ordered_fields,
)
from finscribe.fileio import write_json_atomic

# Date-format tokens (longest first) → strptime directives.
_DATE_TOKENS = (("YYYY", "%Y"), ("MMMM", "%B"), ("MMM", "%b"), ("YY", "%y"), ("MM", "%m"), ("DD", "%d"),
                ("M", "%m"), ("D", "%d"))
_GROUP_SPACES = " '\u00a0\u202f\u2009\u2019"
# A currency code or sign before or after a number: "RM ", "Rp.", "$", "CA$", "€ ", " kr", " EUR".
_PREFIX = re.compile(r"^(?:[^\W\d_]{1,4}\.?)?[^\w\s().,+-]?\s*")
_SUFFIX = re.compile(r"\s*[^\w\s().,+-]?(?:[^\W\d_]{1,4}\.?)?$")


def date_pattern(date_format: str) -> str:
    """'DD/MM/YYYY' → '%d/%m/%Y' (tokens YYYY YY MMMM MMM MM M DD D; anything else is literal)."""
    out, i = [], 0
    while i < len(date_format):
        for token, directive in _DATE_TOKENS:
            if date_format.startswith(token, i):
                out.append(directive)
                i += len(token)
                break
        else:
            out.append(date_format[i].replace("%", "%%"))
            i += 1
    return "".join(out)


@dataclass
class Rules:
    """How the input writes values. `decimal_mark` None: amounts have no decimals, so '.' and ','
    are both thousands separators (receipts in IDR, JPY, ...)."""

    date_formats: tuple[str, ...] = ("YYYY-MM-DD",)
    decimal_mark: str | None = "."
    currency: str | None = None  # minor units for amounts when the annotation names no currency

    def read_date(self, text: str) -> str | None:
        text = " ".join(text.split())
        for fmt in (*self.date_formats, "YYYY-MM-DD"):
            try:
                return dt.datetime.strptime(text, date_pattern(fmt)).date().isoformat()
            except ValueError:
                continue
        return None

    def read_number(self, text: str, percent: bool = False) -> Decimal | None:
        """The number in `text` under these rules, or None (never a guess)."""
        text = unicodedata.normalize("NFKC", text).strip().replace("\u2212", "-")
        if percent:
            text = text.removesuffix("%").strip()
        negative = text.startswith("(") and text.endswith(")")
        text = _SUFFIX.sub("", _PREFIX.sub("", text.strip("()").strip()))
        if text.startswith(("-", "+")):
            negative, text = negative or text[0] == "-", _PREFIX.sub("", text[1:])  # "-$12.00"
        elif text.endswith("-"):
            negative, text = True, text[:-1].strip()
        group = "[.," + re.escape(_GROUP_SPACES) + "]" if self.decimal_mark is None else (
            "[" + re.escape(_GROUP_SPACES + ("," if self.decimal_mark == "." else ".")) + "]")
        decimals = "" if self.decimal_mark is None else rf"(?:{re.escape(self.decimal_mark)}\d+)?"
        if not re.fullmatch(rf"(?:\d{{1,3}}(?:{group}\d{{3}})+|\d+){decimals}", text):
            return None
        digits = re.sub(group, "", text)
        if self.decimal_mark is not None:
            digits = digits.replace(self.decimal_mark, ".")
        number = Decimal(digits)
        return -number if negative else number


@dataclass
class Outcome:
    changed: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[dict[str, Any]] = field(default_factory=list)


def _value(name: str, value: Any, currency: str | None, rules: Rules) -> tuple[Any, str | None]:
    """(canonical value, None) or (value unchanged, why it could not be read)."""
    if not isinstance(value, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and field_type(name) != "text":
            value = str(value)
        else:
            return value, f"expected a string, got {type(value).__name__}"
    kind = field_type(name)
    if kind == "text":
        return " ".join(value.split()), None
    if kind == "currency":
        code = value.strip().upper()
        by_symbol = [c for c in CURRENCY_CODES if get_currency(c).symbol == value.strip() and c != value.strip()]
        code = by_symbol[0] if len(by_symbol) == 1 else code
        return (code, None) if code in CURRENCY_CODES else (value, "not an ISO 4217 currency code or its symbol")
    if kind == "date":
        iso = rules.read_date(value)
        return (iso, None) if iso else (value, f"not a date in the format(s) {list(rules.date_formats)}")
    number = rules.read_number(value, percent=name == "tax_rate")
    if number is None:
        hint = "" if rules.decimal_mark != "." else " (a decimal comma? pass --decimal-comma)"
        return value, f"not a number with decimal mark {rules.decimal_mark!r}{hint}"
    if kind == "decimal":
        return format_decimal(number), None
    if currency is None:
        return format(number, "f"), None
    canonical = format_money(number, currency)
    if Decimal(canonical) != number:
        return value, f"has more decimals than {currency} ({get_currency(currency).minor_units})"
    return canonical, None


def normalize_fields(region: str, fields: Any, source: str, rules: Rules, outcome: Outcome) -> Any:
    """A region's fields (or a page's document label) in canonical form; changes and unreadable
    values are appended to `outcome`. Unknown fields are kept for the validator to name."""
    if region == "page" and isinstance(fields, dict):
        return {r: normalize_fields(r, f, source, rules, outcome) if r in REGIONS else f for r, f in fields.items()}
    if not isinstance(fields, dict):
        return fields
    currency = fields.get("currency") if isinstance(fields.get("currency"), str) else None
    currency = (currency or "").strip().upper() or rules.currency
    currency = currency if currency in CURRENCY_CODES else None

    def one(path: str, name: str, value: Any) -> Any:
        new, why = _value(name, value, currency, rules)
        if why:
            outcome.unreadable.append({"source": source, "field": path, "value": value, "reason": why})
        elif new != value:
            outcome.changed.append({"source": source, "field": path, "from": value, "to": new})
        return new

    out = {}
    for name, value in fields.items():
        if name == "line_items" and isinstance(value, list):
            out[name] = [
                {k: one(f"{region}.line_items[{i}].{k}", k, v) if k in LINE_ITEM_FIELDS else v for k, v in row.items()}
                if isinstance(row, dict) else row
                for i, row in enumerate(value)
            ]
        else:
            out[name] = one(f"{region}.{name}", name, value)
    return ordered_fields(region, out) if region in REGIONS else out


# ----------------------------------------------------------------------------- the stage


@dataclass
class NormalizeConfig:
    input: Path = arg(help="folder of region annotations X.json (any depth), or a records .jsonl", path="any")
    output: Path = arg(help="folder to write (folder input) or .jsonl file (JSONL input)", path="any")
    date_format: tuple[str, ...] = arg(("YYYY-MM-DD",), "how the input writes dates, tried in order, "
                                                       "e.g. DD/MM/YYYY or 'D MMM YYYY' (tokens YYYY YY MMMM MMM MM M DD D)")
    decimal_comma: bool = arg(False, "amounts use ',' as decimal mark and '.' or spaces between thousands (1.234,56)")
    currency: str | None = arg(None, "ISO code giving the minor units of amounts whose annotation names no currency")

    def __post_init__(self) -> None:
        if self.currency is not None and self.currency not in CURRENCY_CODES:
            raise ValueError(f"--currency {self.currency!r} is not an ISO 4217 code")

    def rules(self) -> Rules:
        return Rules(tuple(self.date_format), "," if self.decimal_comma else ".", self.currency)


def normalize_folder(input_dir: Path, output_dir: Path, rules: Rules) -> Outcome:
    """Write every annotation of `input_dir` normalised under the same name in `output_dir`."""
    outcome = Outcome()
    paths = sorted(p for p in input_dir.rglob("*.json") if p.is_file())
    if not paths:
        raise DatasetBuildError(f"{input_dir}: no .json annotations found")
    for path in paths:
        source = str(path)
        try:
            data = load_json(path)
        except SchemaError as err:
            outcome.unreadable.append({"source": source, "field": "", "value": None, "reason": str(err)})
            continue
        if not isinstance(data, dict) or "region" not in data or "fields" not in data:
            outcome.unreadable.append({"source": source, "field": "", "value": None,
                                       "reason": 'expected {"region": "<name>", "fields": {...}}'})
            continue
        data = {**data, "fields": normalize_fields(data["region"], data["fields"], source, rules, outcome)}
        target = output_dir / path.relative_to(input_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(target, data)
    return outcome


def normalize_jsonl(input_path: Path, output_path: Path, rules: Rules) -> Outcome:
    """Write the records of `input_path` with normalised targets to `output_path`."""
    outcome, records = Outcome(), read_jsonl_records(input_path)
    for n, record in enumerate(records, start=1):
        source = f"{input_path}: record {n} ({record.get('source_id', '?')})"
        try:
            fields = json.loads(record["target"])
        except (TypeError, json.JSONDecodeError):
            outcome.unreadable.append({"source": source, "field": "target", "value": record["target"],
                                       "reason": "target is not JSON"})
            continue
        fields = normalize_fields(record["region"], fields, source, rules, outcome)
        record["target"] = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    write_jsonl_atomic(output_path, records)
    return outcome


def main(argv: list[str] | None = None, prog: str = "finscribe normalize-annotations") -> int:
    config = parse_config(NormalizeConfig, argv, prog, __doc__.split("\n\n")[0])
    source, output = Path(config.input), Path(config.output)
    try:
        if source.is_dir():
            outcome = normalize_folder(source, output, config.rules())
            report, config_dir = output / "normalize_report.json", output
        elif source.suffix == ".jsonl":
            outcome = normalize_jsonl(source, output, config.rules())
            report, config_dir = output.with_suffix(".normalize_report.json"), output.parent
        else:
            raise DatasetBuildError(f"{source}: not a folder of annotations or a .jsonl of records")
    except OSError as err:  # a missing input, an unwritable output: one line naming the file
        raise DatasetBuildError(f"{err.filename or source}: {err.strerror or err}") from None
    save_config(config, config_dir, name=report.name.replace("report", "config"))
    write_json_atomic(report, {"changed": outcome.changed, "unreadable": outcome.unreadable})
    print(f"changed {len(outcome.changed)} value(s), could not read {len(outcome.unreadable)}; "
          f"every one is listed in {report}")
    for item in outcome.unreadable[:20]:
        print(f"  unreadable: {item['source']}: {item['field']} {item['value']!r}: {item['reason']}")
    return 1 if outcome.unreadable else 0


if __name__ == "__main__":
    from finscribe.cli import run

    raise SystemExit(run(main, prog="python -m finscribe.data.normalize"))
