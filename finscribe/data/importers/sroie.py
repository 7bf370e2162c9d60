"""SROIE (ICDAR 2019 Robust Reading Challenge on Scanned Receipts OCR and Information Extraction).

The published data has, per receipt `X`: the scan `X.jpg`; the task 1 box file `X.txt`, one
text line per row as eight corner coordinates and the text (`x1,y1,x2,y2,x3,y3,x4,y4,TEXT`, the
text may itself contain commas); the task 3 key file `X.txt`, a JSON object
`{"company", "date", "address", "total"}`. They are read from three sub-folders of the input:
`img/` (or `images/`), `box/` and `entities/` (or `key/`), the layout the released archives
unpack to.

Mapping: company → vendor_block.vendor_name, address → vendor_block.address,
date → invoice_meta.invoice_date, total → totals_section.total. The word boxes propose each
region's crop: the box lines whose text is part of the key's value (vendor_block), or that hold
the value (date, total: the whole row). When no line matches, the crop is the whole receipt and
the report says so. Other keys are reported as unmapped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from finscribe.data.importers.common import Box, ImportReport, open_image, union_box, write_pair
from finscribe.data.normalize import Rules

KEY_MAP = {"company": ("vendor_block", "vendor_name"), "address": ("vendor_block", "address"),
           "date": ("invoice_meta", "invoice_date"), "total": ("totals_section", "total")}
# SROIE receipts are Malaysian: day first, amounts with a decimal point.
DATE_FORMATS = ("DD/MM/YYYY", "DD-MM-YYYY", "DD.MM.YYYY", "YYYY-MM-DD", "DD/MM/YY", "DD-MM-YY",
                "D MMM YYYY", "DD MMM YYYY", "DD-MMM-YYYY", "DD MMM YY")


def _folder(root: Path, *names: str) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def read_boxes(path: Path) -> list[tuple[Box, str]]:
    """(axis-aligned box, text) of every line of a task 1 box file; a ValueError names a malformed row."""
    lines = []
    for n, row in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not row.strip():
            continue
        parts = row.split(",", 8)
        if len(parts) < 9:
            raise ValueError(f"{path}:{n}: expected x1,y1,...,x4,y4,TEXT")
        xs, ys = [int(float(v)) for v in parts[0:8:2]], [int(float(v)) for v in parts[1:8:2]]
        lines.append(((min(xs), min(ys), max(xs), max(ys)), parts[8].strip()))
    return lines


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.upper()).strip()


def _matching(lines: list[tuple[Box, str]], value: str, part_of_value: bool) -> list[Box]:
    value = _norm(value)
    if part_of_value:  # multi-line values (company, address): lines that are pieces of it
        return [box for box, text in lines if len(_norm(text)) >= 3 and _norm(text) in value]
    hits = [box for box, text in lines if value and value in _norm(text)]
    return hits[-1:]  # the last occurrence: the total is printed after the items (and the subtotal)


def import_sroie(input_dir: Path, output: Path, rules: Rules | None = None) -> ImportReport:
    """Import a SROIE folder (img/, box/, entities/) into output/crops and output/annotations."""
    rules = rules or Rules(DATE_FORMATS, ".", None)
    report = ImportReport("sroie", str(input_dir))
    images, boxes, keys = _folder(input_dir, "img", "images"), _folder(input_dir, "box"), \
        _folder(input_dir, "entities", "key")
    if images is None or keys is None:
        raise FileNotFoundError(f"{input_dir}: expected sub-folders img/ (receipt scans) and entities/ "
                                "(task 3 key files), and box/ for the word boxes")
    for key_file in sorted(keys.glob("*.txt")):
        stem, source = key_file.stem, str(key_file)
        try:
            entities: Any = json.loads(key_file.read_text(encoding="utf-8", errors="replace"))
        except json.JSONDecodeError as err:
            report.miss(source, "", None, f"key file is not JSON ({err.msg})")
            continue
        if not isinstance(entities, dict):
            report.miss(source, "", entities, "key file is not a JSON object")
            continue
        image_path = next((p for p in sorted(images.glob(f"{stem}.*"))), None)
        image = open_image(image_path, report, source) if image_path else None
        if image is None:
            if image_path is None:
                report.miss(source, "image", stem, f"no image {stem}.* in {images}")
            continue
        lines: list[tuple[Box, str]] = []
        box_file = boxes / f"{stem}.txt" if boxes else None
        if box_file is not None and box_file.is_file():
            try:
                lines = read_boxes(box_file)
            except ValueError as err:
                report.miss(str(box_file), "boxes", None, str(err))
        regions: dict[str, dict[str, Any]] = {}
        region_boxes: dict[str, list[Box]] = {}
        for key, value in entities.items():
            if key not in KEY_MAP:
                report.miss(source, key, value, "no field of the data contract for this key")
                continue
            if not isinstance(value, str) or not value.strip():
                report.miss(source, key, value, "empty or not a string")
                continue
            region, name = KEY_MAP[key]
            regions.setdefault(region, {})[name] = value.strip()
            region_boxes.setdefault(region, []).extend(_matching(lines, value, part_of_value=key in ("company", "address")))
        for region, fields in regions.items():
            found = region_boxes.get(region)
            box = union_box(found, image.size, full_width=region != "vendor_block") if found else None
            if write_pair(output, stem, image, box, region, fields, source, rules, report) and box is None:
                report.whole_image.append(f"{stem}__{region}")
    return report
