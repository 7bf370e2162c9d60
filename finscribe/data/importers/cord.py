"""CORD v2 (Consolidated Receipt Dataset, Indonesian receipts) in its published JSON form.

Each receipt is an image and a ground-truth JSON whose `gt_parse` holds `menu` (a list of items,
or one item as an object: `nm` name, `cnt` count, `unitprice`, `price` = the line's amount, and
more), `sub_total` (`subtotal_price`, `discount_price`, `tax_price`, `service_price`, ...) and
`total` (`total_price`, `cashprice`, `changeprice`, ...). `valid_line` lists the word quads of
every text line with its category (`menu.nm`, `total.total_price`, ...). The ground-truth files are
found at any depth of the input folder: `json/` + `image/` (the release layout, also inside
`train/`, `dev/`, `test/`), or `X.json` beside `X.png`/`X.jpg`; a file of a Hugging Face export may
hold it as a `ground_truth` JSON string. A receipt's image has its JSON's stem, in the same folder
or in `image/`/`images/` beside `json/`. Receipts of different splits share names
(`receipt_00000`), so a name found twice is prefixed with its split folder (`train-receipt_00000`).

Mapping: menu → line_items_table.line_items (nm → description, cnt → quantity, unitprice →
unit_price, price → line_total); sub_total.subtotal_price → subtotal, discount_price → discount,
tax_price → tax_amount, total.total_price → totals_section.total. Each region is cropped to its
lines' quads (menu.* / sub_total.* and total.*); without quads the crop is the whole receipt.
Amounts have no decimals ("25,000" and "25.000" are both twenty-five thousand). Every other key
(service charge, cash, change, sub-items, ...) is listed in the report as unmapped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finscribe.data.importers.common import Box, ImportReport, open_image, union_box, write_pair
from finscribe.data.normalize import Rules

ITEM_MAP = {"nm": "description", "cnt": "quantity", "unitprice": "unit_price", "price": "line_total"}
SUB_TOTAL_MAP = {"subtotal_price": "subtotal", "discount_price": "discount", "tax_price": "tax_amount"}
TOTAL_MAP = {"total_price": "total"}
REGION_OF_CATEGORY = {"menu": "line_items_table", "sub_total": "totals_section", "total": "totals_section"}


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")
LOOKED_FOR = ("ground-truth *.json holding gt_parse (or a ground_truth string) at any depth: json/ beside image/ "
              "(CORD's release, train/ dev/ test/ included) or X.json beside X.png|X.jpg")


def _image_for(label: Path) -> Path | None:
    folders = [label.parent] + [label.parent.parent / name for name in ("image", "images", "img")]
    for folder in folders:
        for suffix in IMAGE_SUFFIXES:
            for candidate in (folder / f"{label.stem}{suffix}", folder / f"{label.stem}{suffix.upper()}"):
                if candidate.is_file():
                    return candidate
    return None


def _pairs(input_dir: Path) -> list[tuple[str, Path, Path | None]]:
    """(name, ground-truth JSON, its image) of every JSON under `input_dir`, names unique."""
    labels = [p for p in sorted(input_dir.rglob("*.json"))
              if p.is_file() and not any(part.startswith(".") for part in p.relative_to(input_dir).parts)]
    stems = [p.stem for p in labels]
    pairs = []
    for label in labels:
        name = label.stem
        if stems.count(name) > 1:  # train/json/receipt_00000.json and dev/json/receipt_00000.json
            parts = [part for part in label.relative_to(input_dir).parent.parts if part not in ("json", "image")]
            name = "-".join([*parts, label.stem])
        pairs.append((name, label, _image_for(label)))
    return pairs


def _ground_truth(label_path: Path) -> Any:
    gt = json.loads(label_path.read_text(encoding="utf-8"))
    if isinstance(gt, dict) and isinstance(gt.get("ground_truth"), str):  # a Hugging Face export's row
        gt = json.loads(gt["ground_truth"])
    return gt


def _quad_box(quad: dict[str, Any]) -> Box:
    xs = [quad[f"x{i}"] for i in range(1, 5)]
    ys = [quad[f"y{i}"] for i in range(1, 5)]
    return int(min(xs)), int(min(ys)), int(max(xs)), int(max(ys))


def _line_boxes(valid_lines: Any, report: ImportReport, source: str) -> dict[str, list[Box]]:
    boxes: dict[str, list[Box]] = {}
    for line in valid_lines if isinstance(valid_lines, list) else []:
        region = REGION_OF_CATEGORY.get(str(line.get("category", "")).split(".")[0])
        if region is None:
            continue
        for word in line.get("words", []):
            try:
                boxes.setdefault(region, []).append(_quad_box(word["quad"]))
            except (KeyError, TypeError, ValueError):
                report.miss(source, "valid_line.quad", word.get("quad"), "not a quad of x1..x4, y1..y4")
    return boxes


def _mapped(section: Any, mapping: dict[str, str], where: str, report: ImportReport, source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not isinstance(section, dict):
        report.miss(source, where, section, "expected an object")
        return out
    for key, value in section.items():
        if key in mapping and isinstance(value, str):
            out[mapping[key]] = value
        else:
            report.miss(source, f"{where}.{key}", value, "no field of the data contract for this key")
    return out


def import_cord(input_dir: Path, output: Path, rules: Rules | None = None) -> ImportReport:
    """Import a CORD v2 folder into output/crops and output/annotations."""
    rules = rules or Rules((), None, None)  # whole rupiah: '.' and ',' group thousands
    report = ImportReport("cord", str(input_dir), looked_for=LOOKED_FOR)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"{input_dir}: not a folder; expected a CORD folder ({LOOKED_FOR})")
    pairs = _pairs(input_dir)
    report.found = {"JSON files": len(pairs), "with an image": sum(image is not None for _, _, image in pairs)}
    for stem, label_path, image_path in pairs:
        source = str(label_path)
        try:
            gt = _ground_truth(label_path)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            report.miss(source, "", None, f"not a JSON file ({err})")
            continue
        parse = gt.get("gt_parse") if isinstance(gt, dict) else None
        if isinstance(parse, str):  # the Hugging Face copy stores ground_truth as a JSON string
            parse = json.loads(parse)
        if not isinstance(parse, dict):
            report.miss(source, "gt_parse", None, "no gt_parse object")
            continue
        image = open_image(image_path, report, source) if image_path else None
        if image is None:
            if image_path is None:
                report.miss(source, "image", stem, "no image beside the JSON")
            continue
        regions: dict[str, dict[str, Any]] = {}
        menu = parse.get("menu", [])
        rows = [_mapped(item, ITEM_MAP, f"menu[{i}]", report, source)
                for i, item in enumerate(menu if isinstance(menu, list) else [menu])]
        if any(rows):
            regions["line_items_table"] = {"line_items": [r for r in rows if r]}
        totals = {**_mapped(parse.get("sub_total", {}), SUB_TOTAL_MAP, "sub_total", report, source),
                  **_mapped(parse.get("total", {}), TOTAL_MAP, "total", report, source)}
        if totals:
            regions["totals_section"] = totals
        for key in parse:
            if key not in ("menu", "sub_total", "total"):
                report.miss(source, key, parse[key], "no region of the data contract for this section")
        boxes = _line_boxes(gt.get("valid_line"), report, source)
        for region, fields in regions.items():
            box = union_box(boxes[region], image.size) if boxes.get(region) else None
            if write_pair(output, stem, image, box, region, fields, source, rules, report) and box is None:
                report.whole_image.append(f"{stem}__{region}")
    return report
