"""Build the training records (image, prompt, target) from crops + annotations or a manifest.

Two sources:

* a folder of crops and a folder of region annotations paired by file stem (`X.png` ↔
  `X.json`, also in sub-folders: `a/X.jpg` ↔ `a/X.json`) — works on your own real crops;
* the `training_manifest.json` written by `finscribe generate` (regions and, optionally,
  whole pages with their full label).

An annotation may carry any non-empty subset of its region's fields (a receipt has no due
date); the training target is exactly the annotated fields.

Every input is checked before anything is written: crops without annotation and the reverse,
unreadable or corrupt images, symlink loops, folders named like files, images too small
(< 28 px a side) or too large (> 40 MP, `finscribe.limits`, checked from the header before
decoding, which also guards against decompression bombs), malformed or schema-violating
annotations (every problem of a file, not only the first), unknown regions. All problems are
collected into one list naming each file. By default a `DatasetBuildError` lists them all; with
`skip_invalid` the bad inputs are left out and the list is returned (`collect_*` functions,
and in `dataset.info.description` of the 🤗 Dataset builders); the CLI writes it to
`<output stem>.invalid.txt`. Nothing is dropped silently.

    finscribe build-dataset --crops-dir data/crops --annotations-dir data/annotations \
        --output data/training_dataset.jsonl
    finscribe build-dataset --manifest data/synthetic_invoices/training_manifest.json \
        --output data/training_dataset.jsonl [--include-pages] [--skip-invalid]

The CLI writes the JSONL atomically, `<output stem>.config.json` (its BuildDatasetConfig),
`<output stem>.stats.json` (per region: records and how many carried each field) and prints a
count per split and region. Images larger than the processor's own budget
(`limits.PROCESSOR_MAX_PIXELS`, which it would downscale to anyway) are written downscaled into
`<output stem>.images/` and the records point there. `load_records(path)` reads a JSONL
(checking every target) or a manifest back as a 🤗 Dataset (used by the trainer and the evaluator).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
from tqdm import tqdm

from finscribe.config import arg, parse_config, save_config
from finscribe.data.formatters import PAGE, prompt_for, serialize_target
from finscribe.data.inputs import IMAGE_SUFFIXES, check_image, list_files, store_downscaled
from finscribe.data.record_dataset import RecordDataset
from finscribe.data.records import (  # noqa: F401  (re-exported: the stages import them from here)
    RECORD_KEYS,
    DatasetBuildError,
    check_records,
    field_coverage,
    read_jsonl_records,
    write_jsonl_atomic,
)
from finscribe.data.schema import REGIONS, SchemaError, ordered_fields, read_label, read_region_annotation
from finscribe.fileio import ensure_output_dir, write_json_atomic, write_text_atomic
from finscribe.limits import MAX_PIXELS, MIN_SIDE, PROCESSOR_MAX_PIXELS

UNKNOWN_LAYOUT = "unknown"  # layout of user-supplied crops


@dataclass
class BuildDatasetConfig:
    output: Path = arg(help="JSONL file to write; <stem>.config.json (and .invalid.txt) go beside it")
    crops_dir: Path | None = arg(None, "folder of region crops (png/jpg/jpeg/tif/tiff/webp)")
    annotations_dir: Path | None = arg(None, "folder of region annotations X.json, one per crop X.<ext>")
    manifest: Path | None = arg(None, "training_manifest.json of `finscribe generate` (instead of the two folders)")
    split: str = arg("train", "split name of every record built from --crops-dir")
    regions: tuple[str, ...] = arg((), f"manifest regions to use (default: all of {', '.join(REGIONS)})")
    include_pages: bool = arg(False, "also add one whole-page record per manifest sample (full label target)")
    splits: tuple[str, ...] = arg((), "manifest splits to keep, e.g. train val (default: all)")
    skip_invalid: bool = arg(False, "leave invalid inputs out (listed in <stem>.invalid.txt) instead of failing")
    min_side: int = arg(MIN_SIDE, "smallest allowed image side in pixels")
    max_pixels: int = arg(MAX_PIXELS, "largest allowed image area in pixels (checked before decoding)")
    downscale_above: int = arg(PROCESSOR_MAX_PIXELS, "images over this many pixels are stored downscaled to it "
                                                     "in <stem>.images/ (the processor's own limit; 0: never)")

    def __post_init__(self) -> None:
        dirs = self.crops_dir is not None or self.annotations_dir is not None
        if dirs == (self.manifest is not None):
            raise ValueError("give either --manifest or both --crops-dir and --annotations-dir")
        if dirs and (self.crops_dir is None or self.annotations_dir is None):
            raise ValueError("--crops-dir and --annotations-dir go together")
        unknown = sorted(set(self.regions) - set(REGIONS))
        if unknown:
            raise ValueError(f"unknown region(s) {unknown}; expected some of {list(REGIONS)}")


def _record(image: Path, region: str, fields: dict, split: str, source_id: str, layout: str) -> dict[str, Any]:
    return {
        "image": str(image.resolve()),
        "prompt": prompt_for(region),
        "target": serialize_target(ordered_fields(region, fields)),
        "region": region,
        "split": split,
        "source_id": source_id,
        "layout": layout,
    }


def _finish(records: list[dict], problems: list[str], skip_invalid: bool, source: str) -> tuple[list[dict], list[str]]:
    if problems and not skip_invalid:
        shown = "\n".join(f"  - {p}" for p in problems)
        raise DatasetBuildError(
            f"{len(problems)} invalid input(s) in {source}:\n{shown}\n"
            "Fix or remove these files, or pass --skip-invalid (skip_invalid=True) to leave them out "
            "(the CLI then lists them in <output stem>.invalid.txt).",
            problems,
        )
    return records, problems


def collect_from_dirs(
    crops_dir: str | Path, annotations_dir: str | Path, *, split: str = "train", skip_invalid: bool = False,
    min_side: int = MIN_SIDE, max_pixels: int = MAX_PIXELS,
) -> tuple[list[dict[str, Any]], list[str]]:
    """(records, problems) for crops paired with annotations by relative path without suffix."""
    crops_dir, annotations_dir = Path(crops_dir), Path(annotations_dir)
    for folder in (crops_dir, annotations_dir):
        if not folder.is_dir():
            raise DatasetBuildError(f"{folder}: not a folder")
    problems: list[str] = []
    crop_files, bad_crops = list_files(crops_dir, problems)
    annotation_files, bad_annotations = list_files(annotations_dir, problems)
    # an entry already reported (a loop, a folder) must not make its partner look orphaned
    reported = {p.relative_to(crops_dir).with_suffix("") for p in bad_crops}
    reported |= {p.relative_to(annotations_dir).with_suffix("") for p in bad_annotations}
    crops: dict[Path, Path] = {}
    for path in crop_files:
        key = path.relative_to(crops_dir).with_suffix("")
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            problems.append(f"{path}: not a supported image type (expected one of {', '.join(IMAGE_SUFFIXES)})")
        elif key in crops:
            problems.append(f"{path}: another image has the same name ({crops[key].name}); keep one per annotation")
        else:
            crops[key] = path
    annotations: dict[Path, Path] = {}
    for path in annotation_files:
        if path.suffix.lower() != ".json":
            problems.append(f"{path}: not an annotation (expected a .json file)")
        else:
            annotations[path.relative_to(annotations_dir).with_suffix("")] = path
    for key in sorted(set(crops) - set(annotations) - reported):
        problems.append(f"{crops[key]}: crop without annotation (expected {annotations_dir / key}.json)")
    for key in sorted(set(annotations) - set(crops) - reported):
        problems.append(f"{annotations[key]}: annotation without crop (expected {crops_dir / key}.png or similar)")

    records = []
    for key in tqdm(sorted(set(crops) & set(annotations)), desc="checking crops", unit="crop", leave=False):
        crop, annotation = crops[key], annotations[key]
        bad = check_image(crop, min_side, max_pixels)
        if bad:
            problems.append(f"{crop}: {bad}")
        try:
            region, fields = read_region_annotation(annotation)
        except SchemaError as err:
            problems += err.problems
            continue
        if bad:
            continue
        source_id, sep, stem_region = key.name.rpartition("__")
        if sep and stem_region in REGIONS and stem_region != region:
            problems.append(f"{annotation}: region {region!r} disagrees with the file name ({stem_region!r})")
            continue
        records.append(_record(crop, region, fields, split, source_id if sep else key.name, UNKNOWN_LAYOUT))
    return _finish(records, problems, skip_invalid, f"{crops_dir} + {annotations_dir}")


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetBuildError(f"{path}: manifest not found (run `finscribe generate` first)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetBuildError(f"{path}: manifest is not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("samples"), list):
        raise DatasetBuildError(f'{path}: expected a manifest {{"version": 1, "samples": [...]}}')
    return manifest


def collect_from_manifest(
    manifest_path: str | Path, *, regions: Iterable[str] | None = None, include_pages: bool = False,
    splits: Iterable[str] | None = None, skip_invalid: bool = False,
    min_side: int = MIN_SIDE, max_pixels: int = MAX_PIXELS,
) -> tuple[list[dict[str, Any]], list[str]]:
    """(records, problems) for the chosen regions (default all five) and splits of a manifest."""
    manifest_path = Path(manifest_path)
    regions = tuple(REGIONS if regions is None else regions)
    unknown = sorted(set(regions) - set(REGIONS))
    if unknown:
        raise DatasetBuildError(f"unknown region(s) {unknown}; expected some of {list(REGIONS)}")
    wanted_splits = None if splits is None else set(splits)
    root = manifest_path.parent
    problems: list[str] = []
    records = []
    samples = _read_manifest(manifest_path)["samples"]
    for n, sample in enumerate(tqdm(samples, desc="checking samples", unit="sample", leave=False)):
        where = f"{manifest_path}: samples[{n}]"
        if not isinstance(sample, dict) or not all(k in sample for k in ("id", "split", "regions")):
            problems.append(f"{where}: expected an object with id, split, regions")
            continue
        if wanted_splits is not None and sample["split"] not in wanted_splits:
            continue
        sid, split, layout = sample["id"], sample["split"], sample.get("layout", UNKNOWN_LAYOUT)
        for region in regions:
            entry = sample["regions"].get(region) if isinstance(sample["regions"], dict) else None
            if (not isinstance(entry, dict)
                    or not all(isinstance(entry.get(key), str) for key in ("crop", "annotation"))):
                problems.append(f"{where} ({sid}): no {region} entry with crop and annotation paths")
                continue
            crop, annotation = root / entry["crop"], root / entry["annotation"]
            bad = check_image(crop, min_side, max_pixels)
            if bad:
                problems.append(f"{crop}: {bad}")
            try:
                currency = sample.get("currency") if isinstance(sample.get("currency"), str) else None
                found, fields = read_region_annotation(annotation, currency=currency)
            except SchemaError as err:
                problems += err.problems
                continue
            if bad:
                continue
            if found != region:
                problems.append(f"{annotation}: region {found!r}, but the manifest lists it as {region!r}")
                continue
            records.append(_record(crop, region, fields, split, sid, layout))
        if include_pages:
            if not all(isinstance(sample.get(key), str) for key in ("page", "label")):
                problems.append(f"{where} ({sid}): no page/label paths for --include-pages")
                continue
            page = root / sample["page"]
            bad = check_image(page, min_side, max_pixels)
            if bad:
                problems.append(f"{page}: {bad}")
            try:
                label = read_label(root / sample["label"])
            except SchemaError as err:
                problems += err.problems
                continue
            if bad:
                continue
            records.append(_record(page, PAGE, label, split, sid, layout))
    return _finish(records, problems, skip_invalid, str(manifest_path))


def _to_dataset(records: list[dict], problems: list[str]) -> datasets.Dataset:
    table = {key: [r[key] for r in records] for key in RECORD_KEYS}
    description = "" if not problems else f"skipped {len(problems)} invalid input(s):\n" + "\n".join(problems)
    return RecordDataset.from_dict(table, info=datasets.DatasetInfo(description=description))


def build_dataset(
    crops_dir: str | Path, annotations_dir: str | Path, *, split: str = "train", skip_invalid: bool = False,
    min_side: int = MIN_SIDE, max_pixels: int = MAX_PIXELS,
) -> RecordDataset:
    """Records of crops + annotations paired by stem; skipped inputs in `.info.description`."""
    return _to_dataset(*collect_from_dirs(crops_dir, annotations_dir, split=split, skip_invalid=skip_invalid,
                                          min_side=min_side, max_pixels=max_pixels))


def build_dataset_from_manifest(
    manifest_path: str | Path, *, regions: Iterable[str] | None = None, include_pages: bool = False,
    splits: Iterable[str] | None = None, skip_invalid: bool = False,
    min_side: int = MIN_SIDE, max_pixels: int = MAX_PIXELS,
) -> RecordDataset:
    """Records of a generated manifest; skipped inputs in `.info.description`."""
    return _to_dataset(*collect_from_manifest(
        manifest_path, regions=regions, include_pages=include_pages, splits=splits,
        skip_invalid=skip_invalid, min_side=min_side, max_pixels=max_pixels,
    ))


def load_records(path: str | Path) -> RecordDataset:
    """A 🤗 Dataset of records from a JSONL written here or from a manifest (all regions, no pages).

    Every target of a JSONL is checked against the data contract: a hand-written file with
    targets like "RM 57.40" or "25/12/2018" is refused with the list of offending records
    (`finscribe normalize-annotations` converts such a file, with a report).
    """
    path = Path(path)
    if path.suffix == ".json":
        return build_dataset_from_manifest(path)
    return _to_dataset(check_records(read_jsonl_records(path), str(path)), [])


def _summary(records: list[dict]) -> str:
    counts = Counter((r["split"], r["region"]) for r in records)
    lines = [f"{len(records)} records"]
    lines += [f"  {split:<6} {region:<18} {n}" for (split, region), n in sorted(counts.items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "finscribe build-dataset") -> int:
    config = parse_config(BuildDatasetConfig, argv, prog, __doc__.split("\n\n")[0])
    limits = {"skip_invalid": config.skip_invalid, "min_side": config.min_side, "max_pixels": config.max_pixels}
    ensure_output_dir(Path(config.output).parent)  # before checking every input
    if config.manifest is not None:
        records, problems = collect_from_manifest(
            config.manifest, regions=config.regions or None, include_pages=config.include_pages,
            splits=config.splits or None, **limits,
        )
    else:
        records, problems = collect_from_dirs(config.crops_dir, config.annotations_dir, split=config.split, **limits)
    output = Path(config.output)
    if config.downscale_above > 0:
        downscaled = store_downscaled(records, output.with_suffix(".images"), config.downscale_above)
        if downscaled:
            print(f"downscaled {downscaled} image(s) over {config.downscale_above:,} pixels into "
                  f"{output.with_suffix('.images')}")
    write_jsonl_atomic(output, records)
    save_config(config, output.parent, name=output.with_suffix(".config.json").name)
    write_json_atomic(output.with_suffix(".stats.json"), {"field_coverage": field_coverage(records)})
    if config.skip_invalid:
        invalid = output.with_suffix(".invalid.txt")
        write_text_atomic(invalid, "".join(f"{p}\n" for p in problems))
        if problems:
            print(f"skipped {len(problems)} invalid input(s); listed in {invalid}")
    print(_summary(records))
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    from finscribe.cli import run

    raise SystemExit(run(main, prog="python -m finscribe.data.build_dataset"))
