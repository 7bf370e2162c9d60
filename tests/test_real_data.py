"""Users' own documents: partial annotations, every ISO 4217 currency, the one-pass error list,
non-canonical JSONL targets refused, symlink loops and folders reported, big scans accepted."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from file_helpers import write_annotation as _annotation
from file_helpers import write_png as _png
from PIL import Image

from finscribe.data.build_dataset import (
    DatasetBuildError,
    build_dataset_from_manifest,
    collect_from_dirs,
    collect_from_manifest,
    load_records,
    main,
)
from finscribe.data.formatters import parse_output
from finscribe.data.records import field_coverage
from finscribe.data.schema import (
    SchemaError,
    document_currency,
    format_money,
    get_currency,
    read_region_annotation,
    validate_label,
    validate_region_fields,
)
from finscribe.eval.field_accuracy import field_accuracy, field_accuracy_details
from finscribe.eval.report_markdown import coverage_lines
from finscribe.eval.teds import table_teds
from finscribe.limits import MAX_PIXELS, PROCESSOR_MAX_PIXELS

# ----------------------------------------------------------------------------- partial annotations


def test_partial_annotations_train_on_exactly_their_fields(tmp_path):
    crops, annotations = tmp_path / "crops", tmp_path / "annotations"
    # a receipt: no invoice number, no due date, no subtotal; fields given out of order
    partial = {
        "r1__vendor_block": ("vendor_block", {"address": "1 Jalan Sagu, Johor", "vendor_name": "Kedai Papan"}),
        "r1__invoice_meta": ("invoice_meta", {"invoice_date": "2018-12-25"}),
        "r1__totals_section": ("totals_section", {"total": "57.40"}),
        "r2__totals_section": ("totals_section", {"currency": "MYR", "total": "9.00", "tax_amount": "0.54"}),
    }
    for stem, (region, fields) in partial.items():
        _png(crops / f"{stem}.png")
        _annotation(annotations / f"{stem}.json", region, fields)
    records, problems = collect_from_dirs(crops, annotations)
    assert problems == []
    targets = {Path(r["image"]).stem: r["target"] for r in records}
    # exactly the annotated fields, in the contract's field order
    assert targets["r1__vendor_block"] == '{"vendor_name":"Kedai Papan","address":"1 Jalan Sagu, Johor"}'
    assert targets["r1__invoice_meta"] == '{"invoice_date":"2018-12-25"}'
    assert targets["r2__totals_section"] == '{"tax_amount":"0.54","total":"9.00","currency":"MYR"}'

    coverage = field_coverage(records)
    assert coverage["totals_section"] == {"records": 2, "fields": {"total": 2, "tax_amount": 1, "currency": 1},
                                          "fields_per_record": {"1": 1, "3": 1}}
    assert coverage["vendor_block"]["fields"] == {"vendor_name": 1, "address": 1}
    table = "\n".join(coverage_lines(coverage))
    assert "| totals_section | 2 | 1: 1, 3: 1 | total: 2, tax_amount: 1, currency: 1 |" in table


def test_partial_ground_truth_is_scored_on_its_fields_only():
    gt = {"total": "57.40"}
    pred = {"subtotal": "55.00", "tax_amount": "2.40", "total": "57.40", "currency": "MYR"}
    assert (field_accuracy_details(pred, gt, region="totals_section").correct,
            field_accuracy_details(pred, gt, region="totals_section").total) == (1, 1)
    assert field_accuracy({"total": "57.00"}, gt, region="totals_section") == 0.0
    # a table whose rows have no unit price: the model's extra column is not held against it
    rows = {"line_items": [{"description": "Nasi", "quantity": "1", "line_total": "75000"}]}
    extra = {"line_items": [{"description": "Nasi", "quantity": "1", "unit_price": "75000", "line_total": "75000"}]}
    assert table_teds(extra, rows) == 1.0
    assert table_teds({"line_items": [{"description": "Nasi", "quantity": "2", "line_total": "75000"}]}, rows) < 1.0


def test_cli_writes_field_coverage_beside_the_jsonl(tmp_path):
    crops, annotations = tmp_path / "crops", tmp_path / "annotations"
    _png(crops / "a.png")
    _annotation(annotations / "a.json", "invoice_meta", {"invoice_number": "A-1"})
    output = tmp_path / "real.jsonl"
    assert main(["--crops-dir", str(crops), "--annotations-dir", str(annotations), "--output", str(output)]) == 0
    stats = json.loads(output.with_suffix(".stats.json").read_text())
    assert stats["field_coverage"]["invoice_meta"]["fields"] == {"invoice_number": 1}


def test_empty_and_unknown_fields_are_still_errors():
    with pytest.raises(SchemaError, match="no fields; annotate at least one of"):
        validate_region_fields("totals_section", {})
    with pytest.raises(SchemaError, match=r"unknown field\(s\) \['iban'\]"):
        validate_region_fields("vendor_block", {"vendor_name": "A", "iban": "DE00"})
    with pytest.raises(SchemaError, match="missing regions"):
        validate_label({"totals_section": {"total": "1.00"}}, complete=True)
    assert validate_label({"totals_section": {"total": "1.00"}}) == {"totals_section": {"total": "1.00"}}


# ----------------------------------------------------------------------------- currencies


def test_every_iso_currency_with_its_minor_units():
    assert get_currency("BHD").minor_units == 3 and get_currency("KWD").minor_units == 3
    assert get_currency("JPY").minor_units == 0 and get_currency("MYR").minor_units == 2
    assert format_money(Decimal("12.3449"), "BHD") == "12.345"
    assert format_money(Decimal("1234.5"), "JPY") == "1235"
    assert get_currency("EUR").symbol == "€"
    validate_region_fields("totals_section", {"total": "12.345", "currency": "KWD"})
    with pytest.raises(SchemaError, match=r"'12.34' is not canonical for BHD \(expected '12.340'\)"):
        validate_region_fields("totals_section", {"total": "12.34", "currency": "BHD"})
    with pytest.raises(SchemaError, match=r"'1234.50' is not canonical for JPY \(expected '1235'\)"):
        validate_region_fields("totals_section", {"total": "1234.50", "currency": "JPY"})


def test_unknown_currency_is_rejected_with_a_clear_message():
    with pytest.raises(SchemaError, match=r"unknown currency 'XYZ': not an ISO 4217 code; write its three capital letters"):
        get_currency("XYZ")
    with pytest.raises(SchemaError, match=r"totals_section.currency: unknown currency 'RM'"):
        validate_region_fields("totals_section", {"total": "9.00", "currency": "RM"})


def test_one_currency_helper():
    assert document_currency({"currency": "JPY", "total": "1"}) == "JPY"
    assert document_currency({"invoice_meta": {"currency": "BHD"}, "totals_section": {"total": "1.000"}}) == "BHD"
    assert document_currency({"totals_section": {"currency": "EUR"}}) == "EUR"
    assert document_currency({"total": "1"}, "USD") == "USD" and document_currency([]) is None


# ----------------------------------------------------------------------------- one pass


def test_every_problem_of_a_file_in_one_pass(tmp_path):
    path = tmp_path / "bad.json"
    _annotation(path, "totals_section", {"total": "RM 57.40", "tax_rate": "6.0", "currency": "MYR", "note": "x",
                                         "subtotal": 54.0})
    with pytest.raises(SchemaError) as info:
        read_region_annotation(path)
    problems = info.value.problems
    assert len(problems) == 4, problems
    assert any("unknown field(s) ['note']" in p for p in problems)
    assert any("total: 'RM 57.40' is not a canonical number" in p for p in problems)
    assert any("tax_rate: '6.0' is not canonical (expected '6'" in p for p in problems)
    assert any("subtotal: expected a string, got float" in p for p in problems)
    assert all(str(path) in p for p in problems)


# ----------------------------------------------------------------------------- JSONL targets


def test_non_canonical_jsonl_targets_are_refused_with_the_list(tmp_path):
    _png(tmp_path / "a.png")
    rows = [
        {"target": '{"total":"RM 57.40"}', "region": "totals_section", "source_id": "r1"},
        {"target": '{"invoice_date":"25/12/2018"}', "region": "invoice_meta", "source_id": "r2"},
        {"target": '{"total":"57.40"}', "region": "totals_section", "source_id": "r3"},
        {"target": '{"total":"57.40"', "region": "totals_section", "source_id": "r4"},
    ]
    path = tmp_path / "hand.jsonl"
    path.write_text("".join(json.dumps({"image": "a.png", "prompt": "p", "split": "test", "layout": "x", **r}) + "\n"
                            for r in rows), encoding="utf-8")
    with pytest.raises(DatasetBuildError) as info:
        load_records(path)
    problems = info.value.problems
    assert len(problems) == 3
    assert "record 1 (r1): totals_section.total: 'RM 57.40'" in problems[0]
    assert "record 2 (r2): invoice_meta.invoice_date: '25/12/2018' is not an ISO date" in problems[1]
    assert "record 4 (r4): target is not JSON" in problems[2]
    assert "finscribe normalize-annotations" in str(info.value)

    from finscribe.data.normalize import main as normalize_main

    fixed = tmp_path / "fixed.jsonl"
    assert normalize_main(["--input", str(path), "--output", str(fixed), "--date-format", "DD/MM/YYYY"]) == 1
    report = json.loads((tmp_path / "fixed.normalize_report.json").read_text())
    assert {(c["field"], c["from"], c["to"]) for c in report["changed"]} == {
        ("totals_section.total", "RM 57.40", "57.40"), ("invoice_meta.invoice_date", "25/12/2018", "2018-12-25")}
    assert [u["source"].endswith("record 4 (r4)") for u in report["unreadable"]] == [True]
    good = [json.loads(line) for line in fixed.read_text().splitlines()]
    good = [r for r in good if r["source_id"] != "r4"]
    fixed.write_text("".join(json.dumps(r) + "\n" for r in good), encoding="utf-8")
    assert [parse_output(t) for t in load_records(fixed)["target"]] == [
        {"total": "57.40"}, {"invoice_date": "2018-12-25"}, {"total": "57.40"}]


def test_evaluate_refuses_a_non_canonical_jsonl(tmp_path):
    from finscribe.data.records import DatasetBuildError
    from finscribe.data.selection import RecordSelection, load_selection

    _png(tmp_path / "a.png")
    path = tmp_path / "hand.jsonl"
    path.write_text(json.dumps({"image": "a.png", "prompt": "p", "target": '{"total":"1,234.50"}', "split": "test",
                                "region": "totals_section", "source_id": "r1", "layout": "x"}) + "\n")
    with pytest.raises(DatasetBuildError, match=r"record 1 \(r1\): totals_section.total: '1,234.50'"):
        load_selection(RecordSelection(path))


def test_normalize_annotations_folder_reports_changes_and_unreadable(tmp_path):
    from finscribe.cli import main as cli_main

    source, output = tmp_path / "in", tmp_path / "out"
    _annotation(source / "a.json", "totals_section", {"subtotal": "1.234,50 €", "tax_rate": "19 %", "total": "1.469,06",
                                                      "currency": "€"})
    _annotation(source / "sub" / "b.json", "invoice_meta", {"invoice_date": "25/12/2018", "due_date": "soon",
                                                            "invoice_number": "  A-7 "})
    args = ["normalize-annotations", "--input", str(source), "--output", str(output),
            "--date-format", "DD/MM/YYYY", "--decimal-comma"]
    assert cli_main(args) == 1  # one value could not be read
    a = json.loads((output / "a.json").read_text())["fields"]
    assert a == {"subtotal": "1234.50", "tax_rate": "19", "total": "1469.06", "currency": "EUR"}
    b = json.loads((output / "sub" / "b.json").read_text())["fields"]
    assert b == {"invoice_number": "A-7", "invoice_date": "2018-12-25", "due_date": "soon"}
    report = json.loads((output / "normalize_report.json").read_text())
    assert len(report["changed"]) == 6
    assert report["unreadable"] == [{"source": str(source / "sub" / "b.json"), "field": "invoice_meta.due_date",
                                     "value": "soon", "reason": "not a date in the format(s) ['DD/MM/YYYY']"}]
    with pytest.raises(SchemaError, match="due_date: 'soon'"):  # still refused until fixed by hand
        read_region_annotation(output / "sub" / "b.json")


def test_normalize_never_guesses_a_decimal_mark():
    from finscribe.data.normalize import Rules

    assert Rules().read_number("57,40") is None  # a decimal comma without --decimal-comma
    assert Rules(decimal_mark=",").read_number("57.40") is None
    assert Rules(decimal_mark=None).read_number("25.000") == Decimal("25000")
    assert Rules().read_number("-$1,234.50") == Decimal("-1234.50")
    assert Rules().read_number("(12.00)") == Decimal("-12.00")


# ----------------------------------------------------------------------------- symlinks, folders, limits


@pytest.mark.skipif(os.name == "nt", reason="symlinks")
def test_symlink_loops_and_folders_named_like_files_are_reported(tmp_path):
    crops, annotations = tmp_path / "crops", tmp_path / "annotations"
    _png(crops / "good.png")
    _annotation(annotations / "good.json", "totals_section", {"total": "1.00"})
    (crops / "loop.png").symlink_to(crops / "loop.png")  # a link to itself
    _annotation(annotations / "loop.json", "totals_section", {"total": "1.00"})
    (annotations / "dir.json").mkdir()  # a folder named like an annotation
    _png(crops / "dir.png")
    (crops / "sub").mkdir()
    (crops / "sub" / "back").symlink_to(crops, target_is_directory=True)  # a folder loop
    records, problems = collect_from_dirs(crops, annotations, skip_invalid=True)
    assert [Path(r["image"]).name for r in records] == ["good.png"]
    assert len(problems) == 3, problems
    assert any("loop.png: broken symlink or symlink loop" in p for p in problems)
    assert any("dir.json: a folder named like a crop or annotation" in p for p in problems)
    assert any("back: symlink loop" in p for p in problems)
    assert not any("without" in p for p in problems)  # the partners are not misreported as orphans


@pytest.mark.skipif(os.name == "nt", reason="symlinks")
def test_manifest_symlink_loop_and_folder_annotation_are_reported(tmp_path):
    root = tmp_path / "synthetic"
    _png(root / "crops" / "a.png")
    (root / "crops" / "loop.png").symlink_to(root / "crops" / "loop.png")
    (root / "annotations" / "a.json").mkdir(parents=True)
    (root / "annotations" / "loop.json").symlink_to(root / "annotations" / "loop.json")
    _annotation(root / "annotations" / "ok.json", "totals_section", {"total": "1.00"})
    samples = [{"id": "s1", "split": "train", "regions": {"totals_section": {"crop": "crops/a.png", "annotation": "annotations/a.json"}}},
               {"id": "s2", "split": "train", "regions": {"totals_section": {"crop": "crops/loop.png", "annotation": "annotations/loop.json"}}},
               {"id": "s3", "split": "train", "regions": {"totals_section": {"crop": 7, "annotation": "annotations/ok.json"}}}]
    manifest = root / "training_manifest.json"
    manifest.write_text(json.dumps({"version": 1, "samples": samples}))
    records, problems = collect_from_manifest(manifest, regions=["totals_section"], skip_invalid=True)
    assert records == []
    assert any("a.json: is a folder, not a JSON file" in p for p in problems)
    assert any("loop.png: cannot be read" in p for p in problems)
    assert any("loop.json: cannot be read" in p for p in problems)
    assert any("samples[2] (s3): no totals_section entry with crop and annotation paths" in p for p in problems)
    with pytest.raises(DatasetBuildError):
        build_dataset_from_manifest(manifest, regions=["totals_section"])


def test_a_600_dpi_scan_is_accepted_and_stored_downscaled(tmp_path):
    crops, annotations = tmp_path / "crops", tmp_path / "annotations"
    crops.mkdir()
    Image.new("1", (4961, 7016), 1).save(crops / "scan.png")  # A4 at 600 dpi, 34.8 MP
    _annotation(annotations / "scan.json", "totals_section", {"total": "12.00"})
    assert 4961 * 7016 <= MAX_PIXELS
    output = tmp_path / "ds.jsonl"
    assert main(["--crops-dir", str(crops), "--annotations-dir", str(annotations), "--output", str(output)]) == 0
    (record,) = [json.loads(line) for line in output.read_text().splitlines()]
    assert Path(record["image"]).parent == output.with_suffix(".images")
    with Image.open(record["image"]) as small:
        assert small.width * small.height <= PROCESSOR_MAX_PIXELS
        assert abs(small.width / small.height - 4961 / 7016) < 0.01  # aspect kept
    from finscribe.deploy.uploads import UploadLimits

    assert UploadLimits().max_pixels == MAX_PIXELS  # the service and build-dataset share the limit
