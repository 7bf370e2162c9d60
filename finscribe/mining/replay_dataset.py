"""Turn the hard-sample log into training records and mix them into a training set.

`build_hard_sample_dataset(error_dir)` reads the log written by `finscribe mine` and yields
records in the same format as `finscribe.data.build_dataset` (image, prompt, target, region,
split, source_id, layout); `mix_datasets(normal, hard, ratio=0.2)` builds the replay mix that
`finscribe train --hard-samples data/hard_samples --hard-ratio 0.2` trains on. A page logged
whole (region "page", its full label, optionally its region boxes) is replayed per region: its
region crops (cut at the logged boxes, else where the detector finds them) with the label's slices.

Optional base-task mixing (`ocr_fraction`, `ocr_records`): a share of "OCR:" samples on the
normal crops, so that fine-tuning on JSON does not erase plain reading. The OCR target of a crop
is built from its annotation, not from the printed text (which no label records): the canonical
values of its fields in field order, one per line; a line-item row is one line with its
description, quantity, unit price and line total separated by single spaces. So it teaches
reading the values, in canonical spelling, not the labels or the locale's number format.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from finscribe.data.formatters import OCR_PROMPT, PAGE, prompt_for, serialize_target
from finscribe.data.mixing import balanced_pick
from finscribe.data.record_dataset import RecordDataset
from finscribe.data.records import RECORD_KEYS, record_problems
from finscribe.data.schema import REGIONS
from finscribe.eval.pages_config import PAGE_MARGIN, TINY_LAYOUT
from finscribe.fileio import atomic_file
from finscribe.mining.error_classifier import ErrorType
from finscribe.mining.error_logger import CROPS_DIR, ErrorLogError, read_error_log


def _record(entry: dict[str, Any], image: str, region: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {"image": image, "prompt": prompt_for(region), "target": serialize_target(fields), "region": region,
            "split": "train", "source_id": f"hard:{entry['image_sha256']}", "layout": entry.get("layout") or ""}


def _region_crop(error_dir: Path, entry: dict[str, Any], region: str, box: Any, margin: int) -> str:
    """The crop of `region` on a logged page, widened by `margin` as every page crop is
    (`detection.crop_regions`), stored once under crops/ (named by page, region and box)."""
    from finscribe.detection import widen_box  # torch: imported when a page is replayed (see _page_region_records)

    with Image.open(entry["image_path"]) as page:
        x0, y0, x1, y1 = widen_box(box, page.size, margin)
        path = error_dir / CROPS_DIR / f"{entry['image_sha256'][:16]}__{region}__{x0}-{y0}-{x1}-{y1}.png"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path) as tmp:
                page.crop((x0, y0, x1, y1)).save(tmp, format="PNG")
    return str(path.resolve())


def _page_region_records(error_dir: Path, pages: list[dict[str, Any]], region_type: str | None,
                         layout_model: str | Path, margin: int) -> list[dict[str, Any]]:
    """Region records of logged pages: each region's slice of the page label on its crop, cut at
    the box logged with the page, else where the detector finds it (loaded only when needed). A
    region the detector does not find on a page is left out and warned about, never guessed."""
    # The detector (torch) is imported here, not at module level: `finscribe.mining` is imported by
    # `finscribe mine --help`, which must stay instant, and most logs hold no page.
    from finscribe.detection import detect_regions, load_detector

    wanted = [(entry, region) for entry in pages for region in REGIONS
              if region in entry["gt"] and region_type in (None, region)]
    to_detect = sorted({id(entry): entry for entry, region in wanted
                        if region not in (entry.get("boxes") or {})}.values(), key=lambda e: e["id"])
    detected: dict[str, Any] = {}  # entry id -> detection.PageRegions
    if to_detect:
        model, processor = load_detector(layout_model)
        for entry in tqdm(to_detect, desc="detect regions of logged pages", unit="page", leave=False):
            with Image.open(entry["image_path"]) as page:
                [detected[entry["id"]]] = detect_regions(model, processor, [page.convert("RGB")])
    records, not_found = [], []
    for entry, region in wanted:
        box = (entry.get("boxes") or {}).get(region) or detected[entry["id"]].boxes.get(region)
        if box is None:
            not_found.append(f"{entry['id']} ({entry['source_image']}): {region}")
            continue
        records.append(_record(entry, _region_crop(error_dir, entry, region, box, margin), region, entry["gt"][region]))
    if not_found:
        warnings.warn(f"{len(not_found)} region(s) of logged pages not found by the detector {layout_model}, left out "
                      "(log the pages with boxes= to replay them):\n" + "\n".join(f"  {x}" for x in not_found),
                      stacklevel=3)
    return records


def hard_sample_records(
    error_dir: str | Path,
    region_type: str | None = "totals_section",
    error_types: Iterable[str] | None = None,
    *,
    layout_model: str | Path = TINY_LAYOUT,
    margin: int = PAGE_MARGIN,
) -> list[dict[str, Any]]:
    """The hard samples of `error_dir` as training records (one per image+region key).

    `region_type=None` keeps every region; `error_types` keeps the samples whose latest error
    type is one of them. A logged page (region "page", its full label) is replayed per region:
    one record per region of its label (`region_type` picks one), whose image is the region's crop
    of the page (the box logged with it, else the one `layout_model` detects, widened by `margin`)
    and whose target is the label's slice of that region; `region_type="page"` replays the pages
    whole instead. Problems in the log (corrupt lines, missing images) are warned about by
    `read_error_log` and those samples left out.
    """
    wanted = None
    if error_types is not None:
        wanted = set()
        for name in error_types:
            try:
                wanted.add(ErrorType(name).value)
            except ValueError:
                raise ErrorLogError(f"unknown error type {name!r}; expected one of {[e.value for e in ErrorType]}") from None
    records, pages = [], []
    for entry in read_error_log(error_dir):
        if wanted is not None and entry["error_type"] not in wanted:
            continue
        if entry["region"] == PAGE and region_type != PAGE and isinstance(entry["gt"], dict):
            pages.append(entry)
        elif region_type is None or entry["region"] == region_type:
            records.append(_record(entry, entry["image_path"], entry["region"], entry["gt"]))
    records += _page_region_records(Path(error_dir), pages, region_type, layout_model, margin)
    # The logged ground truth goes through the same check as every other way data comes in.
    problems = record_problems(records, f"hard-sample log {error_dir}")
    if problems:
        shown = "\n".join(f"  - {p}" for p in problems)
        raise ErrorLogError(f"{len(problems)} invalid ground truth(s) in the hard-sample log {error_dir}:\n{shown}\n"
                            "Fix the labels they were mined from and mine again.")
    return records


def build_hard_sample_dataset(
    error_dir: str | Path,
    region_type: str | None = "totals_section",
    error_types: Iterable[str] | None = None,
    *,
    layout_model: str | Path = TINY_LAYOUT,
    margin: int = PAGE_MARGIN,
) -> RecordDataset:
    """A 🤗 Dataset of the hard samples (see `hard_sample_records`), build_dataset's columns; `+`
    mixes it in as the seed writes it: `normal_dataset + hard_samples[:len(normal_dataset) // 4]`."""
    records = hard_sample_records(error_dir, region_type, error_types, layout_model=layout_model, margin=margin)
    if not records:
        return RecordDataset.from_dict({name: [] for name in RECORD_KEYS},
                                          features=datasets.Features({n: datasets.Value("string") for n in RECORD_KEYS}))
    return RecordDataset.from_list(records)


def ocr_text(region: str, fields: dict[str, Any]) -> str:
    """The plain-text OCR target of a region's fields (see the module docstring)."""
    lines = []
    for name, value in fields.items():
        if isinstance(value, list):  # line_items
            lines += [" ".join(str(v) for v in row.values()) for row in value if isinstance(row, dict)]
        elif isinstance(value, dict):  # a full label ("page"): its regions in order
            lines.append(ocr_text(name, value))
        elif value is not None:
            lines.append(str(value))
    return "\n".join(line for line in lines if line)


def ocr_records(records: Iterable[dict[str, Any]], fraction: float, seed: int = 0) -> list[dict[str, Any]]:
    """"OCR:" samples on `round(fraction × len(records))` of the records, chosen by `seed`.

    Only records with a JSON prompt of a known region qualify (an "OCR:" record is not reused).
    """
    if fraction < 0:
        raise ValueError(f"fraction must be ≥ 0, got {fraction}")
    usable = [dict(r) for r in records if r["prompt"] != OCR_PROMPT]
    n = round(fraction * len(usable))
    if n == 0 or not usable:
        return []
    picks = balanced_pick(len(usable), n, np.random.default_rng([seed, 1]))
    out = []
    for i in picks:
        record = usable[i]
        try:
            fields = json.loads(record["target"])
        except json.JSONDecodeError:
            raise ValueError(f"record {record.get('source_id')}: target is not JSON, cannot build its OCR text") from None
        out.append({**record, "prompt": OCR_PROMPT, "target": ocr_text(record["region"], fields),
                    "source_id": f"ocr:{record['source_id']}"})
    return out


def _as_dataset(data: datasets.Dataset | list[dict[str, Any]], name: str) -> datasets.Dataset:
    if isinstance(data, datasets.Dataset):
        return data
    if isinstance(data, list):
        return datasets.Dataset.from_list(data) if data else datasets.Dataset.from_dict({c: [] for c in RECORD_KEYS})
    raise TypeError(f"{name} must be a datasets.Dataset or a list of records, got {type(data).__name__}")


def mix_datasets(
    normal: datasets.Dataset | list[dict[str, Any]],
    hard: datasets.Dataset | list[dict[str, Any]],
    ratio: float = 0.2,
    seed: int = 0,
    ocr_fraction: float = 0.0,
) -> datasets.Dataset:
    """All `normal` records + hard samples making up `ratio` of the result (+ `ocr_fraction` of
    "OCR:" samples built from the normal records), shuffled deterministically by `seed`.

    With N normal records the result has N / (1 − ratio − ocr_fraction) rows: ratio 0.2 adds
    N/4 hard samples, the seed's `normal + hard[:len(normal)//4]`. Too few hard samples are
    oversampled (each repeated ⌊k/len⌋ times, the rest drawn without replacement by `seed`).
    """
    if not 0 <= ratio < 1 or not 0 <= ocr_fraction < 1 or ratio + ocr_fraction >= 1:
        raise ValueError(f"need 0 ≤ ratio, ocr_fraction and ratio + ocr_fraction < 1; got {ratio}, {ocr_fraction}")
    normal, hard = _as_dataset(normal, "normal"), _as_dataset(hard, "hard")
    missing = [c for c in RECORD_KEYS if c not in normal.column_names or c not in hard.column_names]
    if missing:
        raise ValueError(f"mix_datasets: column(s) {missing} missing; both sets need {list(RECORD_KEYS)}")
    normal = normal.select_columns(list(RECORD_KEYS))
    hard = hard.select_columns(list(RECORD_KEYS))
    total = len(normal) / (1 - ratio - ocr_fraction)
    n_hard, n_ocr = round(ratio * total), round(ocr_fraction * total)
    rng = np.random.default_rng(seed)
    parts = [normal]
    if n_hard:
        if len(hard) == 0:
            raise ValueError("mix_datasets: no hard samples to mix in (is the error folder empty, or filtered out?); "
                             "use ratio=0 to train without replay")
        parts.append(hard.select(balanced_pick(len(hard), n_hard, rng)))
    if n_ocr:
        rows = normal.to_list()
        ocr = ocr_records(rows, 1.0)
        if not ocr:
            raise ValueError("mix_datasets: no normal record to build OCR samples from")
        parts.append(datasets.Dataset.from_list([ocr[i] for i in balanced_pick(len(ocr), n_ocr, rng)]).cast(normal.features))
    parts = [p.cast(normal.features) for p in parts]
    combined = datasets.concatenate_datasets(parts)
    return combined.select(rng.permutation(len(combined)).tolist())
