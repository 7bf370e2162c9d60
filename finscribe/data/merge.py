"""One document from the documents of its pages (a multi-page PDF or TIFF invoice).

    from finscribe.data.merge import merge_pages
    document, conflicts = merge_pages([page1_document, page2_document])

Each page gives a partial `{region: fields}` document: the header on page 1, the totals on the
last page, line items running over several. The merge follows how invoices are printed:

* `line_items_table.line_items`: the pages' lists concatenated in page order;
* `totals_section`: the LAST page that has a field wins (earlier pages may print running
  subtotals carried forward; the final figures close the document);
* every other field: the FIRST page that has it wins (the header is on page 1).

A value that another page gives differently is not silently dropped: it is reported in
`conflicts` (region, field, the page kept and its value, the other page and its value).
"""

from __future__ import annotations

from typing import Any

LAST_PAGE_WINS = frozenset({"totals_section"})
LINE_ITEMS = ("line_items_table", "line_items")


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def merge_pages(documents: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(merged document, conflicts) of per-page documents given in page order (see module doc)."""
    merged: dict[str, Any] = {}
    source: dict[tuple[str, str | None], int] = {}  # (region, field) → page number kept
    conflicts: list[dict[str, Any]] = []

    def keep(region: str, name: str | None, value: Any, page: int, target: dict[str, Any], key: str) -> None:
        if _empty(value):
            return
        if key not in target or _empty(target[key]):
            target[key], source[(region, name)] = value, page
            return
        if target[key] == value:
            return
        kept_page = source[(region, name)]
        if region in LAST_PAGE_WINS:
            conflicts.append({"region": region, "field": name, "page": page, "value": value,
                              "other_page": kept_page, "other_value": target[key]})
            target[key], source[(region, name)] = value, page
        else:
            conflicts.append({"region": region, "field": name, "page": kept_page, "value": target[key],
                              "other_page": page, "other_value": value})

    for page, document in enumerate(documents, start=1):
        for region, fields in (document or {}).items():
            if not isinstance(fields, dict):  # a malformed region value: treated as one field
                keep(region, None, fields, page, merged, region)
                continue
            target = merged.setdefault(region, {})
            if not isinstance(target, dict):
                continue
            for name, value in fields.items():
                if (region, name) == LINE_ITEMS and isinstance(value, list):
                    target.setdefault(name, [])
                    if isinstance(target[name], list):
                        target[name] = target[name] + value
                        continue
                keep(region, name, value, page, target, name)
    return {region: fields for region, fields in merged.items() if not _empty(fields)}, conflicts
