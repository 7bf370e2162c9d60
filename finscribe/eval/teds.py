"""TEDS (Tree-Edit-Distance-based Similarity) exactly as PubTabNet defines it.

Zhong et al. 2020 ("Image-based table recognition", PubTabNet): both HTML tables become trees
(`table` and its descendant elements; a `td` is a leaf carrying colspan, rowspan and its
content), APTED computes the edit distance with insert/delete cost 1 and rename cost 1 when the
tag, colspan or rowspan differ, else — for `td` — the normalised Levenshtein distance of the
cell content tokens (the characters of its text plus its inner tags such as `<b>`, `</b>`).
TEDS = 1 − TED / max(#elements under pred's table, #elements under gt's table), where the
counts include inner tags of cells (as the reference counts `.//*`). The structure-only
variant gives every cell empty content. Parsing uses lxml's HTML parser, as the reference does,
so results match its published values (`../shared/data/teds_cases.json`, tested to 1e-9).

`line_items_to_html` renders line items as such a table and `table_teds` scores a predicted
`line_items_table` against the label (canonical values, so "1,234.50" == "1234.5").
"""

from __future__ import annotations

import html as html_escape
from typing import Any

from apted import APTED, Config
from lxml import etree, html
from rapidfuzz.distance import Levenshtein

from finscribe.data.schema import LINE_ITEM_FIELDS, format_decimal, format_money
from finscribe.eval.numeric import parse_amount, parse_decimal


class _Cell:
    """A node of the table tree: tag, colspan/rowspan (td only) and content tokens (td only)."""

    __slots__ = ("tag", "colspan", "rowspan", "content", "children")

    def __init__(self, tag: str, colspan: int | None, rowspan: int | None, content: list[str] | None) -> None:
        self.tag, self.colspan, self.rowspan, self.content = tag, colspan, rowspan, content
        self.children: list[_Cell] = []


class _TedsCosts(Config):
    def rename(self, node1: _Cell, node2: _Cell) -> float:
        if (node1.tag, node1.colspan, node1.rowspan) != (node2.tag, node2.colspan, node2.rowspan):
            return 1.0
        if node1.tag == "td" and (node1.content or node2.content):
            longest = max(len(node1.content), len(node2.content))
            return Levenshtein.distance(node1.content, node2.content) / longest
        return 0.0

    def children(self, node: _Cell) -> list[_Cell]:
        return node.children


def _cell_tokens(node: etree._Element) -> list[str]:
    """PubTabNet's tokenisation of a cell: its text characters and inner tags, in document order."""
    tokens: list[str] = []

    def walk(element: etree._Element) -> None:
        tokens.append(f"<{element.tag}>")
        if element.text is not None:
            tokens.extend(element.text)
        for child in element:
            walk(child)
        if element.tag != "unk":
            tokens.append(f"</{element.tag}>")
        if element.tag != "td" and element.tail is not None:
            tokens.extend(element.tail)

    walk(node)
    return tokens[1:-1]  # drop the cell's own <td> and </td>


def _tree(node: etree._Element, structure_only: bool) -> _Cell:
    if node.tag == "td":
        content = [] if structure_only else _cell_tokens(node)
        return _Cell("td", int(node.attrib.get("colspan", "1")), int(node.attrib.get("rowspan", "1")), content)
    cell = _Cell(node.tag, None, None, None)
    cell.children = [_tree(child, structure_only) for child in node]
    return cell


def teds(pred_html: str, gt_html: str, structure_only: bool = False) -> float:
    """TEDS in [0, 1] of two HTML documents holding a `<table>` (under <body>, as in PubTabNet).

    An empty string or a document without `body/table` scores 0.0 (as in the reference). A bare
    `<table>...</table>` is accepted: lxml wraps it into html/body.
    """
    if not pred_html or not gt_html:
        return 0.0
    parser = html.HTMLParser(remove_comments=True, encoding="utf-8")
    pred_root = html.fromstring(pred_html, parser=parser)
    gt_root = html.fromstring(gt_html, parser=parser)
    pred_tables, gt_tables = _tables(pred_root), _tables(gt_root)
    if not pred_tables or not gt_tables:
        return 0.0
    pred_table, gt_table = pred_tables[0], gt_tables[0]
    n_nodes = max(len(pred_table.xpath(".//*")), len(gt_table.xpath(".//*")))
    distance = APTED(_tree(pred_table, structure_only), _tree(gt_table, structure_only), _TedsCosts())
    return 1.0 - float(distance.compute_edit_distance()) / n_nodes


def _tables(root: etree._Element) -> list[etree._Element]:
    if root.tag == "table":  # lxml returns a bare fragment's element itself
        return [root]
    return root.xpath("body/table")


# ----------------------------------------------------------------------------- line items


def _cell_text(name: str, value: Any, currency: str | None) -> str:
    if name == "description":
        return " ".join(str(value).split()) if value is not None else ""
    number = parse_decimal(value) if name == "quantity" else parse_amount(value)
    if number is None:
        return "" if value is None else str(value).strip()
    if name != "quantity" and currency:
        return format_money(number, currency)
    return format_decimal(number)  # same form on both sides: "1234.5" for 1234.50 and 1234.5


def line_items_to_html(rows: list[dict], currency: str | None = None,
                       columns: tuple[str, ...] = LINE_ITEM_FIELDS) -> str:
    """An HTML table: a header row, then one row per item (description, quantity, unit_price,
    line_total, or the given `columns`), values in canonical form (money per `currency` when given)."""
    cell = lambda text: f"<td>{html_escape.escape(text)}</td>"  # noqa: E731
    header = "<tr>" + "".join(cell(name) for name in columns) + "</tr>"
    body = "".join(
        "<tr>" + "".join(
            cell(_cell_text(name, row.get(name) if isinstance(row, dict) else None, currency))
            for name in columns
        ) + "</tr>"
        for row in rows
    )
    return f"<html><body><table><thead>{header}</thead><tbody>{body}</tbody></table></body></html>"


def table_teds(
    pred_fields: dict | None, gt_fields: dict, structure_only: bool = False, currency: str | None = None
) -> float:
    """TEDS of a predicted `line_items_table` fields dict against the label's; 0.0 if unreadable."""
    gt_rows = gt_fields.get("line_items", []) if isinstance(gt_fields, dict) else []
    if not isinstance(pred_fields, dict) or not isinstance(pred_fields.get("line_items"), list):
        return 0.0
    # Score the columns the label has: a partial annotation (e.g. receipts without unit prices)
    # must not count the model's extra column against it.
    present = tuple(f for f in LINE_ITEM_FIELDS if any(isinstance(r, dict) and f in r for r in gt_rows))
    columns = present or LINE_ITEM_FIELDS
    return teds(
        line_items_to_html(pred_fields["line_items"], currency, columns),
        line_items_to_html(gt_rows, currency, columns),
        structure_only=structure_only,
    )
