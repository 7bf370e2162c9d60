"""build_dataset: records from crops+annotations and from a manifest; every bad input reported."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from file_helpers import write_annotation as _annotation
from file_helpers import write_png as _png
from PIL import Image

from finscribe.cli import main as cli_main
from finscribe.data.build_dataset import (
    DatasetBuildError,
    build_dataset,
    build_dataset_from_manifest,
    check_image,
    collect_from_dirs,
    load_records,
    main,
)
from finscribe.data.formatters import parse_output, prompt_for
from finscribe.data.schema import REGIONS, Invoice, LineItem, Party


def _invoice() -> Invoice:
    return Invoice(
        vendor=Party("Acme GmbH", "Main St 1, Berlin", tax_id="DE123", email="a@acme.de"),
        client=Party("Bob Ltd", "High St 2, London"),
        invoice_number="INV-7",
        invoice_date=dt.date(2024, 3, 15),
        due_date=dt.date(2024, 4, 14),
        payment_terms="Net 30",
        currency="EUR",
        line_items=(LineItem("Widget", Decimal("3"), Decimal("12.50"), Decimal("37.50")),),
        subtotal=Decimal("37.50"), discount=Decimal("0"), tax_rate=Decimal("19"),
        tax_amount=Decimal("7.13"), total=Decimal("44.63"), locale="de_DE",
    )


@pytest.fixture
def crops_and_annotations(tmp_path):
    crops, annotations = tmp_path / "crops", tmp_path / "annotations"
    invoice = _invoice()
    for region in REGIONS:
        _png(crops / f"inv_000001__{region}.png")
        _annotation(annotations / f"inv_000001__{region}.json", region, invoice.region_fields(region))
    return crops, annotations


@pytest.fixture
def manifest(tmp_path):
    """A manifest in the shape `finscribe generate` writes: two samples, train and test."""
    root = tmp_path / "synthetic"
    label = _invoice().to_label()
    samples = []
    for sid, split, layout in (("inv_000000", "train", "classic"), ("inv_000001", "test", "modern")):
        _png(root / "pages" / f"{sid}.png", (200, 280))
        (root / "labels").mkdir(parents=True, exist_ok=True)
        (root / "labels" / f"{sid}.json").write_text(json.dumps(label), encoding="utf-8")
        regions = {}
        for region in REGIONS:
            crop, annotation = f"crops/{sid}__{region}.png", f"annotations/{sid}__{region}.json"
            _png(root / crop)
            _annotation(root / annotation, region, label[region])
            regions[region] = {"crop": crop, "annotation": annotation, "box": [0, 0, 64, 40]}
        samples.append({"id": sid, "split": split, "layout": layout, "locale": "de_DE", "currency": "EUR",
                        "page": f"pages/{sid}.png", "label": f"labels/{sid}.json", "regions": regions})
    path = root / "training_manifest.json"
    path.write_text(json.dumps({"version": 1, "config": {}, "samples": samples}), encoding="utf-8")
    return path


def test_build_dataset_from_crops_and_annotations(crops_and_annotations):
    crops, annotations = crops_and_annotations
    dataset = build_dataset(crops, annotations, split="val")
    assert len(dataset) == 5
    assert set(dataset.column_names) == {"image", "prompt", "target", "region", "split", "source_id", "layout"}
    by_region = {row["region"]: row for row in dataset}
    totals = by_region["totals_section"]
    assert totals["prompt"] == prompt_for("totals_section")
    assert parse_output(totals["target"]) == _invoice().region_fields("totals_section")
    assert totals["target"] == json.dumps(_invoice().region_fields("totals_section"), separators=(",", ":"))
    assert Path(totals["image"]).is_absolute() and Path(totals["image"]).exists()
    assert (totals["split"], totals["source_id"], totals["layout"]) == ("val", "inv_000001", "unknown")
    assert dataset.info.description == ""


def test_user_crops_with_other_names_and_formats_in_subfolders(tmp_path):
    crops, annotations = tmp_path / "c", tmp_path / "a"
    (crops / "x").mkdir(parents=True)
    Image.new("RGB", (50, 50)).save(crops / "x" / "scan 1.jpg")
    _annotation(annotations / "x" / "scan 1.json", "totals_section", _invoice().region_fields("totals_section"))
    [record] = build_dataset(crops, annotations).to_list()
    assert (record["source_id"], record["region"]) == ("scan 1", "totals_section")


def test_build_dataset_from_manifest(manifest):
    dataset = build_dataset_from_manifest(manifest)
    assert len(dataset) == 10
    assert sorted(set(dataset["split"])) == ["test", "train"]
    assert sorted(set(dataset["layout"])) == ["classic", "modern"]
    assert all(Path(p).is_absolute() and Path(p).exists() for p in dataset["image"])

    with_pages = build_dataset_from_manifest(manifest, regions=["totals_section"], include_pages=True, splits=["train"])
    assert sorted(with_pages["region"]) == ["page", "totals_section"]
    page = next(row for row in with_pages if row["region"] == "page")
    assert page["prompt"] == prompt_for("page")
    assert parse_output(page["target"]) == _invoice().to_label()
    assert page["image"].endswith("pages/inv_000000.png")


def test_every_bad_input_is_reported_in_one_list(crops_and_annotations):
    crops, annotations = crops_and_annotations
    _png(crops / "orphan_crop.png")
    _annotation(annotations / "orphan_annotation.json", "totals_section", {})
    (crops / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    _annotation(annotations / "corrupt.json", "totals_section", _invoice().region_fields("totals_section"))
    _png(crops / "malformed.png")
    (annotations / "malformed.json").write_text('{"region": "totals_section", "fields": {', encoding="utf-8")
    _png(crops / "schema.png")
    # every problem of one file, not only the first: an unknown field and two bad values
    _annotation(annotations / "schema.json", "totals_section",
                {"total": "RM 12.00", "tax_rate": "19.0", "due": "2024-01-01"})
    _png(crops / "region.png")
    _annotation(annotations / "region.json", "footer", {"note": "x"})
    _png(crops / "tiny.png", (20, 200))
    _annotation(annotations / "tiny.json", "totals_section", _invoice().region_fields("totals_section"))
    _png(crops / "huge.png", (200, 200))
    _annotation(annotations / "huge.json", "totals_section", _invoice().region_fields("totals_section"))
    (crops / "notes.txt").write_text("not a crop", encoding="utf-8")
    # the manifest-style name says vendor_block but the file says totals_section
    _png(crops / "inv_9__vendor_block.png")
    _annotation(annotations / "inv_9__vendor_block.json", "totals_section", _invoice().region_fields("totals_section"))

    _png(crops / "both.png", (10, 10))  # a bad image with a bad annotation: both reported
    (annotations / "both.json").write_text("{}", encoding="utf-8")

    with pytest.raises(DatasetBuildError) as info:
        build_dataset(crops, annotations, max_pixels=30_000)
    message, problems = str(info.value), info.value.problems
    assert len(problems) == 14
    expected = {
        "orphan_crop.png": "crop without annotation",
        "orphan_annotation.json": "annotation without crop",
        "corrupt.png": "unreadable or corrupt image",
        "malformed.json": "malformed JSON",
        "schema.json": "unknown field(s) ['due']",
        "region.json": "unknown region 'footer'",
        "tiny.png": "image too small",
        "huge.png": "image too large",
        "notes.txt": "not a supported image type",
        "inv_9__vendor_block.json": "disagrees with the file name",
        "both.png": "image too small",
        "both.json": 'expected {"region"',
    }
    for name, reason in expected.items():
        assert any(name in p and reason in p for p in problems), (name, problems)
        assert name in message
    schema = [p for p in problems if "schema.json" in p]
    assert len(schema) == 3 and any("'RM 12.00' is not a canonical number" in p for p in schema)
    assert any("'19.0' is not canonical (expected '19'" in p for p in schema)
    assert "--skip-invalid" in message


def test_skip_invalid_keeps_the_good_and_returns_the_list(crops_and_annotations):
    crops, annotations = crops_and_annotations
    _png(crops / "orphan.png")
    dataset = build_dataset(crops, annotations, skip_invalid=True)
    assert len(dataset) == 5
    assert "orphan.png: crop without annotation" in dataset.info.description
    records, problems = collect_from_dirs(crops, annotations, skip_invalid=True)
    assert len(records) == 5 and len(problems) == 1


def test_manifest_problems_are_collected(manifest):
    root = manifest.parent
    (root / "crops" / "inv_000001__totals_section.png").unlink()
    (root / "annotations" / "inv_000000__invoice_meta.json").write_text("[]", encoding="utf-8")
    # a money value not canonical for the sample's currency
    annotation = root / "annotations" / "inv_000000__totals_section.json"
    data = json.loads(annotation.read_text())
    data["fields"]["total"] = "44.6"
    annotation.write_text(json.dumps(data))
    with pytest.raises(DatasetBuildError) as info:
        build_dataset_from_manifest(manifest)
    problems = info.value.problems
    assert len(problems) == 3
    assert any("inv_000001__totals_section.png: image file not found" in p for p in problems)
    assert any("inv_000000__invoice_meta.json" in p for p in problems)
    assert any("not canonical for EUR" in p for p in problems)
    assert len(build_dataset_from_manifest(manifest, skip_invalid=True)) == 7


def test_image_limits_and_decompression_guard(tmp_path):
    big = tmp_path / "big.png"
    Image.new("1", (7000, 7000)).save(big)  # 49 MP, tiny on disk: rejected from the header
    assert "too large" in check_image(big)
    truncated = tmp_path / "truncated.png"
    _png(tmp_path / "ok.png", (300, 300))
    truncated.write_bytes((tmp_path / "ok.png").read_bytes()[:-30])
    assert "corrupt" in check_image(truncated)
    assert check_image(tmp_path / "ok.png") is None


def test_cli_writes_jsonl_config_and_invalid_list(crops_and_annotations, tmp_path, capsys):
    crops, annotations = crops_and_annotations
    _png(crops / "orphan.png")
    output = tmp_path / "out" / "training_dataset.jsonl"
    args = ["--crops-dir", str(crops), "--annotations-dir", str(annotations), "--output", str(output)]
    with pytest.raises(DatasetBuildError) as info:
        main(args)
    assert "orphan.png" in str(info.value) and not output.exists()

    assert cli_main(["build-dataset", *args, "--skip-invalid"]) == 0
    lines = output.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5 and all(json.loads(line)["prompt"] for line in lines)
    config = json.loads((output.parent / "training_dataset.config.json").read_text())
    assert config["stage"] == "BuildDatasetConfig" and config["skip_invalid"] is True
    invalid = (output.parent / "training_dataset.invalid.txt").read_text().splitlines()
    assert len(invalid) == 1 and "orphan.png" in invalid[0]
    assert sorted(p.name for p in output.parent.iterdir()) == [
        "training_dataset.config.json", "training_dataset.invalid.txt", "training_dataset.jsonl",
        "training_dataset.stats.json"]  # no temp files
    assert "totals_section" in capsys.readouterr().out

    dataset = load_records(output)
    assert len(dataset) == 5 and set(dataset["region"]) == set(REGIONS)


def test_cli_from_manifest_and_load_records_of_a_manifest(manifest, tmp_path):
    output = tmp_path / "ds.jsonl"
    assert main(["--manifest", str(manifest), "--output", str(output), "--splits", "test", "--include-pages"]) == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 6 and {r["split"] for r in rows} == {"test"}
    assert len(load_records(manifest)) == 10


def test_cli_rejects_ambiguous_sources(manifest, crops_and_annotations, tmp_path):
    crops, _ = crops_and_annotations
    with pytest.raises(SystemExit):
        main(["--manifest", str(manifest), "--crops-dir", str(crops), "--output", str(tmp_path / "x.jsonl")])
    with pytest.raises(SystemExit):
        main(["--crops-dir", str(crops), "--output", str(tmp_path / "x.jsonl")])


def test_load_records_reports_bad_lines(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"image": "a.png"}\n', encoding="utf-8")
    with pytest.raises(DatasetBuildError, match=r"bad.jsonl:1: record lacks"):
        load_records(path)
