"""Generate a synthetic invoice dataset: pages, region crops, labels, annotations and a manifest.

    finscribe generate --num-samples 8000 --output-dir data/synthetic_invoices
    python -m finscribe.synthetic.export generate_dataset --num-samples 8000 --output-dir data/synthetic_invoices

Layout of OUT (paths in the manifest are relative to OUT):
    pages/{id}.png  labels/{id}.json  crops/{id}__{region}.png  annotations/{id}__{region}.json
    pdfs/{id}.pdf (--pdf)  config.json  training_manifest.json

With `--composed-share S` a share S of the pages is drawn by a composed layout family
(`composer.py`: varied block order, columns, page sizes incl. an 80 mm receipt, logos, distractor
blocks) instead of a named layout; the held-out families (`--held-out-families`, default
`composed_banner`) join the held-out layouts (test split only), and each manifest record then also
gives its page's `page_size` and `size` [width, height] in pixels. Without it (the default) the
output is exactly that of the named layouts alone.

Sample i depends only on (seed, i), so a rerun writes byte-identical files. Every file is written
to a temp name and renamed; the label is written last and marks the sample as done, so an
interrupted run resumes where it stopped. The manifest is rebuilt at the end from the
deterministic spec of each sample plus the region boxes stored in its page PNG's text chunk.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import random
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

from PIL import Image
from tqdm import tqdm

from finscribe.config import arg, config_to_dict, parse_config
from finscribe.data.schema import REGIONS
from finscribe.errors import FinScribeError
from finscribe.fileio import ensure_output_dir, write_json_atomic
from finscribe.synthetic.augment import degrade, transform_box
from finscribe.synthetic.composer import COMPOSED_FAMILIES, HELD_OUT_FAMILIES
from finscribe.synthetic.generator import (
    SUPPORTED_LOCALES,
    SYNTHETIC_CURRENCIES,
    generate_invoice,
    random_invoice_spec,
)
from finscribe.synthetic.pngwrite import write_png
from finscribe.synthetic.renderer import LAYOUTS, render_invoice, render_pdf

MANIFEST_NAME = "training_manifest.json"
PNG_META_KEY = "finscribe"  # tEXt chunk of each page PNG: layout, font and region boxes
# Settings that change the content of a sample: a resumed run must use the same ones.
_CONTENT_FIELDS = ("seed", "dpi", "page_size", "degrade", "pdf", "held_out_layouts",
                   "val_fraction", "test_fraction", "locales", "currency", "composed_share", "held_out_families")
# Settings that exist only for composed pages: left out of config.json and the manifest while
# composed_share is 0, so that a run without them writes exactly what it wrote before they existed.
_COMPOSED_FIELDS = ("composed_share", "held_out_families")


class GenerateError(FinScribeError, ValueError):
    """Settings or an output folder that cannot produce a dataset; the message says what to do."""


@dataclass
class GenerateConfig:
    """Settings of `finscribe generate` (saved as OUT/config.json)."""

    num_samples: int = arg(8000, "number of invoices to generate")
    output_dir: Path = arg(Path("data/synthetic_invoices"), "output folder")
    seed: int = arg(0, "dataset seed; sample i depends only on (seed, i)")
    workers: int | None = arg(None, "worker processes; None = one per CPU core")
    dpi: int = arg(100, "page resolution in dots per inch")
    page_size: Literal["A4", "Letter"] = arg("A4", "page size")
    degrade: float = arg(0.1, "probability that a page gets scan/photo degradation (0..1); a degraded page costs ~3x the CPU")
    pdf: bool = arg(False, "also write pdfs/{id}.pdf with an invisible text layer")
    held_out_layouts: tuple[str, ...] = arg(("minimal",), "layouts kept out of train/val (all go to test)")
    val_fraction: float = arg(0.05, "share of the other samples in the val split")
    test_fraction: float = arg(0.05, "share of the other samples in the test split")
    locales: tuple[str, ...] = arg(SUPPORTED_LOCALES, "locales to draw from")
    currency: str | None = arg(None, "bill every invoice in this currency; None = the locale's own (~15%% another)")
    resume: bool = arg(True, "skip samples already complete in output_dir (--no-resume regenerates all)")
    composed_share: float = arg(0.0, "share of pages (0..1) drawn by a composed layout family instead of a named layout; "
                                     "0 = named layouts only")
    held_out_families: tuple[str, ...] = arg(HELD_OUT_FAMILIES, "composed families kept out of train/val when "
                                             "composed_share > 0 (added to held_out_layouts)")

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        self.locales = tuple(self.locales)
        self.held_out_families = tuple(self.held_out_families)
        unknown_families = [f for f in self.held_out_families if f not in COMPOSED_FAMILIES]
        if unknown_families:
            raise ValueError(f"unknown held-out famil(ies) {unknown_families}; families: {', '.join(COMPOSED_FAMILIES)}")
        if not 0 <= self.composed_share <= 1:
            raise ValueError(f"composed_share is a share in 0..1, got {self.composed_share}")
        held = tuple(self.held_out_layouts)
        if self.composed_share > 0:  # the manifest's held_out_layouts is what evaluation reads
            held += tuple(f for f in self.held_out_families if f not in held)
        self.held_out_layouts = held
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {self.num_samples}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.dpi < 30:
            raise ValueError(f"dpi must be at least 30, got {self.dpi}")
        if not 0 <= self.degrade <= 1:
            raise ValueError(f"degrade is a probability in 0..1, got {self.degrade}")
        if not (0 <= self.val_fraction and 0 <= self.test_fraction and self.val_fraction + self.test_fraction < 1):
            raise ValueError("val_fraction and test_fraction must be ≥ 0 and sum to less than 1")
        unknown = [loc for loc in self.locales if loc not in SUPPORTED_LOCALES]
        if unknown or not self.locales:
            raise ValueError(f"unsupported locale(s) {unknown}; supported: {', '.join(SUPPORTED_LOCALES)}")
        if self.currency is not None and self.currency not in SYNTHETIC_CURRENCIES:
            raise ValueError(f"unknown currency {self.currency!r}; the generator supports: {', '.join(SYNTHETIC_CURRENCIES)}")


def sample_id(i: int) -> str:
    return f"inv_{i:06d}"


def _paths(i: int) -> dict[str, str]:
    sid = sample_id(i)
    paths = {"page": f"pages/{sid}.png", "label": f"labels/{sid}.json", "pdf": f"pdfs/{sid}.pdf"}
    for region in REGIONS:
        paths[f"crop:{region}"] = f"crops/{sid}__{region}.png"
        paths[f"annotation:{region}"] = f"annotations/{sid}__{region}.json"
    return paths


def _split(config: GenerateConfig, i: int, layout: str) -> str:
    if layout in config.held_out_layouts:
        return "test"
    u = random.Random(f"split:{config.seed}:{i}").random()
    return "test" if u < config.test_fraction else "val" if u < config.test_fraction + config.val_fraction else "train"


def _spec(config: GenerateConfig, i: int) -> Any:
    """Sample i's spec: random_invoice_spec's, with its layout swapped for a composed family on
    a share of the samples (its own RNG, so the locale, currency, items and seed stay the same)."""
    spec = random_invoice_spec(config.seed, i, locales=config.locales)
    if config.composed_share > 0:
        rng = random.Random(f"composed:{config.seed}:{i}")
        if rng.random() < config.composed_share:
            spec = dataclasses.replace(spec, layout=rng.choice(COMPOSED_FAMILIES))
    return spec


def _config_dict(config: GenerateConfig) -> dict[str, Any]:
    d = config_to_dict(config)
    return d if config.composed_share > 0 else {k: v for k, v in d.items() if k not in _COMPOSED_FIELDS}


def _record(config: GenerateConfig, i: int, spec: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """The manifest entry of sample i (from its spec and the page's stored metadata)."""
    paths = _paths(i)
    record = {
        "id": sample_id(i),
        "split": _split(config, i, spec.layout),
        "layout": spec.layout,
        "locale": spec.locale,
        "currency": config.currency or spec.currency,
        "font_family": meta["font_family"],
        "degraded": meta["degraded"],
        "page": paths["page"],
        "label": paths["label"],
        "regions": {
            region: {"crop": paths[f"crop:{region}"], "annotation": paths[f"annotation:{region}"],
                     "box": list(meta["boxes"][region])}
            for region in REGIONS if region in meta["boxes"]
        },
    }
    if config.pdf:
        record["pdf"] = paths["pdf"]
    if config.composed_share > 0:
        record["page_size"], record["size"] = meta["page_size"], meta["size"]
    return record


def make_sample(config: GenerateConfig, i: int) -> dict[str, Any]:
    """Render and write every file of sample i (label last) and return its manifest record."""

    out = config.output_dir
    spec = _spec(config, i)
    try:
        invoice = generate_invoice(spec.num_items, config.currency or spec.currency, spec.seed, spec.locale)
        page = render_invoice(invoice, spec.layout, dpi=config.dpi, page_size=config.page_size, seed=spec.seed)
    except ValueError as err:  # e.g. a font without a glyph the invoice needs: name the sample
        raise GenerateError(f"sample {sample_id(i)} ({spec}): {err}") from None
    rng = random.Random(f"degrade:{config.seed}:{i}")
    degraded = rng.random() < config.degrade
    image = page.image
    boxes = {region: [int(v) for v in box] for region, box in page.boxes.items()}
    if degraded:

        strength = rng.choice(("light", "medium", "medium", "heavy"))
        image = degrade(image, seed=spec.seed, strength=strength)
        # A degraded page may be slightly rotated: crop where the region now lies.
        boxes = {region: list(transform_box(box, image.size, seed=spec.seed, strength=strength))
                 for region, box in boxes.items()}
        page = dataclasses.replace(page, image=image)
    paths = _paths(i)
    for region in REGIONS:
        if region not in boxes:
            continue
        write_png(image.crop(tuple(boxes[region])), out / paths[f"crop:{region}"])
        write_json_atomic(out / paths[f"annotation:{region}"],
                          {"region": region, "fields": invoice.region_fields(region)})
    if config.pdf:
        render_pdf(page, out / paths["pdf"])  # atomic itself (temp + rename)
    meta = {"layout": spec.layout, "font_family": page.font_family, "degraded": degraded, "boxes": boxes}
    if config.composed_share > 0:
        meta.update(page_size=page.page_size, size=list(image.size))
    write_png(image, out / paths["page"], {PNG_META_KEY: json.dumps(meta, separators=(",", ":"))})
    write_json_atomic(out / paths["label"], invoice.to_label())  # the commit marker: last
    return _record(config, i, spec, meta)


def _done_record(config: GenerateConfig, i: int) -> dict[str, Any] | None:
    """The record of a sample finished by an earlier run, or None if it must be (re)made."""
    paths = _paths(i)
    out = config.output_dir
    needed = [paths["page"]] + ([paths["pdf"]] if config.pdf else [])
    if not (out / paths["label"]).is_file() or not all((out / p).is_file() for p in needed):
        return None
    with Image.open(out / paths["page"]) as im:  # reads the header chunks only, no decoding
        text = im.info.get(PNG_META_KEY)
    if text is None:
        return None
    meta = json.loads(text)
    if not all((out / paths[f"{kind}:{r}"]).is_file() for r in meta["boxes"] for kind in ("crop", "annotation")):
        return None
    if config.composed_share > 0 and "page_size" not in meta:
        return None
    return _record(config, i, _spec(config, i), meta)


def _remove_temp_files(out: Path) -> None:
    for sub in ("pages", "labels", "crops", "annotations", "pdfs"):
        folder = out / sub
        if folder.is_dir():
            for tmp in folder.glob(".inv_*.tmp"):
                tmp.unlink(missing_ok=True)


def _prepare_output(config: GenerateConfig) -> None:

    unknown = [name for name in config.held_out_layouts if name not in LAYOUTS + COMPOSED_FAMILIES]
    if unknown:
        raise GenerateError(f"unknown held-out layout(s) {unknown}; layouts: {', '.join(LAYOUTS + COMPOSED_FAMILIES)}")
    out = config.output_dir
    for sub in ("pages", "labels", "crops", "annotations") + (("pdfs",) if config.pdf else ()):
        ensure_output_dir(out / sub)
    saved = out / "config.json"
    if config.resume and saved.is_file():
        old = {"composed_share": 0.0, **json.loads(saved.read_text(encoding="utf-8"))}  # absent: none composed
        new = config_to_dict(config)
        changed = [f"{k} (was {old[k]!r}, now {new[k]!r})" for k in _CONTENT_FIELDS if k in old and old[k] != new[k]]
        if changed:
            raise GenerateError(
                f"{out} holds samples generated with different settings: {'; '.join(changed)}. "
                "Use a new --output-dir, the same settings, or --no-resume to regenerate everything"
            )


def generate_dataset(
    num_samples: int = 8000,
    output_dir: Path = Path("data/synthetic_invoices"),
    seed: int = 0,
    workers: int | None = None,
    **options: Any,
) -> Path:
    """Write the dataset (see the module docstring) and return the manifest path.

    `options` are the other `GenerateConfig` fields (dpi, page_size, degrade, pdf, ...).
    Raises `ValueError` for bad settings and `GenerateError` for an unusable output folder.
    """
    config = GenerateConfig(num_samples=num_samples, output_dir=Path(output_dir), seed=seed,
                            workers=workers, **options)
    out = config.output_dir
    _prepare_output(config)
    _remove_temp_files(out)
    write_json_atomic(out / "config.json", {"stage": type(config).__name__, **_config_dict(config)})  # as save_config

    records: dict[int, dict[str, Any]] = {}
    if config.resume:
        for i in range(config.num_samples):
            record = _done_record(config, i)
            if record is not None:
                records[i] = record
    todo = [i for i in range(config.num_samples) if i not in records]
    workers = min(config.workers or os.cpu_count() or 1, max(1, len(todo)))
    bar = tqdm(total=config.num_samples, initial=len(records), desc="generate", unit="inv")
    try:
        if workers == 1:
            for i in todo:
                records[i] = make_sample(config, i)
                bar.update()
        else:
            # fork: workers inherit the imported renderer and fonts instead of re-importing them.
            ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
            with ctx.Pool(workers) as pool:
                for i, record in zip(todo, pool.imap(partial(make_sample, config), todo, chunksize=4)):
                    records[i] = record
                    bar.update()
    finally:
        bar.close()
        _remove_temp_files(out)

    manifest = {"version": 1, "config": _config_dict(config),
                "samples": [records[i] for i in range(config.num_samples)]}
    path = out / MANIFEST_NAME
    write_json_atomic(path, manifest, indent=1)
    return path


def main(argv: list[str] | None = None, prog: str = "finscribe generate") -> int:
    """CLI entry: `finscribe generate --num-samples N --output-dir DIR [...]`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["generate_dataset"]:  # `python -m finscribe.synthetic.export generate_dataset ...`
        argv = argv[1:]
    config = parse_config(GenerateConfig, argv, prog, __doc__.split("\n\n")[0])
    options = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    try:
        path = generate_dataset(**options)
    except (GenerateError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {config.num_samples} samples; manifest: {path}")
    return 0


if __name__ == "__main__":
    from finscribe.cli import run

    raise SystemExit(run(main, prog="python -m finscribe.synthetic.export"))
