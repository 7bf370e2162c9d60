"""Small input files the data-layer tests write: a blank PNG crop and a region annotation."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image


def write_png(path: Path, size=(64, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, "white").save(path)


def write_annotation(path: Path, region: str, fields: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"region": region, "fields": fields}), encoding="utf-8")
