"""Parsing and comparing amounts, quantities, dates and codes the way the metrics need.

Labels are canonical (`"1234.50"`, `"2024-03-15"`), but model outputs are not always: these
parsers accept the printed forms a model may copy from the page, so a metric scores the value,
not its spelling. They never guess silently: anything not clearly a number/date gives `None`.

Rules (documented here because the metrics' meaning depends on them):

* Amounts (`parse_amount`): surrounding currency symbols/ISO codes and spaces are dropped;
  `-12.00`, `12.00-`, `−12.00` and the accounting form `(12.00)` are negative. Grouping may use
  `,` `.` space, NBSP or `'`. When both `,` and `.` occur, the last one is the decimal mark. A
  single separator kind occurring more than once is grouping (`1.234.567`). A lone `,` followed
  by exactly three digits is grouping (`1,234` = 1234; not after a leading 0: `0,500` = 0.5),
  otherwise it is the decimal mark (`7,5`).
  A lone `.` is the decimal mark (`1.234` = 1.234) unless `locale` names a decimal-comma locale
  (`de_DE`: `1.234` = 1234). Grouped integer parts must have groups of 3 (Indian 2-digit lakh
  groups allowed), so `1,2,3` is not a number. Exponents, NaN and infinities are not numbers.
  JSON numbers (int/float) from a model are accepted through their decimal `str()`.
* `parse_decimal` (quantities, rates) follows the same rules and also drops a trailing `%`.
* Dates (`parse_date`): ISO `YYYY-MM-DD` first (also `YYYY/MM/DD`, `YYYY.MM.DD`); then
  `dd.mm.yyyy`; then `a/b/yyyy` or `a-b-yyyy`: if only one reading is a valid date it is used,
  else day-first, except month-first when `locale` is `en_US`. Two-digit years mean 20yy.
  Month names in English, German, French, Spanish, Italian, Dutch and Portuguese are read
  (`15 March 2024`, `March 15, 2024`, `15-Mar-2024`, `15. März 2024`).
* `values_equal` compares by `schema.field_type`: money and decimals by Decimal value (exact:
  `"1,234.50"` == `"1234.5"`, `"1234.51"` is wrong, a JPY `"1235"` equals `"1235.00"` but not
  `"1235.4"`); dates by calendar day; currency by upper-cased code; text after NFKC
  normalisation, case folding and whitespace collapsing.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Any

from finscribe.data.schema import CURRENCY_CODES, field_type, get_currency

# Languages that print `1.234,50`. Swiss locales use `.` as the decimal mark.
_DECIMAL_COMMA_LANGS = frozenset(
    {"de", "fr", "es", "it", "nl", "pt", "sv", "da", "nb", "nn", "no", "fi", "pl", "cs", "sk",
     "ru", "uk", "tr", "id", "ro", "hu", "el", "bg", "hr", "sl", "lt", "lv", "et"}
)
_SPACES = re.compile("[\u00a0\u202f\u2009 '\u2019]")
# Every ISO 4217 code and its English symbol (Babel), plus the bare signs and "kr" that
# documents print; longest first so that "CA$" wins over "$".
_CURRENCY_TOKENS = sorted(
    CURRENCY_CODES | {get_currency(code).symbol for code in CURRENCY_CODES} | {"$", "€", "£", "¥", "₹", "kr"},
    key=len,
    reverse=True,
)
_TOKEN_AT_START = re.compile("(?:" + "|".join(map(re.escape, _CURRENCY_TOKENS)) + ")", re.IGNORECASE)
_TOKEN_AT_END = re.compile("(?:" + "|".join(map(re.escape, _CURRENCY_TOKENS)) + ")$", re.IGNORECASE)
_NUMBER_BODY = re.compile(r"[0-9.,_]+")


def uses_decimal_comma(locale: str | None) -> bool:
    """True for locales such as de_DE or fr_FR that print `1.234,50` (False for de_CH, en_*)."""
    if not locale:
        return False
    lang, _, region = locale.replace("-", "_").partition("_")
    return lang.lower() in _DECIMAL_COMMA_LANGS and region.upper() != "CH"


def _strip_currency(text: str) -> str:
    changed = True
    while changed:
        changed = False
        text = text.strip()
        start = _TOKEN_AT_START.match(text)
        if start and start.end():
            text, changed = text[start.end():], True
        end = _TOKEN_AT_END.search(text)
        if end and end.start() < len(text):
            text, changed = text[: end.start()], True
        # Any other Unicode currency sign (category Sc) at either end.
        if text and unicodedata.category(text[0]) == "Sc":
            text, changed = text[1:], True
        if text and unicodedata.category(text[-1]) == "Sc":
            text, changed = text[:-1], True
    return text


def _valid_grouping(integer: str, sep: str) -> bool:
    groups = integer.split(sep)
    if len(groups) == 1:
        return integer.isdigit()
    first, middle, last = groups[0], groups[1:-1], groups[-1]
    return (
        first.isdigit() and 1 <= len(first) <= 3 and not first.startswith("0")
        and all(g.isdigit() and len(g) in (2, 3) for g in middle)
        and last.isdigit() and len(last) == 3
    )


def _parse_number(value: Any, locale: str | None, allow_percent: bool) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, (int, float)):
        value = str(value)  # a JSON number from a model; str() of a float is its shortest decimal
    if not isinstance(value, str):
        return None
    text = unicodedata.normalize("NFKC", value).strip().replace("\u2212", "-")
    if allow_percent and text.endswith("%"):
        text = text[:-1]
    negative = False
    if text.startswith("(") and text.endswith(")"):
        negative, text = True, text[1:-1]
    text = _strip_currency(text)
    if text.startswith(("-", "+")):
        negative, text = negative or text[0] == "-", text[1:]
    elif text.endswith("-"):
        negative, text = True, text[:-1]
    text = _strip_currency(text)  # "-$12.00" has the sign before the symbol
    if "_" in text:
        return None
    text = re.sub(_SPACES, "_", text)  # space-like grouping marks become one known mark
    if not _NUMBER_BODY.fullmatch(text) or text.startswith("_"):
        return None
    if "," in text and "." in text:
        decimal_mark = "," if text.rfind(",") > text.rfind(".") else "."
    elif text.count(",") > 1 or text.count(".") > 1:
        decimal_mark = None
    elif "," in text:
        decimal_mark = None if re.fullmatch(r"[1-9]\d{0,2},\d{3}", text) else ","
    elif "." in text:
        decimal_mark = None if uses_decimal_comma(locale) and re.fullmatch(r"[1-9]\d{0,2}\.\d{3}", text) else "."
    else:
        decimal_mark = None
    integer, fraction = text.rsplit(decimal_mark, 1) if decimal_mark else (text, "")
    if decimal_mark and not fraction.isdigit():
        return None
    groups = {m for m in "_,." if m in integer}
    if len(groups) > 1:
        return None
    if groups:
        if not _valid_grouping(integer, groups.pop()):
            return None
        integer = re.sub(r"[_,.]", "", integer)
    if integer == "" and fraction:
        integer = "0"
    if not integer.isdigit():
        return None
    try:
        number = Decimal(f"{integer}.{fraction}" if fraction else integer)
    except InvalidOperation:
        return None
    return -number if negative else number


def parse_amount(text: Any, locale: str | None = None) -> Decimal | None:
    """A money amount as Decimal (`"$1,234.50"` → 1234.50, `"(12.00)"` → -12.00), else None."""
    return _parse_number(text, locale, allow_percent=False)


def parse_decimal(text: Any, locale: str | None = None) -> Decimal | None:
    """A quantity or rate as Decimal (`"7,5"` → 7.5, `"19%"` → 19), else None."""
    return _parse_number(text, locale, allow_percent=True)


# ----------------------------------------------------------------------------- dates

_MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        "january jan januar janvier janv enero ene gennaio gen januari jan janeiro",
        "february feb februar fevrier fevr febrero febbraio febbraio februari fevereiro fev",
        "march mar marz maerz mars marzo maart marco",
        "april apr avril avr abril aprile",
        "may mai mayo maggio mag mei maio",
        "june jun juni juin junio giugno giu junho",
        "july jul juli juillet juil julio luglio lug julho",
        "august aug aout agosto ago augustus",
        "september sep sept septembre septiembre settembre set setembro",
        "october oct oktober octobre octubre ottobre ott okt oktober outubro out",
        "november nov novembre noviembre novembro",
        "december dec dezember dez decembre diciembre dic dicembre dezembro",
    ),
    start=1,
):
    for _name in _names.split():
        _MONTHS[_name] = _number

_ISO = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_DOTTED = re.compile(r"(\d{1,2})\.\s?(\d{1,2})\.\s?(\d{2}|\d{4})")
_SLASHED = re.compile(r"(\d{1,2})[/-](\d{1,2})[/-](\d{2}|\d{4})")
_DAY_MONTH_NAME = re.compile(r"(\d{1,2})\.?(?:st|nd|rd|th)?[\s\-]+(?:de\s+)?([^\W\d_]+)\.?(?:\s+de)?[\s\-,]+(\d{4})")
_MONTH_NAME_DAY = re.compile(r"([^\W\d_]+)\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})")


def _date(year: str, month: int | str, day: int | str) -> dt.date | None:
    y = int(year)
    if len(year) == 2:
        y += 2000
    try:
        return dt.date(y, int(month), int(day))
    except ValueError:
        return None


def _month(name: str) -> int | None:
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return _MONTHS.get(plain)


def parse_date(text: Any, locale: str | None = None) -> dt.date | None:
    """A calendar date from ISO or a common printed form (rules in the module docstring), else None."""
    if isinstance(text, dt.datetime):
        return text.date()
    if isinstance(text, dt.date):
        return text
    if not isinstance(text, str):
        return None
    text = unicodedata.normalize("NFKC", text).strip()
    if m := _ISO.fullmatch(text):
        return _date(m[1], m[2], m[3])
    if m := _DOTTED.fullmatch(text):
        return _date(m[3], m[2], m[1])
    if m := _SLASHED.fullmatch(text):
        day_first, month_first = _date(m[3], m[2], m[1]), _date(m[3], m[1], m[2])
        if day_first is None or month_first is None:
            return day_first or month_first
        us = (locale or "").replace("-", "_").lower() == "en_us"
        return month_first if us else day_first
    if (m := _DAY_MONTH_NAME.fullmatch(text)) and (month := _month(m[2])):
        return _date(m[3], month, m[1])
    if (m := _MONTH_NAME_DAY.fullmatch(text)) and (month := _month(m[1])):
        return _date(m[3], month, m[2])
    return None


# ----------------------------------------------------------------------------- comparison


def normalize_text(value: Any) -> str | None:
    """NFKC-normalised, case-folded, whitespace-collapsed text; None for non-scalars."""
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        return None
    return " ".join(unicodedata.normalize("NFKC", str(value)).casefold().split())


def canonical_value(field_name: str, value: Any, locale: str | None = None) -> Any:
    """The comparable form of a value by field type (Decimal, date, code, text), None if unreadable."""
    kind = field_type(field_name)
    if kind == "money":
        return parse_amount(value, locale)
    if kind == "decimal":
        return parse_decimal(value, locale)
    if kind == "date":
        return parse_date(value, locale)
    if kind == "currency":
        return value.strip().upper() if isinstance(value, str) and value.strip() else None
    return normalize_text(value)


def values_equal(
    field_name: str, pred_value: Any, gt_value: Any, currency: str | None = None, locale: str | None = None
) -> bool:
    """Type-aware equality of one predicted field value with the ground truth.

    `currency` is part of the shared signature; Decimal equality is already exact to any
    currency's minor unit, so it does not change the result. `locale` disambiguates printed
    numbers and slash dates (see the module docstring). An unreadable value is never equal.
    """
    pred, gt = canonical_value(field_name, pred_value, locale), canonical_value(field_name, gt_value, locale)
    return pred is not None and gt is not None and pred == gt
