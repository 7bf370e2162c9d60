"""What went wrong in a prediction: a fixed error taxonomy and a field-by-field diff.

`find_errors(pred, gt)` lists every error with the field path where it happened
("totals_section.total", "line_items_table.line_items[3].quantity"); `classify_error(pred, gt)`
names the most severe one, or `OTHER` when the prediction is correct. `finscribe mine`
(`finscribe.mining.mine`) runs both on every model output and logs the hard samples.

The taxonomy, most severe first (`ErrorType` order is the precedence):

INVALID_JSON        the output is not a JSON object (pred is None / raw text / not a dict).
REPETITION          generation fell into a loop (`Prediction.repetition`). A looping output that
                    also fails to parse is INVALID_JSON first; find_errors lists both.
MISSING_FIELD       a ground-truth field is absent (or null, or a dict/list is replaced by a
                    value of another kind) in the prediction.
EXTRA_FIELD         the prediction has a field the ground truth does not (hallucinated).
TABLE_ROW_MISSING   a line-item row of the ground truth has no counterpart in the prediction.
TABLE_ROW_EXTRA     a predicted line-item row has no counterpart in the ground truth.
                    Rows are aligned by a minimum-cost alignment (cost of a pair = number of
                    differing fields, of a gap = the number of row fields), so one dropped row
                    is reported as one missing row, not as every later row being wrong.
NUMERIC_MISMATCH    a money/quantity/rate field differs, and the prediction still satisfies
                    every arithmetic rule the ground truth satisfies: a *silent* misread that
                    `validate_document` cannot catch at serving time, hence the more severe.
ARITHMETIC_INCONSISTENT
                    the prediction breaks an arithmetic rule of `validate_document` (line_total,
                    subtotal, tax_amount, total, discount ≤ subtotal) that the ground truth keeps
                    (e.g. subtotal − discount + tax_amount ≠ total). Its numeric misreads are
                    typed ARITHMETIC_INCONSISTENT (the misread shows in the arithmetic, so a
                    validator would flag the document), and each newly broken rule is listed
                    with the rule's field as path.
DATE_MISMATCH       a date field differs (compared as parsed dates).
TEXT_MISMATCH       a text or currency field differs (normalised whitespace/case).
OTHER               no error: the prediction is correct.

Comparisons are type-aware through `finscribe.eval.numeric.values_equal`, the same comparison
field accuracy uses, so mining and evaluation agree: "1,234.50" equals "1234.50" and a date in
another spelling equals its ISO form (such a prediction classifies as OTHER).

`pred`/`gt` may be single-region field dicts (`{"subtotal": ..., ...}`; pass `region=` to get
"totals_section.subtotal" paths) or full labels (`{"totals_section": {...}, ...}`).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any

from finscribe.data.schema import REGION_FIELDS, document_currency, field_type
from finscribe.eval.numeric import values_equal
from finscribe.eval.rows import align_rows
from finscribe.eval.validation import validate_document


class ErrorType(str, enum.Enum):
    """Error types, most severe first. A `str` enum: `error_type == "OTHER"` works."""

    INVALID_JSON = "INVALID_JSON"
    REPETITION = "REPETITION"
    MISSING_FIELD = "MISSING_FIELD"
    EXTRA_FIELD = "EXTRA_FIELD"
    TABLE_ROW_MISSING = "TABLE_ROW_MISSING"
    TABLE_ROW_EXTRA = "TABLE_ROW_EXTRA"
    NUMERIC_MISMATCH = "NUMERIC_MISMATCH"
    ARITHMETIC_INCONSISTENT = "ARITHMETIC_INCONSISTENT"
    DATE_MISMATCH = "DATE_MISMATCH"
    TEXT_MISMATCH = "TEXT_MISMATCH"
    OTHER = "OTHER"

    def __str__(self) -> str:
        return self.value

    @property
    def severity(self) -> int:
        """0 for the most severe type; OTHER has the largest value."""
        return list(ErrorType).index(self)


@dataclass(frozen=True)
class FieldError:
    """One error: where (`path`), what (`error_type`), and the values on both sides."""

    path: str
    error_type: ErrorType
    pred: Any = None
    gt: Any = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["error_type"] = self.error_type.value
        return out


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _leaf_type(name: str) -> ErrorType:
    kind = field_type(name)
    if kind in ("money", "decimal"):
        return ErrorType.NUMERIC_MISMATCH
    if kind == "date":
        return ErrorType.DATE_MISMATCH
    return ErrorType.TEXT_MISMATCH


def _diff_rows(pred_rows: list[Any], gt_rows: list[Any], path: str, currency: str | None, out: list[FieldError]) -> None:
    for p, g in align_rows(pred_rows, gt_rows, currency):
        if p is None:
            out.append(FieldError(f"{path}[{g}]", ErrorType.TABLE_ROW_MISSING, None, gt_rows[g], "row not predicted"))
        elif g is None:
            out.append(FieldError(f"{path}[{p}]", ErrorType.TABLE_ROW_EXTRA, pred_rows[p], None, "row not in the document"))
        else:
            pred_row = pred_rows[p] if isinstance(pred_rows[p], dict) else {}
            _diff(pred_row, gt_rows[g], f"{path}[{g}]", currency, out)


def _diff(pred: Any, gt: Any, path: str, currency: str | None, out: list[FieldError]) -> None:
    """Append the errors of `pred` against `gt` (dicts of the same level) to `out`."""
    for name, gt_value in gt.items():
        where = _join(path, name)
        if name not in pred or pred[name] is None:
            out.append(FieldError(where, ErrorType.MISSING_FIELD, None, gt_value, "field not predicted"))
            continue
        value = pred[name]
        if isinstance(gt_value, dict):
            if not isinstance(value, dict):
                out.append(FieldError(where, ErrorType.MISSING_FIELD, value, gt_value, "expected an object"))
            else:
                _diff(value, gt_value, where, document_currency(gt_value, currency), out)
        elif isinstance(gt_value, list):
            if not isinstance(value, list):
                out.append(FieldError(where, ErrorType.MISSING_FIELD, value, gt_value, "expected a list of rows"))
            else:
                _diff_rows(value, gt_value, where, currency, out)
        elif not values_equal(name, value, gt_value, currency):
            out.append(FieldError(where, _leaf_type(name), value, gt_value, f"predicted {value!r}, expected {gt_value!r}"))
    for name in pred:
        if name not in gt and pred[name] is not None:
            out.append(FieldError(_join(path, name), ErrorType.EXTRA_FIELD, pred[name], None, "field not in the document"))


def _as_document(fields: dict[str, Any], region: str | None) -> dict[str, Any] | None:
    """Wrap region fields as `{region: fields}` for validate_document; None if the region is unknown."""
    if any(r in fields for r in REGION_FIELDS):
        return fields
    if region in REGION_FIELDS:
        return {region: fields}
    for name, names in REGION_FIELDS.items():  # guess the region of a bare field dict
        if set(fields) and set(fields) <= set(names):
            return {name: fields}
    return None


# The validate_document rules that are arithmetic. Its other rules (missing_field, unparseable,
# due_date, currency_mismatch, ...) restate errors the field diff already reports.
ARITHMETIC_RULES = frozenset({"line_total", "subtotal", "tax_amount", "total", "discount"})


def _arithmetic_errors(pred: dict[str, Any], gt: dict[str, Any], region: str | None) -> list[FieldError]:
    gt_doc, pred_doc = _as_document(gt, region), _as_document(pred, region)
    if gt_doc is None or pred_doc is None:
        return []
    kept = {(v.rule, v.field) for v in validate_document(gt_doc)}
    return [
        FieldError(v.field, ErrorType.ARITHMETIC_INCONSISTENT, None, None, f"{v.rule}: {v.message}")
        for v in validate_document(pred_doc)
        if v.rule in ARITHMETIC_RULES and (v.rule, v.field) not in kept
    ]


def find_errors(
    pred: dict[str, Any] | str | None,
    gt: dict[str, Any],
    *,
    raw_text: str | None = None,
    repetition: bool = False,
    region: str | None = None,
) -> list[FieldError]:
    """Every error of `pred` against `gt`, most severe first (empty list: the prediction is right).

    `pred` is the parsed output (a dict), or None / the raw text when the output was not JSON.
    `region` prefixes the paths of single-region dicts ("totals_section.total").
    """
    if not isinstance(gt, dict):
        raise TypeError(f"gt must be a dict of fields or a full label, got {type(gt).__name__}")
    errors: list[FieldError] = []
    if not isinstance(pred, dict):
        text = pred if isinstance(pred, str) else raw_text
        errors.append(FieldError("", ErrorType.INVALID_JSON, text, None, "the output is not a JSON object"))
    if repetition:
        errors.append(FieldError("", ErrorType.REPETITION, raw_text, None, "generation repeated itself"))
    if isinstance(pred, dict):
        prefix = region if region and not any(r in gt for r in REGION_FIELDS) else ""
        _diff(pred, gt, prefix, document_currency(gt, None), errors)
        arithmetic = _arithmetic_errors(pred, gt, region)
        if arithmetic:
            # The misread numbers show up in the arithmetic: a validator would catch them.
            errors = [
                FieldError(e.path, ErrorType.ARITHMETIC_INCONSISTENT, e.pred, e.gt, e.message)
                if e.error_type is ErrorType.NUMERIC_MISMATCH else e
                for e in errors
            ] + arithmetic
    return sorted(errors, key=lambda e: e.error_type.severity)  # stable: paths keep document order


def classify_error(
    pred: dict[str, Any] | str | None,
    gt: dict[str, Any],
    *,
    raw_text: str | None = None,
    repetition: bool = False,
    region: str | None = None,
) -> ErrorType:
    """The most severe error type of `pred` against `gt`, or `ErrorType.OTHER` if it is correct."""
    errors = find_errors(pred, gt, raw_text=raw_text, repetition=repetition, region=region)
    return errors[0].error_type if errors else ErrorType.OTHER
