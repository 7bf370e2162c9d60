"""TEDS against the PubTabNet reference values, hand cases and the line-item table helpers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finscribe.eval.teds import line_items_to_html, table_teds, teds

# Reference pairs with the values the PubTabNet reference implementation gives (facts, copied from
# the project's shared data so that the suite runs in a plain clone).
CASES_PATH = Path(__file__).parent / "data" / "teds_cases.json"
CASES = json.loads(CASES_PATH.read_text(encoding="utf-8"))["cases"] if CASES_PATH.exists() else []
needs_cases = pytest.mark.skipif(not CASES, reason=f"reference TEDS cases not found at {CASES_PATH}")


def _doc(body: str) -> str:
    return f"<html><body><table>{body}</table></body></html>"


@needs_cases
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_reference_values(case):
    assert teds(case["pred"], case["true"]) == pytest.approx(case["expected_teds"], abs=1e-9)
    assert teds(case["pred"], case["true"], structure_only=True) == pytest.approx(
        case["computed_teds_struct"], abs=1e-9
    )


@needs_cases
def test_reference_cases_include_imperfect_predictions():
    # otherwise matching them would prove little
    assert sum(c["expected_teds"] < 0.99 for c in CASES) >= 5


def test_identical_tables_score_one():
    table = _doc("<thead><tr><td>a</td><td>b</td></tr></thead><tbody><tr><td>1</td><td>2</td></tr></tbody>")
    assert teds(table, table) == 1.0
    assert teds(table, table, structure_only=True) == 1.0


def test_hand_cases():
    gt = _doc("<tr><td>ab</td></tr>")  # nodes under table: tr, td = 2
    # content tokens [a, b] vs [a, c]: Levenshtein 1 / 2 → TED 0.5
    assert teds(_doc("<tr><td>ac</td></tr>"), gt) == pytest.approx(1 - 0.5 / 2)
    # colspan differs: rename cost 1
    assert teds(_doc('<tr><td colspan="2">ab</td></tr>'), gt) == pytest.approx(1 - 1 / 2)
    # inner tags are tokens and count as nodes: [<b>, a, b, </b>] vs [a, b] = 2 / 4; max(3, 2) nodes
    assert teds(_doc("<tr><td>ab</td></tr>"), _doc("<tr><td><b>ab</b></td></tr>")) == pytest.approx(1 - 0.5 / 3)
    # one extra row (tr + td inserted) against 2 nodes in gt: max(4, 2) = 4
    assert teds(_doc("<tr><td>ab</td></tr><tr><td>ab</td></tr>"), gt) == pytest.approx(1 - 2 / 4)


def test_structure_only_ignores_content():
    gt = _doc("<tr><td>Total</td><td>1234.50</td></tr>")
    pred = _doc("<tr><td>Sum</td><td>99</td></tr>")
    assert teds(pred, gt) < 1.0
    assert teds(pred, gt, structure_only=True) == 1.0
    assert teds(_doc("<tr><td>Sum</td></tr>"), gt, structure_only=True) == pytest.approx(1 - 1 / 3)


def test_empty_or_tableless_input_scores_zero():
    gt = _doc("<tr><td>a</td></tr>")
    assert teds("", gt) == 0.0
    assert teds("<html><body><p>no table</p></body></html>", gt) == 0.0


ROWS = [
    {"description": "Bolt  M8", "quantity": "10", "unit_price": "1234.50", "line_total": "12345.00"},
    {"description": "Nut <M8>", "quantity": "2.5", "unit_price": "0.10", "line_total": "0.25"},
]


def test_line_items_to_html_has_a_header_and_canonical_escaped_cells():
    html = line_items_to_html(ROWS, currency="USD")
    assert html.startswith("<html><body><table><thead><tr><td>description</td><td>quantity</td>")
    assert html.count("<tr>") == 3
    assert "<td>Bolt M8</td>" in html  # whitespace collapsed
    assert "<td>Nut &lt;M8&gt;</td>" in html  # escaped, so it stays one cell
    assert "<td>1234.50</td>" in html
    assert teds(html, html) == 1.0


def test_table_teds_compares_values_not_spellings():
    gt = {"line_items": ROWS}
    spelled = {"line_items": [dict(ROWS[0], unit_price="1,234.50", line_total="12 345"), ROWS[1]]}
    assert table_teds(spelled, gt) == 1.0
    assert table_teds(spelled, gt, currency="USD") == 1.0
    missing_row = {"line_items": ROWS[:1]}
    # gt: thead, tbody, 3 tr, 12 td = 17 nodes; a missing row deletes 1 tr + 4 td
    assert table_teds(missing_row, gt) == pytest.approx(1 - 5 / 17)
    wrong_cell = {"line_items": [ROWS[0], dict(ROWS[1], line_total="0.26")]}
    assert 1 - 1 / 17 < table_teds(wrong_cell, gt) < 1.0
    assert table_teds(wrong_cell, gt, structure_only=True) == 1.0
    assert table_teds(None, gt) == 0.0
    assert table_teds({"line_items": "oops"}, gt) == 0.0
