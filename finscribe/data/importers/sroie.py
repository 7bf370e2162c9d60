"""SROIE (ICDAR 2019 Robust Reading Challenge on Scanned Receipts OCR and Information Extraction).

The published data has, per receipt `X`: the scan `X.jpg`; the task 1 box file, one text line per
row as eight corner coordinates and the text (`x1,y1,x2,y2,x3,y3,x4,y4,TEXT`, the text may itself
contain commas); the task 2/3 key file, a JSON object `{"company", "date", "address", "total"}`.
Copies differ in where they put them, so the importer looks under the input folder (any depth)
and matches the three by file stem:

* ICDAR's own folders: `0325updated.task1train(626p)/` (scans + box `X.txt`), `...task2train(626p)/`
  (scans + key `X.txt`), `task3-test(347p)/` ...;
* `img/` (or `images/`) + `box/` + `entities/` or `key/`, boxes as `.txt` or `.csv`, keys as `.txt`
  or `.json` (the common public copies, `train/` and `test/` beside each other included).

A `.txt`/`.csv`/`.json` file is a key file when it holds a JSON object, a box file when its lines
are eight numbers and a text; anything else is left alone. An import that finds no receipt to map
fails with one line naming what it looked for (`LOOKED_FOR`) and what it found.

Mapping: company → vendor_block.vendor_name, address → vendor_block.address,
date → invoice_meta.invoice_date, total → totals_section.total, with the currency (`MYR`: SROIE
receipts are Malaysian, printed "RM"; `--currency` overrides) beside it, which also fixes the
amount's two decimals ("9" → "9.00"). The word boxes propose each region's crop: the box lines
whose text is part of the key's value (vendor_block), or that hold the value (date; the total's
amount, "RM9.00" holding "9.00": the whole row). When no line matches, the crop is the whole
receipt and the report says so. Other keys are reported as unmapped.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from finscribe.data.importers.common import Box, ImportReport, open_image, union_box, write_pair
from finscribe.data.normalize import Rules

KEY_MAP = {"company": ("vendor_block", "vendor_name"), "address": ("vendor_block", "address"),
           "date": ("invoice_meta", "invoice_date"), "total": ("totals_section", "total")}
# SROIE receipts are Malaysian: day first, amounts with a decimal point, in ringgit.
DATE_FORMATS = ("DD/MM/YYYY", "DD-MM-YYYY", "DD.MM.YYYY", "YYYY-MM-DD", "DD/MM/YY", "DD-MM-YY",
                "D MMM YYYY", "DD MMM YYYY", "DD-MMM-YYYY", "DD MMM YY", "DD-MMM-YY", "DD MMM, YYYY",
                "MMM DD, YYYY", "YYYY/MM/DD", "DD.MM.YY")
CURRENCY = "MYR"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
LOOKED_FOR = ("receipt scans *.jpg|*.jpeg|*.png|*.tif (img/, images/, ICDAR task folders), key files *.txt|*.json holding a JSON object with "
              "company/date/address/total (entities/, key/, ICDAR task2/task3 folders) and word-box files "
              "*.txt|*.csv of x1,y1,...,x4,y4,TEXT lines (box/, ICDAR task1 folders), at any depth, matched by stem")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8-sig", errors="replace")


def _box_rows(text: str, csv_file: bool) -> list[list[str]]:
    """Rows of a box file split into eight coordinates and the text (a .csv may quote the text)."""
    if csv_file:
        return [row[:8] + [",".join(row[8:])] for row in csv.reader(io.StringIO(text)) if row]
    return [row.split(",", 8) for row in text.splitlines() if row.strip()]


def _is_box_row(parts: list[str]) -> bool:
    return len(parts) >= 9 and all(_NUMBER.fullmatch(v.strip()) for v in parts[:8])


def file_kind(path: Path) -> str | None:
    """"key" (a JSON object), "box" (lines of eight numbers and a text) or None."""
    try:
        text = _text(path)
    except OSError:
        return None
    if text.lstrip().startswith("{"):
        try:
            return "key" if isinstance(json.loads(text), dict) else None
        except json.JSONDecodeError:
            return None
    rows = _box_rows("\n".join(text.splitlines()[:3]), path.suffix.lower() == ".csv")
    return "box" if rows and any(_is_box_row(r) for r in rows[:2]) else None  # row 1 may be a header


def scan(input_dir: Path) -> tuple[dict[str, Path], dict[str, Path], dict[str, Path]]:
    """(images, key files, box files) under `input_dir` at any depth, by file stem (first found wins)."""
    images: dict[str, Path] = {}
    keys: dict[str, Path] = {}
    boxes: dict[str, Path] = {}
    for path in sorted(input_dir.rglob("*")):
        if any(part.startswith(".") for part in path.relative_to(input_dir).parts) or not path.is_file():
            continue
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            images.setdefault(path.stem, path)
        elif suffix in (".txt", ".csv", ".json"):
            kind = file_kind(path)
            if kind is not None:
                {"key": keys, "box": boxes}[kind].setdefault(path.stem, path)
    return images, keys, boxes


def read_boxes(path: Path) -> list[tuple[Box, str]]:
    """(axis-aligned box, text) of every line of a task 1 box file; a ValueError names a malformed row."""
    lines = []
    for n, parts in enumerate(_box_rows(_text(path), path.suffix.lower() == ".csv"), start=1):
        if not _is_box_row(parts):
            if n == 1:  # a header row ("x1,y1,...,text")
                continue
            raise ValueError(f"{path}:{n}: expected x1,y1,...,x4,y4,TEXT")
        xs, ys = [int(float(v)) for v in parts[0:8:2]], [int(float(v)) for v in parts[1:8:2]]
        lines.append(((min(xs), min(ys), max(xs), max(ys)), parts[8].strip()))
    return lines


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.upper()).strip()


def _matching(lines: list[tuple[Box, str]], value: str, key: str) -> list[Box]:
    value = _norm(value)
    if key in ("company", "address"):  # multi-line values: lines that are pieces of it
        return [box for box, text in lines if len(_norm(text)) >= 3 and _norm(text) in value]
    if key == "total":  # the amount as printed on the row ("TOTAL RM9.00" holds "RM 9.00"'s 9.00)
        amount = next(iter(_NUMBER.findall(value.replace(",", ""))), None)
        if amount is None:
            return []
        pattern = re.compile(r"(?<![\d.])" + re.escape(amount) + r"(?![\d])")
        hits = [box for box, text in lines if pattern.search(_norm(text).replace(",", ""))]
    else:
        hits = [box for box, text in lines if value and value in _norm(text)]
    return hits[-1:]  # the last occurrence: the total is printed after the items (and the subtotal)


def import_sroie(input_dir: Path, output: Path, rules: Rules | None = None) -> ImportReport:
    """Import a SROIE folder (any of the layouts above) into output/crops and output/annotations."""
    rules = rules or Rules(DATE_FORMATS, ".", CURRENCY)
    report = ImportReport("sroie", str(input_dir), looked_for=LOOKED_FOR)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"{input_dir}: not a folder; expected a SROIE folder ({LOOKED_FOR})")
    images, keys, boxes = scan(input_dir)
    report.found = {"images": len(images), "key files": len(keys), "box files": len(boxes),
                    "receipts (key + image)": len(keys.keys() & images.keys())}
    for stem, key_file in sorted(keys.items()):
        source = str(key_file)
        entities: Any = json.loads(_text(key_file))  # file_kind checked it is a JSON object
        image_path = images.get(stem)
        image = open_image(image_path, report, source) if image_path else None
        if image is None:
            if image_path is None:
                report.miss(source, "image", stem, f"no image {stem}.* under {input_dir}")
            continue
        lines: list[tuple[Box, str]] = []
        if stem in boxes:
            try:
                lines = read_boxes(boxes[stem])
            except ValueError as err:
                report.miss(str(boxes[stem]), "boxes", None, str(err))
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
            region_boxes.setdefault(region, []).extend(_matching(lines, value, key))
        for region, fields in regions.items():
            found = region_boxes.get(region)
            box = union_box(found, image.size, full_width=region != "vendor_block") if found else None
            if write_pair(output, stem, image, box, region, fields, source, rules, report,
                          add_currency=rules.currency if region == "totals_section" else None) and box is None:
                report.whole_image.append(f"{stem}__{region}")
    return report
