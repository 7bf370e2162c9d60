"""Where amounts go wrong: accuracy per money field and per digit position.

A wrong `total` says little about why it is wrong. Aligning the predicted and the reference
amount at the decimal point and comparing digit by digit separates a model that reads (wrong in
one place, often the least significant one) from one that guesses from its prior (right in the
leading digits a layout makes likely, wrong in the rest), and shows which positions a run
stalls on. Issue 17 asks every unfinished goal to be reported this way.

Position names count from the decimal point: `10^0` is the units digit, `10^-2` the cents.
Only the reference's positions are scored (from its most significant digit down to its last
decimal); a prediction with fewer digits gets its missing positions wrong, an amount that does
not parse (or is missing) gets every position wrong; the sign is not scored. Scalar money fields only (row amounts are
paired by the row aligner in field accuracy; their digits are not scored here).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from finscribe.data.schema import field_type
from finscribe.eval.field_accuracy import leaves, lookup
from finscribe.eval.numeric import parse_amount


def _digits(amount: Decimal) -> dict[int, str]:
    """{power of ten: digit} of |amount| as printed (`Decimal("120.50")` → {2: '1', 1: '2', 0: '0', -1: '5', -2: '0'})."""
    sign, digits, exponent = abs(amount).as_tuple()
    assert isinstance(exponent, int)  # finite: parse_amount never returns NaN or infinities
    top = len(digits) - 1 + exponent
    return {top - i: str(d) for i, d in enumerate(digits)}


def position_name(power: int) -> str:
    return f"10^{power}"


def amount_digit_scores(parsed: Any, target: dict[str, Any]) -> list[tuple[str, int, bool]]:
    """(field path, power of ten, right?) for every digit of every scalar amount in `target`."""
    scores = []
    for path, name, reference in leaves(target):
        # scalar money fields only: row amounts ("line_items[0].line_total") are paired by field accuracy
        ref = parse_amount(reference) if "[" not in path and field_type(name) == "money" else None
        if ref is None:
            continue
        guess = parse_amount(lookup(parsed, path)) if isinstance(parsed, dict) else None
        predicted = {} if guess is None else _digits(guess)
        for power, digit in _digits(ref).items():
            # a position the parsed prediction does not print is a zero of its value ("12.5" = "12.50")
            right = guess is not None and predicted.get(power, "0") == digit
            scores.append((path, power, right))
    return scores


def digit_position_accuracy(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{field path (and "all amounts"): {position: {correct, total, accuracy}}} over scored rows
    (predictions.jsonl rows: `parsed` and `target`), positions from most to least significant."""
    counts: dict[str, dict[int, list[int]]] = {}
    for row in rows:
        target = json.loads(row["target"])
        for path, power, right in amount_digit_scores(row.get("parsed"), target):
            for name in (path, "all amounts"):
                cell = counts.setdefault(name, {}).setdefault(power, [0, 0])
                cell[0] += right
                cell[1] += 1
    return {name: {position_name(p): {"correct": c, "total": t, "accuracy": c / t}
                   for p, (c, t) in sorted(cells.items(), reverse=True)}
            for name, cells in sorted(counts.items(), key=lambda item: (item[0] == "all amounts", item[0]))}


def digit_table(positions: dict[str, dict[str, dict[str, Any]]], min_total: int = 1) -> list[str]:
    """Markdown table: one row per field, one column per position (share of digits right)."""
    if not positions:
        return []
    powers = sorted({int(p.split("^")[1]) for cells in positions.values() for p in cells}, reverse=True)
    columns = [position_name(p) for p in powers]
    lines = ["| field | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, cells in positions.items():
        values = [f"{100 * cells[c]['accuracy']:.0f} % ({cells[c]['total']})"
                  if c in cells and cells[c]["total"] >= min_total else "" for c in columns]
        lines.append(f"| {name} | " + " | ".join(values) + " |")
    return lines
