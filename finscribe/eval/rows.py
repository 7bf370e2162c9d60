"""Pairing predicted table rows with the ground truth's: the ONE row aligner of FinScribe.

Evaluation (`field_accuracy`) and mining (`error_classifier`) both pair rows with it, so a row
the model dropped or invented is judged the same way by both: the alignment keeps the row order
(a table is read top to bottom) and minimises the number of wrong fields, a missing or extra row
costing as much as a row with every field wrong. On ties a pair is preferred to a gap: a wrong
row is a misread before it is a missing one.

    from finscribe.eval.rows import align_rows
    align_rows(pred_rows, gt_rows, currency="USD")  # [(pred index | None, gt index | None), ...]
"""

from __future__ import annotations

from typing import Any

from finscribe.data.schema import LINE_ITEM_FIELDS
from finscribe.eval.numeric import values_equal


def row_cost(pred_row: Any, gt_row: Any, currency: str | None) -> int:
    """Fields that differ between two rows (a key on one side only counts as a difference)."""
    if not isinstance(pred_row, dict) or not isinstance(gt_row, dict):
        return 0 if pred_row == gt_row else len(LINE_ITEM_FIELDS)
    keys = set(gt_row) | set(pred_row)
    return sum(1 for k in keys
               if k not in pred_row or k not in gt_row or not values_equal(k, pred_row[k], gt_row[k], currency))


def align_rows(pred_rows: list[Any], gt_rows: list[Any], currency: str | None) -> list[tuple[int | None, int | None]]:
    """Minimum-cost order-preserving alignment → [(pred index | None, gt index | None)] in order."""
    n, m = len(pred_rows), len(gt_rows)
    gap = len(LINE_ITEM_FIELDS)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        cost[i][0] = i * gap
    for j in range(1, m + 1):
        cost[0][j] = j * gap
    pair = {}
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            pair[i, j] = row_cost(pred_rows[i - 1], gt_rows[j - 1], currency)
            cost[i][j] = min(cost[i - 1][j - 1] + pair[i, j], cost[i - 1][j] + gap, cost[i][j - 1] + gap)
    steps: list[tuple[int | None, int | None]] = []
    i, j = n, m
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + pair[i, j]:
            steps.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif j and cost[i][j] == cost[i][j - 1] + gap:
            steps.append((None, j - 1))
            j -= 1
        else:
            steps.append((i - 1, None))
            i -= 1
    return steps[::-1]
