"""`finscribe detect`: the regions of whole pages, cropped, with no hand-cropping.

    finscribe detect --input scans/ --output-dir detected
    finscribe build-dataset --crops-dir detected/crops --annotations-dir annotations --output data/real.jsonl
    finscribe label-studio-tasks --predictions detected/crops.jsonl --output tasks.json

Every page of every PNG, JPEG, TIFF and PDF (`finscribe.ingest.read_document`) goes through the
region detector (`finscribe.detection`). OUT gets:

* `crops/<stem>__<region>.png` (`<stem>_p<N>__<region>.png` for page N of a multi-page file):
  one per region found, widened by `--margin` pixels — the names `build-dataset --crops-dir`
  pairs with `annotations/<same name>.json`;
* `boxes.jsonl`: one line per page — `source`, `page`, `size`, `boxes` {region: [x0, y0, x1, y1]}
  in page pixels (PIL crop convention, before the margin), `scores`, `missing` (regions not found);
* `crops.jsonl`: one row per crop (`image`, `region`, `source_id`, ...), which
  `label-studio-tasks --predictions` turns into tasks to annotate;
* `previews/<stem>.png`: the page with the boxes drawn and labelled, and the missing regions listed;
* `detect_config.json`, and `skipped.txt` naming any file of a folder that could not be read.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from finscribe.config import parse_config, save_config
from finscribe.data.schema import REGIONS
from finscribe.detect_config import DOCUMENT_SUFFIXES, DetectConfig
from finscribe.detection import PageRegions, crop_regions, detect_regions, load_detector
from finscribe.errors import FinScribeError
from finscribe.fileio import atomic_file, ensure_output_dir, write_text_atomic
from finscribe.ingest import IngestError, read_document

COLOURS = {"vendor_block": (214, 39, 40), "client_info": (31, 119, 180), "invoice_meta": (44, 160, 44),
           "line_items_table": (148, 103, 189), "totals_section": (255, 127, 14)}
PREVIEW_LONG_SIDE = 1600


class DetectInputError(FinScribeError, ValueError):
    """An --input that holds no document to detect regions on."""


def input_files(path: Path) -> list[Path]:
    """The documents to read: the file itself, or every supported file under the folder (sorted, hidden ones aside)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DetectInputError(f"--input {path}: no such file or folder")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DOCUMENT_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not files:
        raise DetectInputError(f"--input {path}: no PNG, JPEG, TIFF or PDF file in the folder")
    return files


def stem_of(file: Path, root: Path) -> str:
    """The crop-name stem of a file: its path under the input folder, '/' as '_' (two scans called
    x.png in different folders must not overwrite each other's crops); no '__' (the region separator)."""
    relative = file.relative_to(root) if root.is_dir() else Path(file.name)
    return "_".join(relative.with_suffix("").parts).replace("__", "_")


def save_png(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        image.save(tmp, format="PNG")


def preview(page: Image.Image, regions: PageRegions) -> Image.Image:
    """The page (downscaled to at most PREVIEW_LONG_SIDE) with each box drawn and labelled, and the missing regions listed."""
    scale = min(1.0, PREVIEW_LONG_SIDE / max(page.size))
    image = page.convert("RGB").resize((max(1, round(page.width * scale)), max(1, round(page.height * scale)))) if scale < 1 else page.convert("RGB")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(10, round(14 * max(image.size) / 1000)))
    for region, box in regions.boxes.items():
        x0, y0, x1, y1 = (round(v * scale) for v in box)
        colour = COLOURS[region]
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=colour, width=3)
        label = f"{region} {regions.scores[region]:.2f}"
        left, top, right, bottom = draw.textbbox((x0, y0), label, font=font)
        lift = bottom - top + 4
        y = y0 - lift if y0 >= lift else y0
        draw.rectangle((x0, y, x0 + right - left + 6, y + lift), fill=colour)
        draw.text((x0 + 3, y + 1), label, fill=(255, 255, 255), font=font)
    if regions.missing:
        draw.text((6, 6), "missing: " + ", ".join(regions.missing), fill=(200, 0, 0), font=font)
    return image


def detect_file(file: Path, stem: str, model, processor, config: DetectConfig, out: Path) -> tuple[list[dict], list[dict]]:
    """Detect, crop and preview every page of one file; returns its boxes.jsonl and crops.jsonl rows."""
    _, pages = read_document(file)
    found = detect_regions(model, processor, pages, threshold=config.threshold, batch_size=config.batch_size,
                           snap=config.snap)
    page_rows, crop_rows = [], []
    for number, (page, regions) in enumerate(zip(pages, found), start=1):
        page_stem = f"{stem}_p{number}" if len(pages) > 1 else stem
        crops = {}
        for region, crop in crop_regions(page, regions, config.margin).items():
            crops[region] = f"crops/{page_stem}__{region}.png"
            save_png(crop, out / crops[region])
            crop_rows.append({"image": str((out / crops[region]).resolve()), "region": region, "source_id": page_stem,
                              "source": str(file), "page": number, "box": list(regions.boxes[region]),
                              "score": round(regions.scores[region], 4), "parsed": None})
        save_png(preview(page, regions), out / "previews" / f"{page_stem}.png")
        page_rows.append({"source": str(file), "page": number, "stem": page_stem, **regions.to_json(), "crops": crops})
    return page_rows, crop_rows


def detect(config: DetectConfig) -> Path:
    """Run `finscribe detect`; returns the output folder."""
    files = input_files(Path(config.input))
    out = ensure_output_dir(config.output_dir)
    model, processor = load_detector(config.layout_model)
    save_config(config, out, name="detect_config.json")
    page_rows, crop_rows, skipped, stems = [], [], [], {}
    for file in tqdm(files, desc="detect", unit="file", disable=len(files) == 1):
        stem = stem_of(file, Path(config.input))
        if stem in stems:
            raise DetectInputError(f"--input: {file} and {stems[stem]} would both be cropped as {stem}__*; rename one")
        stems[stem] = file
        try:
            pages, crops = detect_file(file, stem, model, processor, config, out)
        except IngestError as err:
            if len(files) == 1:
                raise
            skipped.append(str(err))
            print(f"skipped {err}", file=sys.stderr)
            continue
        page_rows += pages
        crop_rows += crops
    write_text_atomic(out / "boxes.jsonl", "".join(json.dumps(row) + "\n" for row in page_rows))
    write_text_atomic(out / "crops.jsonl", "".join(json.dumps(row) + "\n" for row in crop_rows))
    if skipped:
        write_text_atomic(out / "skipped.txt", "".join(line + "\n" for line in skipped))
    missing = {region: sum(region in row["missing"] for row in page_rows) for region in REGIONS}
    print(f"{len(page_rows)} page(s) of {len(files) - len(skipped)} file(s): {len(crop_rows)} crop(s) in {out / 'crops'}"
          + (f"; not found: {', '.join(f'{r} on {n} page(s)' for r, n in missing.items() if n)}" if any(missing.values()) else "")
          + (f"; {len(skipped)} file(s) skipped (skipped.txt)" if skipped else ""))
    return out


def main(argv: list[str] | None = None, prog: str = "finscribe detect") -> int:
    detect(parse_config(DetectConfig, argv, prog, __doc__.split("\n\n")[0]))
    return 0


if __name__ == "__main__":
    from finscribe.cli import run

    raise SystemExit(run(main, prog="python -m finscribe.detect"))
