"""What every importer shares: writing a crop with its annotation, and the import report.

An importer turns one document of a public data set into region crops (`crops/<id>__<region>.png`)
and region annotations (`annotations/<id>__<region>.json`), the two folders that
`finscribe build-dataset --crops-dir ... --annotations-dir ...` takes. Everything it could not
map (a field the contract has no place for, a value it could not read, a document without
usable boxes) goes into `import_report.json` beside them; nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from finscribe.data.normalize import Outcome, Rules, normalize_fields
from finscribe.data.schema import REGION_FIELDS, region_problems
from finscribe.fileio import atomic_file, write_json_atomic
from finscribe.limits import MIN_SIDE

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels


@dataclass
class ImportReport:
    format: str
    input: str
    written: list[str] = field(default_factory=list)  # annotation names
    unmapped: list[dict[str, Any]] = field(default_factory=list)
    whole_image: list[str] = field(default_factory=list)  # crops that fell back to the whole image
    normalized: Outcome = field(default_factory=Outcome)
    looked_for: str = ""  # the folders and file patterns the importer searched (said when it maps nothing)
    found: dict[str, int] = field(default_factory=dict)  # what it found of each, for the same message

    def miss(self, source: str, field_name: str, value: Any, reason: str) -> None:
        self.unmapped.append({"source": source, "field": field_name, "value": value, "reason": reason})

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "input": self.input, "annotations_written": len(self.written), "found": self.found,
                "unmapped": self.unmapped, "whole_image_crops": self.whole_image,
                "values_changed": self.normalized.changed, "values_unreadable": self.normalized.unreadable}


def union_box(boxes: list[Box], size: tuple[int, int], pad: int = 8, full_width: bool = False) -> Box:
    """The padded bounding box of `boxes` inside an image of `size`, at least MIN_SIDE a side."""
    width, height = size
    x0 = 0 if full_width else max(0, min(b[0] for b in boxes) - pad)
    x1 = width if full_width else min(width, max(b[2] for b in boxes) + pad)
    y0, y1 = max(0, min(b[1] for b in boxes) - pad), min(height, max(b[3] for b in boxes) + pad)
    if x1 - x0 < MIN_SIDE:
        x0, x1 = max(0, min(x0, width - MIN_SIDE)), min(width, max(x1, x0 + MIN_SIDE))
    if y1 - y0 < MIN_SIDE:
        y0, y1 = max(0, min(y0, height - MIN_SIDE)), min(height, max(y1, y0 + MIN_SIDE))
    return x0, y0, x1, y1


def write_pair(output: Path, name: str, image: Image.Image, box: Box | None, region: str,
               fields: dict[str, Any], source: str, rules: Rules, report: ImportReport,
               add_currency: str | None = None) -> bool:
    """Normalise `fields`, and write the crop of `image` (whole image when `box` is None) and its
    annotation; a region left with no valid field is reported instead. True if written.
    `add_currency`: the data set's currency, added to a region that has a currency field once another
    field of it is valid (never a region of the currency alone)."""
    fields = normalize_fields(region, fields, source, rules, report.normalized)
    currency = fields.get("currency") or rules.currency
    for key in list(fields):  # a value still not canonical is reported, never trained on
        problems = region_problems(region, {key: fields[key]}, source=source, currency=currency)
        if problems:
            report.miss(source, f"{region}.{key}", fields.pop(key), "; ".join(problems))
    if not fields:
        report.miss(source, region, None, "no field of this region could be mapped; no annotation written")
        return False
    if add_currency is not None and "currency" in REGION_FIELDS[region]:
        fields.setdefault("currency", add_currency)
    crop = image if box is None else image.crop(box)
    (output / "crops").mkdir(parents=True, exist_ok=True)
    (output / "annotations").mkdir(parents=True, exist_ok=True)
    stem = f"{name}__{region}"
    with atomic_file(output / "crops" / f"{stem}.png") as tmp:
        crop.convert("RGB").save(tmp, format="PNG")
    write_json_atomic(output / "annotations" / f"{stem}.json", {"region": region, "fields": fields})
    report.written.append(stem)
    return True


def open_image(path: Path, report: ImportReport, source: str) -> Image.Image | None:
    """The RGB image at `path`, or None with the reason in the report."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as err:
        report.miss(source, "image", str(path), f"cannot read the image ({err})")
        return None
