"""Field-level metrics: type-aware field accuracy, Donut's field F1 and tree-edit accuracy.

`field_accuracy` is the headline metric (DESIGN §7; a number, `field_accuracy_details` gives the
per-field result): the share of ground-truth fields that the
prediction got right, compared by type (`numeric.values_equal`). It takes one region's fields
(`{"total": "12.00", ...}`), a region annotation (`{"region": ..., "fields": ...}`) or a full
label (`{"totals_section": {...}, ...}`; partial labels with only some regions too).

Choices, so that the number means one thing:
* Every ground-truth leaf counts once; a missing or unreadable predicted value is wrong.
* Predicted fields the ground truth lacks do not change the score; they are listed in
  `extra_fields` (so an optional field the label omits is never penalised).
* Line items are compared row by row after the order-preserving minimum-cost alignment of
  `eval/rows.py` (the one mining uses too): a dropped or invented row costs only its own fields
  instead of shifting every later row, and a reordered table still loses the rows that moved.
* A `None` prediction (output that was not a JSON object) scores 0 on all ground-truth fields.

`field_f1` and `tree_edit_accuracy` follow Donut (Kim et al. 2022, `JSONParseEvaluator`):
F1 over flattened (key path, value) pairs, with list rows flattened under their key (so F1 is
order-insensitive), and nTED accuracy = max(0, 1 − TED(pred, gt) / TED(∅, gt)) on the trees
with sorted keys, leaf cost = string length, leaf rename = Levenshtein distance (computed by
`apted`). By default values are first put in canonical form by type (so `"1,234.50"` and
`"1234.5"` agree, as in field accuracy); `canonical=False` gives Donut's exact-string version.
APTED is pure Python: a 25-row invoice takes seconds, so reports may compute nTED on a sample.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from apted import APTED, Config
from rapidfuzz.distance import Levenshtein

from finscribe.data.schema import REGIONS, document_currency, field_type, format_decimal
from finscribe.eval.numeric import canonical_value, values_equal
from finscribe.eval.rows import align_rows


@dataclass
class FieldAccuracy:
    accuracy: float
    correct: int
    total: int
    per_field: dict[str, bool]  # ground-truth field path -> predicted correctly
    extra_fields: list[str] = field(default_factory=list)  # predicted paths the ground truth lacks
    valid: bool = True  # False when the prediction was not a JSON object


def as_document(obj: Any) -> Any:
    """A region annotation `{"region": r, "fields": f}` becomes `{r: f}`; anything else is returned."""
    if isinstance(obj, dict) and set(obj) == {"region", "fields"} and obj["region"] in REGIONS:
        return {obj["region"]: obj["fields"]}
    return obj


def leaves(obj: Any, prefix: str = "", name: str = "") -> Iterable[tuple[str, str, Any]]:
    """(path, field name, value) of every scalar under obj, depth first in key order."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from leaves(value, f"{prefix}.{key}" if prefix else str(key), str(key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from leaves(value, f"{prefix}[{i}]", name)
    else:
        yield prefix, name, obj


_MISSING = object()
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def lookup(obj: Any, path: str) -> Any:
    for key, index in _STEP.findall(path):
        if key and isinstance(obj, dict) and key in obj:
            obj = obj[key]
        elif index and isinstance(obj, list) and int(index) < len(obj):
            obj = obj[int(index)]
        else:
            return _MISSING
    return obj


def _align_rows(pred: Any, gt: Any, currency: str | None) -> Any:
    """A copy of pred whose lists of rows are reordered to pair with gt's rows as `align_rows`
    pairs them; a gt row with no partner gets None (its fields are wrong), predicted rows with no
    partner go after the last gt row (they are extra fields)."""
    if isinstance(pred, dict) and isinstance(gt, dict):
        return {k: _align_rows(v, gt[k], currency) if k in gt else v for k, v in pred.items()}
    if not (isinstance(pred, list) and isinstance(gt, list)):
        return pred
    steps = align_rows(pred, gt, currency)
    match = {g: p for p, g in steps if p is not None and g is not None}
    aligned: list[Any] = [pred[match[g]] if g in match else None for g in range(len(gt))]
    aligned += [pred[p] for p, g in steps if g is None]
    return [_align_rows(p, gt[i], currency) if i < len(gt) else p for i, p in enumerate(aligned)]


def field_accuracy(
    pred: dict | None,
    gt: dict,
    *,
    region: str | None = None,
    field_types: Iterable[str] | None = None,
    locale: str | None = None,
) -> float:
    """Share (0..1) of gt's fields predicted correctly, the seed's number:

        accuracies.append(field_accuracy(sample["pred"], sample["gt"]))
        print(f"Average Accuracy: {sum(accuracies) / len(accuracies):.2%}")

    The per-field result (which fields, counts, extra fields) is `field_accuracy_details`.
    """
    return field_accuracy_details(pred, gt, region=region, field_types=field_types, locale=locale).accuracy


def field_accuracy_details(
    pred: dict | None,
    gt: dict,
    *,
    region: str | None = None,
    field_types: Iterable[str] | None = None,
    locale: str | None = None,
) -> FieldAccuracy:
    """Share of gt's fields predicted correctly, with the per-field detail (see the module docstring).

    `region` names the region of a bare fields dict so paths read "totals_section.total";
    `field_types` restricts the count to some `schema.field_type` kinds (e.g. money, decimal).
    """
    gt, pred = as_document(gt), as_document(pred)
    if region is not None:
        gt = {region: gt}
        pred = {region: pred} if isinstance(pred, dict) else pred
    kinds = set(field_types) if field_types is not None else None
    currency = document_currency(gt)
    gt_leaves = [
        (path, name, value) for path, name, value in leaves(gt)
        if kinds is None or field_type(name) in kinds
    ]
    valid = isinstance(pred, dict)
    if valid:  # rows are paired as mining pairs them (eval.rows.align_rows)
        pred = _align_rows(pred, gt, currency)
    per_field: dict[str, bool] = {}
    for path, name, value in gt_leaves:
        predicted = lookup(pred, path) if valid else _MISSING
        if predicted is _MISSING:
            per_field[path] = False
        elif value is None:
            per_field[path] = predicted is None
        else:
            per_field[path] = values_equal(name, predicted, value, currency, locale)
    extra = sorted(
        path for path, name, _ in (leaves(pred) if valid else ())
        if lookup(gt, path) is _MISSING and (kinds is None or field_type(name) in kinds)
    )
    correct, total = sum(per_field.values()), len(per_field)
    accuracy = correct / total if total else float(valid)
    return FieldAccuracy(accuracy, correct, total, per_field, extra, valid)


def generic_path(path: str) -> str:
    """The path with row numbers dropped: "line_items_table.line_items[].unit_price"."""
    return re.sub(r"\[\d+\]", "[]", path)


def aggregate(results: Iterable[FieldAccuracy]) -> dict[str, Any]:
    """Overall (micro: Σcorrect / Σtotal), mean per-document, per-field and per-region accuracy.

    Per-region figures need region-prefixed paths (full labels, or `field_accuracy_details(region=...)`).
    """
    results = list(results)
    counts: dict[str, dict[str, list[int]]] = {"per_field": defaultdict(lambda: [0, 0]),
                                               "per_region": defaultdict(lambda: [0, 0])}
    for result in results:
        for path, ok in result.per_field.items():
            keys = {"per_field": generic_path(path)}
            head = path.split(".", 1)[0]
            if head in REGIONS and "." in path:
                keys["per_region"] = head
            for table, key in keys.items():
                counts[table][key][0] += int(ok)
                counts[table][key][1] += 1
    correct, total = sum(r.correct for r in results), sum(r.total for r in results)
    return {
        "documents": len(results),
        "overall": correct / total if total else 0.0,
        "correct": correct,
        "total": total,
        "mean_document_accuracy": sum(r.accuracy for r in results) / len(results) if results else 0.0,
        "invalid_predictions": sum(not r.valid for r in results),
        **{
            table: {k: {"accuracy": c / t, "correct": c, "total": t} for k, (c, t) in sorted(rows.items())}
            for table, rows in counts.items()
        },
    }


# ----------------------------------------------------------------------------- Donut metrics


def _canonicalize(obj: Any, name: str = "", locale: str | None = None) -> Any:
    if isinstance(obj, dict):
        return {k: _canonicalize(v, str(k), locale) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_canonicalize(v, name, locale) for v in obj]
    value = canonical_value(name, obj, locale)
    if value is None:
        return obj
    if field_type(name) in ("money", "decimal"):
        return format_decimal(value)
    if field_type(name) == "date":
        return value.isoformat()
    return value


def donut_normalize(data: Any) -> Any:
    """Donut's `normalize_dict`: keys sorted by (length, name), scalars wrapped in lists, empties dropped."""
    if not data:
        return {}
    if isinstance(data, dict):
        out = {}
        for key in sorted(data, key=lambda k: (len(k), k)):
            value = donut_normalize(data[key])
            if value:
                out[key] = value if isinstance(value, list) else [value]
        return out
    if isinstance(data, list):
        if all(isinstance(item, dict) for item in data):
            return [n for item in data if (n := donut_normalize(item))]
        return [str(item).strip() for item in data if type(item) in (str, int, float) and str(item).strip()]
    return [str(data).strip()]


def _flatten(data: Any, key: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict):
        return [pair for k, v in data.items() for pair in _flatten(v, f"{key}.{k}" if key else k)]
    if isinstance(data, list):
        return [pair for item in data for pair in _flatten(item, key)]
    return [(key, data)]


def _prepare(obj: Any, canonical: bool, locale: str | None) -> Any:
    obj = as_document(obj) if isinstance(obj, dict) else {}
    return donut_normalize(_canonicalize(obj, locale=locale) if canonical else obj)


def field_f1(pred: dict | None, gt: dict, *, canonical: bool = True, locale: str | None = None) -> float:
    """Donut's field F1 = TP / (TP + (FP + FN) / 2) over flattened (key path, value) pairs."""
    pred_pairs = _flatten(_prepare(pred, canonical, locale))
    answer = _flatten(_prepare(gt, canonical, locale))
    tp = fp = 0
    for pair in pred_pairs:
        if pair in answer:
            tp += 1
            answer.remove(pair)
        else:
            fp += 1
    denominator = tp + (fp + len(answer)) / 2
    return tp / denominator if denominator else 1.0


class _Node:
    """A Donut tree node; `text` and `weight` (insert/delete cost) are precomputed for speed."""

    __slots__ = ("label", "children", "leaf", "text", "weight")

    def __init__(self, label: str) -> None:
        self.label, self.children = label, []
        self.leaf = label.startswith("<leaf>")
        self.text = label[len("<leaf>"):] if self.leaf else label
        self.weight = len(self.text) if self.leaf else 1


def _tree(data: Any, label: str = "<root>") -> _Node:
    node = _Node(label)
    if isinstance(data, dict):
        node.children = [_tree(value, key) for key, value in data.items()]
    elif isinstance(data, list):
        if all(isinstance(item, dict) for item in data):
            node.children = [_tree(item, "<subtree>") for item in data]
        else:
            node.children = [_Node(f"<leaf>{item}") for item in data]
    return node


class _DonutCosts(Config):
    """Donut's costs: a leaf weighs its string length, an inner node 1; leaf rename = Levenshtein."""

    def delete(self, node: _Node) -> int:
        return node.weight

    insert = delete

    def rename(self, node1: _Node, node2: _Node) -> int:
        if node1.leaf and node2.leaf:
            return Levenshtein.distance(node1.text, node2.text)
        if node1.leaf != node2.leaf:
            return 1 + (node1.weight if node1.leaf else node2.weight)
        return int(node1.label != node2.label)

    def children(self, node: _Node) -> list[_Node]:
        return node.children


def _ted(a: _Node, b: _Node) -> float:
    return APTED(a, b, _DonutCosts()).compute_edit_distance()


def tree_edit_accuracy(pred: dict | None, gt: dict, *, canonical: bool = True, locale: str | None = None) -> float:
    """Donut's nTED accuracy: max(0, 1 − TED(pred, gt) / TED(empty, gt))."""
    answer = _tree(_prepare(gt, canonical, locale))
    worst = _ted(_tree({}), answer)
    distance = _ted(_tree(_prepare(pred, canonical, locale)), answer)
    if not worst:
        return float(distance == 0)
    return max(0.0, 1.0 - distance / worst)


def numeric_accuracy(pred: Any, gt: dict) -> float:
    """Share of the ground truth's money/decimal fields (line items included) that are exactly right.

    Works on a region's fields or a full label like `field_accuracy`; 1.0 when `gt` has none.
    """
    return field_accuracy(pred, gt, field_types=("money", "decimal"))
