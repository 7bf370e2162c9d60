"""Pages with their region boxes: the ground truth a region detector trains and is scored on.

Three sources, told apart by their content:

* the synthetic `training_manifest.json` (`finscribe generate`): `samples[i]["page"]` and
  `samples[i]["regions"][region]["box"]`, with the sample's split and layout;
* COCO detection JSON (`images`, `annotations` with `bbox` [x, y, w, h], `categories` named
  after the regions);
* a Label Studio export (a list of tasks) with rectangle labels named after the regions
  (`x`, `y`, `width`, `height` in percent of the image).

Image paths are read relative to the JSON file's folder. Boxes become page pixels
[x0, y0, x1, y1] (the PIL crop convention), clamped to the page. Every unusable box (unknown
label, empty or off the page, rotated, a second box of a region on one page, on an image that
cannot be read) gives one line in `problems` naming it; nothing is dropped silently.

    pages, problems = read_page_boxes(Path("data/synthetic/training_manifest.json"))
"""

from __future__ import annotations

import json
import random
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from finscribe.data.schema import REGIONS
from finscribe.errors import FinScribeError

Box = tuple[int, int, int, int]


class PageBoxesError(FinScribeError, ValueError):
    """A box file that cannot be read at all (not JSON, or none of the three formats)."""


@dataclass
class PageBoxes:
    """One page image and its true region boxes (page pixels)."""

    image: Path
    boxes: dict[str, Box]
    size: tuple[int, int]  # (width, height), read from the image header
    split: str = "train"
    layout: str = "unknown"
    source: str = ""  # where it came from, for messages: "file.json: task 3"
    extra: dict[str, Any] = field(default_factory=dict)


def image_size(path: Path) -> tuple[int, int] | str:
    """(width, height) from the header, or why the image cannot be used."""
    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError:
        return "image file not found"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        return f"unreadable image ({type(err).__name__})"


def usable_box(x0: float, y0: float, x1: float, y1: float, size: tuple[int, int]) -> Box | str:
    """The box rounded and clamped to the page, or why it is unusable."""
    width, height = size
    box = (max(0, round(x0)), max(0, round(y0)), min(width, round(x1)), min(height, round(y1)))
    if box[2] - box[0] < 2 or box[3] - box[1] < 2:
        return f"empty or off the page ({[round(v, 1) for v in (x0, y0, x1, y1)]} on a {width}x{height} page)"
    return box


def _split_of(name: str, val_fraction: float, seed: int = 0) -> str:
    return "val" if random.Random(f"layout-split:{seed}:{name}").random() < val_fraction else "train"


def _add(page: PageBoxes, region: Any, box: Box | str, what: str, problems: list[str]) -> None:
    if region not in REGIONS:
        problems.append(f"{what}: label {region!r} is not a region (expected one of {', '.join(REGIONS)}); box not used")
    elif isinstance(box, str):
        problems.append(f"{what}: {region} box {box}; box not used")
    elif region in page.boxes:
        problems.append(f"{what}: a second {region} box on {page.image.name} (a page has one box per region); box not used")
    else:
        page.boxes[region] = box


# ----------------------------------------------------------------------------- the three formats


def from_manifest(path: Path, manifest: dict[str, Any], problems: list[str]) -> list[PageBoxes]:
    pages = []
    for n, sample in enumerate(manifest.get("samples", [])):
        what = f"{path}: sample {sample.get('id', n)}"
        image = path.parent / str(sample.get("page", ""))
        size = image_size(image) if sample.get("page") else "no page image in the sample"
        regions = sample.get("regions") or {}
        if isinstance(size, str):
            problems.append(f"{what}: {image}: {size}; its {len(regions)} box(es) not used")
            continue
        page = PageBoxes(image=image, boxes={}, size=size, split=str(sample.get("split", "train")),
                         layout=str(sample.get("layout", "unknown")), source=what, extra={"label": sample.get("label")})
        for region, entry in regions.items():
            raw = entry.get("box") if isinstance(entry, dict) else None
            box = usable_box(*raw, size) if isinstance(raw, list) and len(raw) == 4 else f"malformed ({raw!r})"
            _add(page, region, box, what, problems)
        pages.append(page)
    return pages


def from_coco(path: Path, coco: dict[str, Any], problems: list[str], val_fraction: float) -> list[PageBoxes]:
    names = {c.get("id"): c.get("name") for c in coco.get("categories", [])}
    pages: dict[Any, PageBoxes | str] = {}
    for image in coco.get("images", []):
        file = path.parent / str(image.get("file_name", ""))
        size = image_size(file)
        pages[image.get("id")] = f"{file}: {size}" if isinstance(size, str) else PageBoxes(
            image=file, boxes={}, size=size, split=_split_of(file.name, val_fraction), source=f"{path}: image {image.get('id')}")
    for ann in coco.get("annotations", []):
        what = f"{path}: annotation {ann.get('id')} (image {ann.get('image_id')})"
        page = pages.get(ann.get("image_id"))
        if page is None or isinstance(page, str):
            problems.append(f"{what}: {page or 'no such image id'}; box not used")
            continue
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            box: Box | str = f"malformed bbox {bbox!r}"
        else:
            x, y, w, h = bbox
            box = usable_box(x, y, x + w, y + h, page.size)
        _add(page, names.get(ann.get("category_id"), f"category {ann.get('category_id')}"), box, what, problems)
    return [p for p in pages.values() if isinstance(p, PageBoxes)]


def _label_studio_image(path: Path, data: dict[str, Any]) -> Path:
    """The image file of a task: `finscribe_image`, else the local-files `?d=` path, else the file name beside the export."""
    if data.get("finscribe_image"):
        image = Path(data["finscribe_image"])
    else:
        url = str(data.get("image", ""))
        query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
        image = Path(query["d"][0]) if "d" in query else Path(urllib.parse.unquote(url.rsplit("/", 1)[-1]))
        if not image.is_absolute() and not (path.parent / image).exists():
            image = Path(image.name)
    return image if image.is_absolute() else path.parent / image


def from_label_studio(path: Path, tasks: list[Any], problems: list[str], val_fraction: float) -> list[PageBoxes]:
    pages = []
    for n, task in enumerate(tasks):
        what = f"{path}: task {task.get('id', n) if isinstance(task, dict) else n}"
        annotations = [a for a in (task.get("annotations") or []) if not a.get("was_cancelled")] if isinstance(task, dict) else []
        if not annotations:
            problems.append(f"{what}: no annotation; task not used")
            continue
        results = [r for r in annotations[-1].get("result", []) if r.get("type") == "rectanglelabels"]
        image = _label_studio_image(path, task.get("data") or {})
        size = image_size(image)
        if isinstance(size, str):
            problems.append(f"{what}: {image}: {size}; its {len(results)} box(es) not used")
            continue
        page = PageBoxes(image=image, boxes={}, size=size, split=_split_of(image.name, val_fraction), source=what)
        for result in results:
            value = result.get("value") or {}
            labels = value.get("rectanglelabels") or [None]
            where = f"{what} result {result.get('id', '?')}"
            if abs(float(value.get("rotation") or 0)) > 0.5:
                box: Box | str = f"rotated by {value['rotation']} degrees (draw it unrotated)"
            else:
                try:
                    x, y, w, h = (float(value[k]) for k in ("x", "y", "width", "height"))
                    box = usable_box(x / 100 * size[0], y / 100 * size[1], (x + w) / 100 * size[0], (y + h) / 100 * size[1], size)
                except (KeyError, TypeError, ValueError):
                    box = f"malformed value {value!r}"
            _add(page, labels[0], box, where, problems)
        pages.append(page)
    return pages


def read_page_boxes(path: Path, val_fraction: float = 0.05) -> tuple[list[PageBoxes], list[str]]:
    """Pages and their boxes from a manifest, COCO JSON or Label Studio export; plus one line per unusable box.

    The manifest keeps its own splits; COCO and Label Studio pages go to 'val' with `val_fraction`
    (by file name, so the same page always lands in the same split)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PageBoxesError(f"--data {path}: cannot read it as JSON ({type(err).__name__}: {err})") from err
    problems: list[str] = []
    if isinstance(data, dict) and "samples" in data:
        pages = from_manifest(path, data, problems)
    elif isinstance(data, dict) and "images" in data and "annotations" in data:
        pages = from_coco(path, data, problems, val_fraction)
    elif isinstance(data, list):
        pages = from_label_studio(path, data, problems, val_fraction)
    else:
        raise PageBoxesError(f"--data {path}: neither a training_manifest.json (samples), COCO detection JSON "
                             "(images, annotations, categories) nor a Label Studio export (a list of tasks)")
    return pages, problems


def read_all(paths: Sequence[Path], val_fraction: float = 0.05) -> tuple[list[PageBoxes], list[str]]:
    pages, problems = [], []
    for path in paths:
        more, bad = read_page_boxes(path, val_fraction)
        pages += more
        problems += bad
    return pages, problems
