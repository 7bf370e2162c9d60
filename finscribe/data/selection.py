"""Which records a stage works on: one shared option group and one selection function.

    from finscribe.data.selection import RecordSelection, load_selection
    records = load_selection(RecordSelection(data=Path("data/training_manifest.json"), split="test"))

Evaluate, compare, mine, benchmark-quant and the quickstart all select records this way, so
`--data`, `--split`, `--regions` and `--limit` mean the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finscribe.config import arg
from finscribe.data.build_dataset import DatasetBuildError, collect_from_manifest, load_records
from finscribe.data.formatters import OCR_PROMPT, PAGE
from finscribe.data.schema import REGIONS


@dataclass
class RecordSelection:
    data: Path = arg(help="training_manifest.json of `finscribe generate` or a records JSONL of `finscribe build-dataset`")
    split: str = arg("test", "split to use ('all' for every record)")
    regions: tuple[str, ...] = arg((), f"regions to use (default: every region in the data; 'page' = whole pages); "
                                       f"choices: {', '.join((*REGIONS, PAGE))}")
    limit: int | None = arg(None, "use only the first N selected records (quick checks)")

    def __post_init__(self) -> None:
        unknown = sorted(set(self.regions) - {*REGIONS, PAGE})
        if unknown:
            raise ValueError(f"unknown region(s) {unknown}; expected some of {[*REGIONS, PAGE]}")
        if self.limit is not None and self.limit < 1:
            raise ValueError("--limit must be >= 1")


def select_records(records: list[dict[str, Any]], split: str = "all", regions: tuple[str, ...] | list[str] = (),
                   source: str = "the data", skip_ocr: bool = False) -> list[dict[str, Any]]:
    """The records of `split` ('all': every split) and `regions` (empty: all). `skip_ocr` leaves out
    plain-text "OCR:" records (base-task replay), which have no JSON to score. An empty result is
    an error that says which splits and regions exist."""
    chosen = [r for r in records if (split == "all" or r.get("split") == split)
              and (not regions or r.get("region") in regions) and not (skip_ocr and r.get("prompt") == OCR_PROMPT)]
    if not chosen:
        splits = sorted({str(r.get("split")) for r in records})
        present = sorted({str(r.get("region")) for r in records if split == "all" or r.get("split") == split})
        raise DatasetBuildError(f"{source}: no record of split {split!r} and region(s) {list(regions) or 'any'}; "
                                f"splits present: {splits}, regions of that split: {present} (or --split all)")
    return chosen


def load_selection(selection: RecordSelection, skip_ocr: bool = False) -> list[dict[str, Any]]:
    """Read `selection.data` (manifest or JSONL) and select its records; errors name the file."""
    data = Path(selection.data)
    if not data.is_file():
        raise DatasetBuildError(f"{data}: not found; pass the training_manifest.json written by "
                                "`finscribe generate` or a JSONL written by `finscribe build-dataset`")
    if data.suffix == ".json":
        wanted = [r for r in selection.regions if r != PAGE] if selection.regions else list(REGIONS)
        splits = None if selection.split == "all" else [selection.split]
        records, _ = collect_from_manifest(data, regions=wanted, include_pages=PAGE in selection.regions, splits=splits)
    else:
        records = [dict(r) for r in load_records(data)]
    chosen = select_records(records, selection.split, selection.regions, str(data), skip_ocr=skip_ocr)
    return chosen[: selection.limit] if selection.limit else chosen
