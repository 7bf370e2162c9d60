"""evaluate / compare end to end on the tiny real PaddleOCR-VL, scoring, bootstrap, and the
single-document scripts. Records are hand-made tiny crops + annotations in a manifest."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from finscribe.data.build_dataset import DatasetBuildError, write_jsonl_atomic
from finscribe.data.formatters import prompt_for, serialize_target
from finscribe.data.selection import RecordSelection, load_selection
from finscribe.errors import ConfigError
from finscribe.eval.bootstrap import bootstrap_ci, paired_bootstrap
from finscribe.eval.report import CompareConfig, EvaluateConfig, compare, evaluate, main
from finscribe.eval.scoring import METRICS, metric_value, score_record, score_records
from finscribe.inference import GenerationArgs, Prediction
from finscribe.model import ModelNotAvailableError

REPO = Path(__file__).resolve().parents[1]
TOTALS = {"subtotal": "100.00", "discount": "0.00", "tax_rate": "19", "tax_amount": "19.00", "total": "119.00",
          "currency": "EUR"}
ITEMS = {"line_items": [{"description": "Widget", "quantity": "2", "unit_price": "50.00", "line_total": "100.00"}]}
REGIONS = ("totals_section", "line_items_table")
# (id, split, layout): inv_2 has the held-out layout; inv_3 is train and must not be evaluated
SAMPLES = [("inv_0", "test", "classic"), ("inv_1", "test", "modern"), ("inv_2", "test", "minimal"),
           ("inv_3", "train", "classic")]


def _crop(path: Path, text: str, width: int) -> None:
    image = Image.new("RGB", (width, 40), "white")
    ImageDraw.Draw(image).text((4, 4), text, fill="black")
    image.save(path)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    (root / "crops").mkdir()
    (root / "annotations").mkdir()
    samples = []
    for n, (sid, split, layout) in enumerate(SAMPLES):
        regions = {}
        for region, fields in zip(REGIONS, (TOTALS, ITEMS)):
            crop, annotation = f"crops/{sid}__{region}.png", f"annotations/{sid}__{region}.json"
            _crop(root / crop, f"{sid} {region}", 100 + 30 * n)
            (root / annotation).write_text(json.dumps({"region": region, "fields": fields}), encoding="utf-8")
            regions[region] = {"crop": crop, "annotation": annotation, "box": [0, 0, 10, 10]}
        samples.append({"id": sid, "split": split, "layout": layout, "locale": "de_DE", "currency": "EUR",
                        "regions": regions})
    path = root / "training_manifest.json"
    path.write_text(json.dumps({"version": 1, "config": {"held_out_layouts": ["minimal"]}, "samples": samples}),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def other_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A second real model: the tiny model with large random weights (different outputs)."""
    from finscribe.model import load_model

    model, processor = load_model(tiny_model_dir, device="cpu", dtype="float32")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                param.normal_(0, 0.5 if ("embed" in name or "lm_head" in name) else 0.15, generator=generator)
    out = tmp_path_factory.mktemp("other") / "model"
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _generation(model) -> GenerationArgs:
    return GenerationArgs(model=str(model), batch_size=4, max_new_tokens=12)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_evaluate_end_to_end(tiny_model_dir, manifest, tmp_path):
    out = tmp_path / "eval"
    report = evaluate(EvaluateConfig(generation=_generation(tiny_model_dir), records=RecordSelection(manifest, "test", REGIONS),
                                     output_dir=out, resamples=200), show_progress=False)
    for name in ("predictions.jsonl", "report.json", "report.md", "config.json"):
        assert (out / name).is_file(), name
    for name in ("field_accuracy.png", "error_breakdown.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = _rows(out / "predictions.jsonl")
    assert len(rows) == 6 and {r["source_id"] for r in rows} == {"inv_0", "inv_1", "inv_2"}
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(report))
    # report numbers recomputed from the rows
    assert report["records"] == 6 and report["documents"] == 3
    assert report["overall"]["char_accuracy"] == pytest.approx(sum(r["char_accuracy"] for r in rows) / 6)
    assert report["overall"]["field_accuracy"] == pytest.approx(
        sum(r["fields_correct"] for r in rows) / sum(r["fields_total"] for r in rows))
    assert report["overall"]["json_validity_rate"] == pytest.approx(sum(r["json_valid"] for r in rows) / 6)
    assert sum(r["fields_total"] for r in rows) == 3 * (6 + 4)  # 6 totals fields + 4 line-item fields per doc
    teds_rows = [r for r in rows if r["region"] == "line_items_table"]
    assert all(r["teds"] is not None for r in teds_rows)
    assert report["overall"]["teds"] == pytest.approx(sum(r["teds"] for r in teds_rows) / 3)
    ci = report["ci95"]["char_accuracy"]
    assert ci["ci_low"] <= report["overall"]["char_accuracy"] <= ci["ci_high"]
    assert set(report["per_region"]) == set(REGIONS)
    assert report["held_out_layouts"] == ["minimal"]
    assert report["generalisation"]["seen layouts"]["records"] == 4
    assert report["generalisation"]["held-out layouts"]["records"] == 2
    assert sum(report["error_breakdown"].values()) == 6
    assert "Seen vs held-out layouts" in (out / "report.md").read_text()
    assert json.loads((out / "config.json").read_text())["stage"] == "EvaluateConfig"


def test_blank_image_control_feeds_white_images_and_scores_real_labels(other_model_dir, manifest, tmp_path):
    """--blank-images == evaluating crops that are white images of the same sizes, scored against
    the real labels; and it does change what the model sees."""
    import shutil

    white_root = tmp_path / "white"
    shutil.copytree(manifest.parent, white_root)
    for crop in (white_root / "crops").glob("*.png"):
        with Image.open(crop) as image:
            size = image.size
        Image.new("RGB", size, "white").save(crop)
    def run(data, out, blank=False):
        return evaluate(EvaluateConfig(generation=_generation(other_model_dir), records=RecordSelection(data, "test", REGIONS),
                                       output_dir=out, resamples=50, blank_images=blank), show_progress=False)
    control = run(manifest, tmp_path / "blank", blank=True)
    run(white_root / "training_manifest.json", tmp_path / "white_eval")
    run(manifest, tmp_path / "real")
    blank_rows, white_rows = _rows(tmp_path / "blank" / "predictions.jsonl"), _rows(tmp_path / "white_eval" / "predictions.jsonl")
    real_rows = _rows(tmp_path / "real" / "predictions.jsonl")
    assert [r["raw_text"] for r in blank_rows] == [r["raw_text"] for r in white_rows]
    assert [r["raw_text"] for r in blank_rows] != [r["raw_text"] for r in real_rows]
    assert all(str(manifest.parent) in r["image"] for r in blank_rows)  # rows name the real crops
    assert control["blank_images"] is True
    assert "Control run" in (tmp_path / "blank" / "report.md").read_text()
    assert json.loads((tmp_path / "blank" / "config.json").read_text())["blank_images"] is True


def test_compare_end_to_end(tiny_model_dir, other_model_dir, manifest, tmp_path):
    records = load_selection(RecordSelection(manifest, "test", REGIONS))
    data = tmp_path / "records.jsonl"
    write_jsonl_atomic(data, records)
    out = tmp_path / "compare"
    result = compare(CompareConfig(generation=_generation(other_model_dir), records=RecordSelection(data, "test"),
                                   base=str(tiny_model_dir), output_dir=out, resamples=300, held_out_layouts=("minimal",)),
                     show_progress=False)
    for name in ("comparison.json", "comparison.md", "base_predictions.jsonl", "model_predictions.jsonl", "config.json"):
        assert (out / name).is_file(), name
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    base_rows, model_rows = _rows(out / "base_predictions.jsonl"), _rows(out / "model_predictions.jsonl")
    assert [r["source_id"] for r in base_rows] == [r["source_id"] for r in model_rows]
    assert [r["raw_text"] for r in base_rows] != [r["raw_text"] for r in model_rows]  # really two models
    for key, _ in METRICS:
        d = result["deltas"][key]
        assert d["base"] == pytest.approx(metric_value(base_rows, key))
        assert d["model"] == pytest.approx(metric_value(model_rows, key))
        assert d["delta"] == pytest.approx(d["model"] - d["base"])
        assert d["ci_low"] - 1e-12 <= d["delta"] <= d["ci_high"] + 1e-12, key
    assert result["deltas"]["char_accuracy"]["delta"] != 0
    assert result["documents"] == 3 and set(result["generalisation"]) == {"seen layouts", "held-out layouts"}


def test_compare_reuses_an_evaluate_pass_of_the_same_model_and_gives_the_same_result(
        tiny_model_dir, other_model_dir, manifest, tmp_path):
    selection = RecordSelection(manifest, "test", REGIONS)
    generation = _generation(other_model_dir)
    evaluate(EvaluateConfig(generation=generation, records=selection, output_dir=tmp_path / "eval"),
             show_progress=False)
    common = dict(generation=generation, records=selection, base=str(tiny_model_dir), resamples=200,
                  blank_images=False)
    fresh = compare(CompareConfig(output_dir=tmp_path / "fresh", **common), show_progress=False)
    reused = compare(CompareConfig(output_dir=tmp_path / "reused", model_predictions=tmp_path / "eval", **common),
                     show_progress=False)
    assert reused["model_predictions_reused_from"] == str(tmp_path / "eval")
    assert fresh["model_predictions_reused_from"] is None
    assert _rows(tmp_path / "reused" / "model_predictions.jsonl") == _rows(tmp_path / "eval" / "predictions.jsonl")
    fresh_model = [{k: v for k, v in r.items() if k != "seconds"} for r in _rows(tmp_path / "fresh" / "model_predictions.jsonl")]
    reused_model = [{k: v for k, v in r.items() if k != "seconds"} for r in _rows(tmp_path / "reused" / "model_predictions.jsonl")]
    assert fresh_model == reused_model  # greedy answers of the same pass are the same
    assert reused["deltas"] == fresh["deltas"] and reused["per_region"] == fresh["per_region"]
    evaluated = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert reused["prediction_seconds"]["model"] == evaluated["prediction_seconds"]


def test_compare_refuses_predictions_of_another_pass(tiny_model_dir, other_model_dir, manifest, tmp_path):
    selection = RecordSelection(manifest, "test", REGIONS)
    evaluated = _generation(other_model_dir)
    evaluate(EvaluateConfig(generation=evaluated, records=selection, output_dir=tmp_path / "eval"), show_progress=False)

    def reuse(generation=evaluated, records=selection, folder=tmp_path / "eval"):
        return compare(CompareConfig(generation=generation, records=records, base=str(tiny_model_dir),
                                     output_dir=tmp_path / "out", blank_images=False, model_predictions=folder),
                       show_progress=False)

    with pytest.raises(ConfigError, match=r"generation\.max_new_tokens is 12 there and 20 here"):
        reuse(generation=GenerationArgs(model=str(other_model_dir), batch_size=4, max_new_tokens=20))
    with pytest.raises(ConfigError, match=r"generation\.model is"):
        reuse(generation=_generation(tiny_model_dir))
    with pytest.raises(ConfigError, match=r"records\.limit is None there and 2 here"):
        reuse(records=RecordSelection(manifest, "test", REGIONS, limit=2))
    with pytest.raises(ConfigError, match="not found"):
        reuse(folder=tmp_path / "nowhere")
    predictions = tmp_path / "eval" / "predictions.jsonl"
    lines = predictions.read_text(encoding="utf-8").splitlines()
    predictions.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")  # one row lost
    with pytest.raises(ConfigError, match="not the 6 selected records in order"):
        reuse()
    predictions.write_text("\n".join([*lines[:-1], "{broken"]) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"line {len(lines)} is not JSON"):
        reuse()
    assert not (tmp_path / "out" / "comparison.json").exists()  # no half-written comparison


def test_score_record_perfect_and_wrong():
    record = {"region": "totals_section", "target": serialize_target(TOTALS), "source_id": "x", "layout": "classic",
              "image": "x.png", "prompt": prompt_for("totals_section")}
    perfect = Prediction(parsed=dict(TOTALS), raw_text=record["target"], error=None, repetition=False,
                         prompt_tokens=10, new_tokens=20, seconds=0.1)
    row = score_record(record, perfect)
    assert row["field_accuracy"] == 1.0 and row["validation_passed"] and row["char_accuracy"] == 1.0
    assert row["field_f1"] == 1.0 and row["tree_edit_accuracy"] == 1.0 and row["teds"] is None
    wrong_fields = dict(TOTALS, total="118.00")
    wrong = Prediction(parsed=wrong_fields, raw_text=serialize_target(wrong_fields), error=None, repetition=False,
                       prompt_tokens=10, new_tokens=20, seconds=0.1)
    row = score_record(record, wrong)
    assert (row["fields_correct"], row["fields_total"]) == (5, 6)
    assert (row["numeric_correct"], row["numeric_total"]) == (4, 5)  # 4 money fields + tax_rate
    assert not row["validation_passed"] and any(v.startswith("total:") for v in row["violations"])
    items = {"region": "line_items_table", "target": serialize_target(ITEMS), "source_id": "y", "layout": "classic",
             "image": "y.png"}
    invalid = Prediction(parsed=None, raw_text='{"line_items": [', error="not valid JSON", repetition=False,
                         prompt_tokens=10, new_tokens=5, seconds=0.1)
    row = score_record(items, invalid)
    assert row["field_accuracy"] == 0.0 and row["teds"] == 0.0 and not row["validation_passed"]


def test_score_record_whole_page():
    label = {
        "vendor_block": {"vendor_name": "ACME GmbH", "address": "Hauptstr. 1, Berlin"},
        "client_info": {"client_name": "Foo AG", "address": "Ring 2, Bonn"},
        "invoice_meta": {"invoice_number": "INV-1", "invoice_date": "2026-01-05", "due_date": "2026-02-04",
                         "currency": "EUR"},
        "line_items_table": ITEMS, "totals_section": TOTALS,
    }
    record = {"region": "page", "target": serialize_target(label), "source_id": "p", "layout": "classic",
              "image": "p.png"}
    perfect = Prediction(parsed=json.loads(record["target"]), raw_text=record["target"], error=None,
                         repetition=False, prompt_tokens=10, new_tokens=99, seconds=0.1)
    row = score_record(record, perfect)
    assert row["fields_total"] == 2 + 2 + 4 + 4 + 6 and row["field_accuracy"] == 1.0
    assert row["teds"] == 1.0 and row["teds_structure"] == 1.0 and row["validation_passed"]
    assert "line_items_table.line_items[0].unit_price" in row["per_field"]
    swapped = json.loads(record["target"])
    swapped["line_items_table"]["line_items"][0]["description"] = "Gadget"
    row = score_record(record, Prediction(parsed=swapped, raw_text=json.dumps(swapped), error=None, repetition=False,
                                          prompt_tokens=10, new_tokens=99, seconds=0.1))
    assert row["teds_structure"] == 1.0 and row["teds"] < 1.0 and row["fields_correct"] == row["fields_total"] - 1


def test_score_records_in_worker_processes_gives_the_rows_of_one_process():
    records, predictions = [], []
    for i in range(11):  # distinct ids and answers, so a row put back in the wrong place shows
        totals = dict(TOTALS, total=f"{100 + i}.00")
        records.append({"region": "totals_section", "target": serialize_target(TOTALS), "source_id": f"t{i}",
                        "layout": "classic", "image": f"t{i}.png", "split": "test"})
        predictions.append(Prediction(parsed=totals, raw_text=serialize_target(totals), error=None, repetition=False,
                                      prompt_tokens=10, new_tokens=20 + i, seconds=0.1))
        items = {"line_items": ITEMS["line_items"][: 1 + i % 2]}
        records.append({"region": "line_items_table", "target": serialize_target(ITEMS), "source_id": f"l{i}",
                        "layout": "classic", "image": f"l{i}.png", "split": "test"})
        predictions.append(Prediction(parsed=items, raw_text=serialize_target(items), error=None, repetition=False,
                                      prompt_tokens=10, new_tokens=5, seconds=0.1))
    one_by_one = [score_record(r, p) for r, p in zip(records, predictions)]
    assert len({json.dumps(row, sort_keys=True) for row in one_by_one}) == len(records)
    for processes in (1, 2, 3):
        assert score_records(records, predictions, processes=processes) == one_by_one
    broken = [*records[:5], dict(records[5], target="{not json"), *records[6:]]
    with pytest.raises(ValueError, match="record l2/line_items_table: target is not JSON"):
        score_records(broken, predictions, processes=2)  # a worker's error reaches the caller, naming the record


def test_bootstrap_intervals():
    groups = ["a", "a", "b", "c", "d"]
    same = paired_bootstrap([1, 0, 1, 0, 1], [1] * 5, [1, 0, 1, 0, 1], [1] * 5, groups, resamples=100)
    assert same["delta"] == 0 and same["ci_low"] == same["ci_high"] == 0
    shift = paired_bootstrap([0] * 5, [1] * 5, [1] * 5, [1] * 5, groups, resamples=100)
    assert shift["delta"] == 1 and shift["ci_low"] == shift["ci_high"] == 1
    mixed = paired_bootstrap([0, 1, 0, 1, 0], [1] * 5, [1, 1, 0, 1, 1], [1] * 5, groups, resamples=500, seed=3)
    assert mixed["ci_low"] < mixed["delta"] < mixed["ci_high"]
    assert mixed == paired_bootstrap([0, 1, 0, 1, 0], [1] * 5, [1, 1, 0, 1, 1], [1] * 5, groups, resamples=500, seed=3)
    no_table = bootstrap_ci([0, 0], [0, 0], ["a", "b"])
    assert no_table["value"] is None and no_table["ci_low"] is None


def test_clear_errors(tiny_model_dir, manifest, tmp_path):
    with pytest.raises(DatasetBuildError, match="not found"):
        main(["--model", str(tiny_model_dir), "--data", str(tmp_path / "missing.json")])
    with pytest.raises(DatasetBuildError, match="no record of split 'val'"):
        load_selection(RecordSelection(manifest, "val", REGIONS))
    with pytest.raises(ModelNotAvailableError, match="not found"):
        main(["--model", str(tmp_path / "no_model"), "--data", str(manifest), "--regions", *REGIONS,
              "--output-dir", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "report.json").exists()


def _run_script(monkeypatch, script: str, *args: str) -> None:
    """Run a repo script as `python script args` would, in this process (no second torch import)."""
    monkeypatch.setattr(sys, "argv", [script, *args])
    runpy.run_path(str(REPO / script), run_name="__main__")


def test_single_document_scripts(tiny_model_dir, manifest, tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    root = manifest.parent
    image, truth = root / "crops/inv_0__totals_section.png", root / "annotations/inv_0__totals_section.json"
    out = tmp_path / "results.json"
    with pytest.raises(SystemExit) as done:
        _run_script(monkeypatch, "examples/evaluate_model.py", "--image", str(image), "--ground-truth", str(truth),
                    "--model", str(tiny_model_dir), "--output", str(out), "--max-new-tokens", "8", "--device", "cpu")
    assert done.value.code == 0
    result = json.loads(out.read_text())
    assert result["region"] == "totals_section" and result["prediction"]["new_tokens"] <= 8
    assert set(result["metrics"]) == {k for k, _ in METRICS} and len(result["per_field"]) == 6
    # the default base is the hub id: offline it must fail with the fix in the message, not a traceback
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail fast, no retries
    with pytest.raises(SystemExit) as done:
        _run_script(monkeypatch, "compare_base_vs_finetuned.py", "--image", str(image), "--model", str(tiny_model_dir),
                    "--output", str(tmp_path / "comparison.json"), "--device", "cpu")
    assert done.value.code == 2 and "error: --base" in capsys.readouterr().err
    assert not (tmp_path / "comparison.json").exists()
    with pytest.raises(SystemExit) as done:
        _run_script(monkeypatch, "examples/evaluate_model.py", "--image", str(image), "--ground-truth", str(truth),
                    "--model", str(tiny_model_dir), "--region", "line_items_table")
    assert done.value.code == 2
    assert "annotation is for region 'totals_section', not 'line_items_table'" in capsys.readouterr().err


def test_compare_script_one_document(tiny_model_dir, other_model_dir, manifest, tmp_path, monkeypatch):
    root = manifest.parent
    out = tmp_path / "comparison.json"
    with pytest.raises(SystemExit) as done:
        _run_script(monkeypatch, "compare_base_vs_finetuned.py", "--image", str(root / "crops/inv_1__line_items_table.png"),
                    "--ground-truth", str(root / "annotations/inv_1__line_items_table.json"),
                    "--base", str(tiny_model_dir), "--model", str(other_model_dir), "--output", str(out),
                    "--max-new-tokens", "8", "--device", "cpu")
    assert done.value.code == 0
    result = json.loads(out.read_text())
    assert result["region"] == "line_items_table"
    assert result["base"]["prediction"]["raw_text"] != result["model"]["prediction"]["raw_text"]
    for key, delta in result["deltas"].items():
        assert delta == pytest.approx(result["model"]["metrics"][key] - result["base"]["metrics"][key])


def test_single_document_tools_take_every_format_the_service_takes(tiny_model_dir, manifest, tmp_path, monkeypatch, capsys):
    """JPEG, multi-page TIFF and multi-page PDF through the same intake as the service; a multi-page
    file is scored as ONE merged document, its pages kept; a bad file is a one-line error."""
    from finscribe.eval.document import combine_pages

    root = manifest.parent
    truth = root / "annotations/inv_0__totals_section.json"
    crop = Image.open(root / "crops/inv_0__totals_section.png").convert("RGB")
    files = {"scan.jpg": dict(format="JPEG"),
             "scan.tiff": dict(format="TIFF", save_all=True, append_images=[crop]),
             "scan.pdf": dict(format="PDF", save_all=True, append_images=[crop], resolution=72)}
    for name, options in files.items():
        crop.save(tmp_path / name, **options)
        out = tmp_path / f"{name}.json"
        with pytest.raises(SystemExit) as done:
            _run_script(monkeypatch, "examples/evaluate_model.py", "--image", str(tmp_path / name), "--ground-truth",
                        str(truth), "--model", str(tiny_model_dir), "--output", str(out), "--max-new-tokens", "6",
                        "--device", "cpu")
        assert done.value.code == 0, capsys.readouterr().err
        result = json.loads(out.read_text())
        pages = 1 if name == "scan.jpg" else 2
        assert result["num_pages"] == pages and result["kind"] == name.split(".")[1].replace("jpg", "jpeg")
        assert set(result["metrics"]) == {k for k, _ in METRICS}
        if pages == 2:
            assert [p["page"] for p in result["pages"]] == [1, 2]
            raws = [p["prediction"]["raw_text"] for p in result["pages"]]
            assert result["prediction"]["raw_text"] == "\n".join(raws)
    junk = tmp_path / "notes.pdf"
    junk.write_bytes(b"%PDF-1.4 garbage")
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        _run_script(monkeypatch, "compare_base_vs_finetuned.py", "--image", str(junk), "--model", str(tiny_model_dir),
                    "--base", str(tiny_model_dir), "--output", str(tmp_path / "c.json"), "--device", "cpu")
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1 and "notes.pdf: the PDF could not be opened" in err
    assert "Traceback" not in err and "dataset" not in err
    # the merge of page predictions: header fields from the first page, totals from the last
    first = Prediction({"subtotal": "1.00"}, "a", None, False, 5, 2, 0.1)
    last = Prediction({"subtotal": "9.00", "total": "9.00"}, "b", None, False, 5, 3, 0.1)
    merged = combine_pages([first, last], "totals_section")
    assert merged.parsed == {"subtotal": "9.00", "total": "9.00"} and merged.new_tokens == 5
