"""Whole pages through the page path (issue 24): evaluate --pages / compare --pages with detected and
true boxes, the per-document figures, and the single-document scripts on a full page."""

from __future__ import annotations

import dataclasses
import json
import runpy
import sys
from pathlib import Path

import pytest

from finscribe.data.formatters import PAGE, serialize_target
from finscribe.data.schema import REGIONS
from finscribe.data.selection import RecordSelection
from finscribe.detection import DEFAULT_LAYOUT_MODEL, DEFAULT_MARGIN, PageRegions
from finscribe.errors import ConfigError
from finscribe.eval.pages import Page, page_report, score_pages
from finscribe.eval.pages_config import PAGE_MARGIN, TINY_LAYOUT, DetectorArgs
from finscribe.eval.report import CompareConfig, EvaluateConfig, compare, evaluate, main
from finscribe.eval.scoring import METRICS, metric_value
from finscribe.inference import GenerationArgs, Prediction
from finscribe.synthetic.export import generate_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """Three generated invoices (pages, labels, true boxes); layout `minimal` is held out."""
    return generate_dataset(3, tmp_path_factory.mktemp("pages"), workers=1, dpi=72, degrade=0.0)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_torch_free_defaults_are_the_detectors():
    assert (TINY_LAYOUT, PAGE_MARGIN) == (DEFAULT_LAYOUT_MODEL, DEFAULT_MARGIN)
    assert DetectorArgs().layout_model == DEFAULT_LAYOUT_MODEL


def _page(label, boxes) -> Page:
    return Page("inv_9", "classic", "test", Path("page.png"), label, boxes)


def _right(fields) -> Prediction:
    return Prediction(fields, serialize_target(fields), None, False, 10, 5, 0.1)


def test_per_document_figures_from_region_outputs(manifest):
    """The merged document is scored against the full label: a region not detected costs exactly its
    fields, the page is not exact, and the merged document is validated as a whole."""
    label = json.loads((manifest.parent / "labels/inv_000000.json").read_text())
    rows = label["line_items_table"]["line_items"][:1]  # a short table: nTED and TEDS are pure Python (seconds)
    currency = label["totals_section"]["currency"]
    label["line_items_table"]["line_items"] = rows
    label["totals_section"] = dict(label["totals_section"], subtotal=rows[0]["line_total"], discount="0.00",
                                   tax_rate="0", tax_amount="0.00", total=rows[0]["line_total"], currency=currency)
    boxes = {r: (0, 0, 10, 10) for r in REGIONS}
    page = _page(label, boxes)
    everything = PageRegions(size=(100, 100), boxes=boxes, scores={r: 0.9 for r in REGIONS})
    no_totals = PageRegions(size=(100, 100), boxes={r: b for r, b in boxes.items() if r != "totals_section"},
                            missing=("totals_section",))
    read_all = {r: _right(label[r]) for r in REGIONS}
    read_most = {r: p for r, p in read_all.items() if r != "totals_section"}
    wrong_total = dict(read_all, totals_section=_right(dict(label["totals_section"], total="0.01")))
    page_rows, region_rows = score_pages([page] * 3, [everything, no_totals, everything],
                                         [read_all, read_most, wrong_total], list(REGIONS))
    perfect, partial, wrong = page_rows
    assert perfect["field_accuracy"] == 1.0 and perfect["validation_passed"] and perfect["teds"] == 1.0
    assert perfect["missing"] == [] and partial["missing"] == ["totals_section"]
    n_totals = len(label["totals_section"])
    assert partial["fields_total"] == perfect["fields_total"]
    assert partial["fields_correct"] == perfect["fields_total"] - n_totals
    assert "totals_section: region not detected" in partial["error"]
    assert wrong["fields_correct"] == perfect["fields_total"] - 1
    assert not wrong["validation_passed"] and "total: totals_section.total" in wrong["violations"]
    report = page_report(page_rows, region_rows, list(REGIONS), [], resamples=50, seed=0)
    assert report["overall"]["exact_match"] == pytest.approx(1 / 3)  # share of pages with every field right
    assert report["overall"]["validation_pass_rate"] == pytest.approx(2 / 3)
    assert report["per_region"]["totals_section"]["field_accuracy"] == pytest.approx((2 * n_totals - 1) / (3 * n_totals))
    assert report["per_region"]["vendor_block"]["field_accuracy"] == 1.0
    assert report["regions_not_detected"] == {r: int(r == "totals_section") for r in REGIONS}
    assert report["per_field"]["totals_section.total"]["accuracy"] == pytest.approx(1 / 3)
    assert report["per_field"]["vendor_block.vendor_name"]["accuracy"] == 1.0


def test_evaluate_pages_detected_and_oracle(manifest, tiny_model_dir, tiny_detector_dir, tmp_path, capsys):
    out = tmp_path / "eval_pages"
    argv = ["--pages", "--model", str(tiny_model_dir), "--data", str(manifest), "--split", "all",
            "--layout-model", str(tiny_detector_dir), "--output-dir", str(out), "--max-new-tokens", "6",
            "--batch-size", "8", "--resamples", "50", "--device", "cpu"]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["pages"] == 3 and report["regions"] == list(REGIONS)
    boxes = _rows(out / "boxes.jsonl")
    assert [b["source_id"] for b in boxes] == ["inv_000000", "inv_000001", "inv_000002"]
    for name in ("detected", "oracle"):
        page_rows = _rows(out / name / "predictions.jsonl")
        region_rows = _rows(out / name / "region_predictions.jsonl")
        assert len(page_rows) == 3 and len(region_rows) == 15 and all(r["region"] == PAGE for r in page_rows)
        # every figure of the report is the one recomputed from its predictions files
        for key, _ in METRICS:
            assert report[name]["overall"][key] == pytest.approx(metric_value(page_rows, key)), (name, key)
        for region in REGIONS:
            rows = [r for r in region_rows if r["region"] == region]
            assert report[name]["per_region"][region]["field_accuracy"] == pytest.approx(metric_value(rows, "field_accuracy"))
        assert (out / name / "report.md").is_file() and (out / name / "field_accuracy.png").is_file()
    # the oracle reads every region at its true box; the detected run exactly what boxes.jsonl lists
    oracle_regions = _rows(out / "oracle" / "region_predictions.jsonl")
    assert all(r["detected"] and r["new_tokens"] > 0 for r in oracle_regions)
    truth = json.loads(manifest.read_text())["samples"]
    assert [r["box"] for r in oracle_regions] == [s["regions"][r]["box"] for s in truth for r in REGIONS]
    detected_regions = _rows(out / "detected" / "region_predictions.jsonl")
    found = [(b["source_id"], r) for b in boxes for r in b["boxes"]]
    assert [(r["source_id"], r["region"]) for r in detected_regions if r["detected"]] == found
    for row in detected_regions:
        if not row["detected"]:  # a region the detector missed is not read, and all its fields count as wrong
            assert row["new_tokens"] == 0 and row["fields_correct"] == 0 and row["error"] == "region not detected"
    missing = {(b["source_id"], r) for b in boxes for r in b["missing"]}
    page_rows = _rows(out / "detected" / "predictions.jsonl")
    assert {(row["source_id"], region) for row in page_rows for region in row["missing"]} == missing
    cost = report["detection_cost"]
    assert cost["field_accuracy"] == pytest.approx(report["detected"]["overall"]["field_accuracy"]
                                                   - report["oracle"]["overall"]["field_accuracy"])
    assert report["detection"]["per_region"]["totals_section"]["pages"] == 3
    markdown = (out / "report.md").read_text()
    assert "cost of detection" in markdown and "## Per region" in markdown
    printed = capsys.readouterr().out
    assert "detected" in printed and "oracle" in printed and f"wrote {out}" in printed


def test_evaluate_pages_picks_regions_and_needs_a_manifest(manifest, tiny_model_dir, tiny_detector_dir, tmp_path):
    generation = GenerationArgs(model=str(tiny_model_dir), max_new_tokens=4, device="cpu")
    config = EvaluateConfig(generation=generation, pages=True, oracle=False, output_dir=tmp_path / "e",
                            records=RecordSelection(manifest, "all", ("totals_section",), limit=2), resamples=20,
                            detector=DetectorArgs(layout_model=tiny_detector_dir))
    report = evaluate(config, show_progress=False)
    assert report["pages"] == 2 and report["regions"] == ["totals_section"] and "oracle" not in report
    rows = _rows(tmp_path / "e" / "detected" / "predictions.jsonl")
    assert all(set(json.loads(r["target"])) == {"totals_section"} for r in rows)  # scored on the regions read
    with pytest.raises(ConfigError, match="--blank-images is a control on crops"):
        evaluate(dataclasses.replace(config, blank_images=True), show_progress=False)
    jsonl = tmp_path / "records.jsonl"
    jsonl.write_text("")
    with pytest.raises(Exception, match="--pages reads whole pages"):
        evaluate(EvaluateConfig(generation=generation, pages=True, records=RecordSelection(jsonl, "all"),
                                output_dir=tmp_path / "x"), show_progress=False)


def test_reads_from_a_crop_run_answers_the_true_boxes_without_reading_them(manifest, tiny_model_dir,
                                                                          tiny_detector_dir, tmp_path):
    """--reads-from: at the true boxes every crop is a dataset crop, so every oracle answer is taken
    from the crop run (a changed stored answer shows through) and the page report is otherwise the
    one a fresh page run gives; a crop run of another decoding is refused before any reading."""
    regions = ("invoice_meta", "totals_section")
    generation = GenerationArgs(model=str(tiny_model_dir), max_new_tokens=6, batch_size=4, device="cpu")
    crops = RecordSelection(manifest, "all", regions)
    evaluate(EvaluateConfig(generation=generation, records=crops, output_dir=tmp_path / "crops", resamples=20),
             show_progress=False)
    page_config = EvaluateConfig(generation=generation, pages=True, records=RecordSelection(manifest, "all", regions),
                                 resamples=20, detector=DetectorArgs(layout_model=tiny_detector_dir))
    fresh = evaluate(dataclasses.replace(page_config, output_dir=tmp_path / "fresh"), show_progress=False)
    reused = evaluate(dataclasses.replace(page_config, output_dir=tmp_path / "reused", reads_from=tmp_path / "crops"),
                      show_progress=False)
    assert fresh["oracle"]["reads_reused"] == 0 and reused["oracle"]["reads_reused"] == 6  # 3 pages x 2 regions
    assert reused["oracle"]["reads_from"] == str(tmp_path / "crops")
    for name in ("detected", "oracle"):
        for file in ("predictions.jsonl", "region_predictions.jsonl"):
            strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
            assert strip(_rows(tmp_path / "reused" / name / file)) == strip(_rows(tmp_path / "fresh" / name / file))
        assert reused[name]["overall"] == fresh[name]["overall"]
    # the answers are the crop run's: change one stored answer, and the oracle page shows it
    stored = _rows(tmp_path / "crops" / "predictions.jsonl")
    changed = next(r for r in stored if r["source_id"] == "inv_000001" and r["region"] == "totals_section")
    changed.update(raw_text='{"total":"7.77"}', parsed={"total": "7.77"}, error=None)
    (tmp_path / "crops" / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stored))
    evaluate(dataclasses.replace(page_config, output_dir=tmp_path / "changed", reads_from=tmp_path / "crops",
                                 oracle=True), show_progress=False)
    oracle_rows = _rows(tmp_path / "changed" / "oracle" / "region_predictions.jsonl")
    [row] = [r for r in oracle_rows if (r["source_id"], r["region"]) == ("inv_000001", "totals_section")]
    assert row["raw_text"] == '{"total":"7.77"}'
    # another decoding, a page run, no --pages: refused with the reason, nothing written
    with pytest.raises(ConfigError, match=r"generation\.max_new_tokens is 6 there and 8 here"):
        evaluate(dataclasses.replace(page_config, output_dir=tmp_path / "other", reads_from=tmp_path / "crops",
                                     generation=dataclasses.replace(generation, max_new_tokens=8)), show_progress=False)
    assert not (tmp_path / "other").exists()
    with pytest.raises(ConfigError, match="is a blank-image or whole-page run"):
        evaluate(dataclasses.replace(page_config, output_dir=tmp_path / "x", reads_from=tmp_path / "fresh"),
                 show_progress=False)
    # the crop run's records are read again (for their prompts): rows that are not those records are refused
    saved = json.loads((tmp_path / "crops" / "config.json").read_text())
    saved["records"]["limit"] = 1
    (tmp_path / "crops" / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="rows that are not the 1 records of .* in order"):
        evaluate(dataclasses.replace(page_config, output_dir=tmp_path / "y", reads_from=tmp_path / "crops"),
                 show_progress=False)
    with pytest.raises(ValueError, match="--reads-from reuses crop answers for whole pages; it needs --pages"):
        EvaluateConfig(generation=generation, records=crops, reads_from=tmp_path / "crops")


def test_compare_pages_same_model_has_zero_deltas(manifest, tiny_model_dir, tiny_detector_dir, tmp_path):
    config = CompareConfig(generation=GenerationArgs(model=str(tiny_model_dir), max_new_tokens=4, device="cpu"),
                           base=str(tiny_model_dir), pages=True, output_dir=tmp_path / "c", resamples=20,
                           records=RecordSelection(manifest, "all", ("totals_section", "invoice_meta")),
                           detector=DetectorArgs(layout_model=tiny_detector_dir))
    result = compare(config, show_progress=False)
    for name in ("detected", "oracle"):
        for key, _ in METRICS:
            d = result[name]["deltas"][key]
            assert d["delta"] in (None, 0.0), (name, key)
        base_rows = _rows(tmp_path / "c" / name / "base_predictions.jsonl")
        assert len(base_rows) == 3
        assert result[name]["deltas"]["field_accuracy"]["base"] == pytest.approx(metric_value(base_rows, "field_accuracy"))
    assert set(result["oracle"]["per_region"]) == {"totals_section", "invoice_meta"}
    assert (tmp_path / "c" / "comparison.md").is_file() and (tmp_path / "c" / "comparison.png").is_file()


def _run_script(monkeypatch, script: str, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", [script, *args])
    runpy.run_path(str(REPO / script), run_name="__main__")


def test_single_document_scripts_read_a_page_region_by_region(manifest, tiny_model_dir, tiny_detector_dir, tmp_path,
                                                              monkeypatch, capsys):
    root = manifest.parent
    sample = json.loads(manifest.read_text())["samples"][0]
    page, label = root / sample["page"], root / sample["label"]
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"boxes": {r: e["box"] for r, e in sample["regions"].items() if r != "client_info"}}))
    out = tmp_path / "results.json"
    common = ["--model", str(tiny_model_dir), "--max-new-tokens", "6", "--device", "cpu"]
    with pytest.raises(SystemExit) as done:
        _run_script(monkeypatch, "examples/evaluate_model.py", "--image", str(page), "--ground-truth", str(label),
                    "--boxes", str(boxes), "--output", str(out), *common)
    assert done.value.code == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    assert result["region"] == PAGE and set(result["metrics"]) == {k for k, _ in METRICS}
    [detail] = result["regions"]
    read = [r for r in REGIONS if r != "client_info"]
    assert list(detail["predictions"]) == read and detail["missing"] == ["client_info"]
    assert result["missing"] == ["client_info"]
    assert all(detail["predictions"][r]["new_tokens"] > 0 for r in read)
    assert result["prediction"]["new_tokens"] == sum(detail["predictions"][r]["new_tokens"] for r in read)
    assert "client_info.client_name" in result["per_field"]  # scored against the full label, missed region too
    # the boxes.jsonl of `finscribe detect` (after editing): the lines of this image are used
    lines = [{"source": "scans/other.png", "page": 1, "boxes": {"totals_section": [0, 0, 5, 5]}},
             {"source": str(page), "page": 1, "boxes": {r: e["box"] for r, e in sample["regions"].items()}}]
    (tmp_path / "boxes.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(SystemExit) as done:
        _run_script(monkeypatch, "examples/evaluate_model.py", "--image", str(page), "--boxes",
                    str(tmp_path / "boxes.jsonl"), "--output", str(out), *common)
    assert done.value.code == 0, capsys.readouterr().err
    [detail] = json.loads(out.read_text())["regions"]
    assert detail["missing"] == [] and detail["boxes"]["totals_section"] == sample["regions"]["totals_section"]["box"]
    # Without --boxes the detector finds the regions; compare detects once for both models.
    comparison = tmp_path / "comparison.json"
    with pytest.raises(SystemExit) as done:
        _run_script(monkeypatch, "compare_base_vs_finetuned.py", "--image", str(page), "--base", str(tiny_model_dir),
                    "--layout-model", str(tiny_detector_dir), "--output", str(comparison), *common)
    assert done.value.code == 0, capsys.readouterr().err
    result = json.loads(comparison.read_text())
    assert result["base"]["regions"] == result["model"]["regions"]
    [detail] = result["model"]["regions"]
    assert sorted(detail["boxes"]) + list(detail["missing"]) and set(detail["boxes"]) | set(detail["missing"]) == set(REGIONS)
    # --boxes belongs to the page path: with a named region it is refused in one line
    with pytest.raises(SystemExit) as done:
        _run_script(monkeypatch, "examples/evaluate_model.py", "--image", str(page), "--region", "totals_section",
                    "--boxes", str(boxes), "--output", str(out), *common)
    assert done.value.code == 2 and "--boxes is for a page read region by region" in capsys.readouterr().err
