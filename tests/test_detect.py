"""finscribe detect: every page of a PDF is detected, cropped and previewed; boxes.jsonl lists each
page's boxes and its missing regions; the crops folder goes straight into build-dataset."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from finscribe import detect_config
from finscribe.cli import main as cli
from finscribe.data.build_dataset import collect_from_dirs
from finscribe.data.schema import REGIONS
from finscribe.detect import COLOURS, preview, stem_of
from finscribe.detection import DEFAULT_LAYOUT_MODEL, DEFAULT_MARGIN, PageRegions
from finscribe.synthetic.export import generate_dataset


@pytest.fixture(scope="module")
def two_pages(tmp_path_factory):
    """A two-page PDF of two synthetic invoices, and the synthetic folder (labels, annotations)."""
    root = tmp_path_factory.mktemp("docs")
    manifest = generate_dataset(2, root / "synth", seed=11, workers=1, degrade=0)
    samples = json.loads(manifest.read_text())["samples"]
    pages = [Image.open(root / "synth" / s["page"]).convert("RGB") for s in samples]
    pages[0].save(root / "two.pdf", save_all=True, append_images=pages[1:], resolution=100)
    return root / "two.pdf", root / "synth", samples


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_defaults_agree_with_the_detection_module():
    assert detect_config.DEFAULT_LAYOUT_MODEL == DEFAULT_LAYOUT_MODEL
    assert detect_config.DEFAULT_MARGIN == DEFAULT_MARGIN


def test_detect_crops_and_previews_every_page_of_a_two_page_pdf(two_pages, tiny_detector_dir, tmp_path, capsys):
    pdf, _, _ = two_pages
    out = tmp_path / "out"
    assert cli(["detect", "--input", str(pdf), "--output-dir", str(out), "--layout-model", str(tiny_detector_dir),
                "--threshold", "0", "--margin", "30"]) == 0
    rows = read_jsonl(out / "boxes.jsonl")
    assert [(r["source"], r["page"], r["stem"]) for r in rows] == [(str(pdf), 1, "two_p1"), (str(pdf), 2, "two_p2")]
    crops = read_jsonl(out / "crops.jsonl")
    for row in rows:
        width, height = row["size"]
        shown = Image.open(out / "previews" / f"{row['stem']}.png").size  # downscaled to 1600 px at most
        assert max(shown) == min(1600, max(width, height)) and abs(shown[0] / shown[1] - width / height) < 0.01
        assert set(row["boxes"]) | set(row["missing"]) == set(REGIONS) and not set(row["boxes"]) & set(row["missing"])
        assert set(row["scores"]) == set(row["boxes"])
        for region, (x0, y0, x1, y1) in row["boxes"].items():
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
            crop = Image.open(out / "crops" / f"{row['stem']}__{region}.png")
            assert crop.size == (min(width, x1 + 30) - max(0, x0 - 30), min(height, y1 + 30) - max(0, y0 - 30))
            assert row["crops"][region] == f"crops/{row['stem']}__{region}.png"
    assert len(crops) == sum(len(r["boxes"]) for r in rows) == len(list((out / "crops").iterdir())) > 0
    assert json.loads((out / "detect_config.json").read_text())["margin"] == 30
    assert f"{len(rows)} page(s) of 1 file(s)" in capsys.readouterr().out


def test_a_region_not_found_is_listed_for_its_page(two_pages, tiny_detector_dir, tmp_path, capsys):
    synth = two_pages[1]
    folder = tmp_path / "scans"
    (folder / "b").mkdir(parents=True)
    shutil.copy(synth / "pages" / "inv_000000.png", folder / "a.png")
    shutil.copy(synth / "pages" / "inv_000001.png", folder / "b" / "a.png")
    (folder / "broken.tiff").write_bytes(b"II*\x00 not a tiff")
    out = tmp_path / "out"
    assert cli(["detect", "--input", str(folder), "--output-dir", str(out), "--layout-model", str(tiny_detector_dir),
                "--threshold", "1.0"]) == 0
    rows = read_jsonl(out / "boxes.jsonl")
    assert [(r["stem"], r["page"], r["boxes"], r["missing"]) for r in rows] == [("a", 1, {}, list(REGIONS)), ("b_a", 1, {}, list(REGIONS))]
    assert not (out / "crops").exists() or not any((out / "crops").iterdir())
    assert "broken.tiff" in (out / "skipped.txt").read_text()
    said = capsys.readouterr()
    assert "not found: vendor_block on 2 page(s)" in said.out and "broken.tiff" in said.err


def test_detected_crops_go_into_build_dataset(two_pages, tiny_detector_dir, tmp_path):
    pdf, synth, samples = two_pages
    out = tmp_path / "out"
    assert cli(["detect", "--input", str(pdf), "--output-dir", str(out), "--layout-model", str(tiny_detector_dir),
                "--threshold", "0", "--margin", "30"]) == 0
    # The annotator writes one annotation per crop, named like it: here each page's label, region by region.
    annotations = tmp_path / "annotations"
    annotations.mkdir()
    rows = read_jsonl(out / "boxes.jsonl")
    for row, sample in zip(rows, samples):
        for region in row["boxes"]:
            shutil.copy(synth / sample["regions"][region]["annotation"], annotations / f"{row['stem']}__{region}.json")
    records, problems = collect_from_dirs(out / "crops", annotations)
    assert problems == []
    assert sorted((r["source_id"], r["region"]) for r in records) == sorted((row["stem"], region) for row in rows for region in row["boxes"])
    assert len(records) > 0


def test_detect_refuses_an_input_with_no_document(tmp_path, tiny_detector_dir, capsys):
    (tmp_path / "empty").mkdir()
    assert cli(["detect", "--input", str(tmp_path / "empty"), "--output-dir", str(tmp_path / "o"), "--layout-model", str(tiny_detector_dir)]) == 2
    assert "no PNG, JPEG, TIFF or PDF file" in capsys.readouterr().err
    assert cli(["detect", "--input", str(tmp_path / "x.png"), "--output-dir", str(tmp_path / "o"), "--layout-model", str(tmp_path)]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_preview_draws_each_box_in_its_colour_and_lists_the_missing(tmp_path):
    page = Image.new("RGB", (400, 600), "white")
    regions = PageRegions(size=(400, 600), boxes={"totals_section": (100, 300, 300, 400)}, scores={"totals_section": 0.91},
                          missing=("vendor_block", "client_info", "invoice_meta", "line_items_table"))
    image = preview(page, regions)
    assert image.getpixel((200, 399)) == COLOURS["totals_section"]  # the bottom edge
    assert image.getpixel((200, 350)) == (255, 255, 255)  # the inside is left as it is
    assert any(image.getpixel((x, y))[0] > 150 and image.getpixel((x, y))[1] < 80 for x in range(6, 120) for y in range(6, 20))  # "missing: ..."


def test_stems_keep_the_folder_and_never_hold_the_region_separator(tmp_path):
    (tmp_path / "x").mkdir()
    assert stem_of(tmp_path / "x" / "scan__1.pdf", tmp_path) == "x_scan_1"
    assert stem_of(tmp_path / "inv.png", tmp_path / "inv.png") == "inv"
