"""Smoke test of `finscribe quickstart` with a very small configuration (real tiny model, real
stages end to end; a few samples and steps, so the numbers themselves mean nothing here)."""

from __future__ import annotations

import json
import os

import pytest
import torch

from finscribe.data.schema import REGIONS
from finscribe.eval.scoring import metric_value, row_position_accuracy
from finscribe.machine import machine_line
from finscribe.model import load_model
from finscribe.quickstart import TINY_READER, QuickstartConfig, main, run_quickstart
from finscribe.quickstart_config import TINY_TABLE_PIXELS
from finscribe.training.trainer import is_vision


def test_quickstart_runs_every_step_and_reports_both_models(tmp_path, capsys, tiny_detector_dir):
    out = tmp_path / "qs"
    config = QuickstartConfig(output_dir=out, num_samples=24, workers=1, max_steps=2,
                              max_new_tokens=8, eval_limit=10, eval_batch_size=4, page_eval_limit=2,
                              layout_model=tiny_detector_dir, batch_size=4,
                              micro_batches=2, sampling="batch_rebalance")
    summary = run_quickstart(config)

    for name in ("data/training_manifest.json", "dataset/records.jsonl",
                 "model/config.json", "model/loss_curve.png", "eval/report.md", "eval/report.json",
                 "compare/comparison.md", "compare/comparison.json", "compare/comparison.png",
                 "compare/blank_images_predictions.jsonl", "summary.json", "quickstart_config.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "summary.json").read_text()) == summary
    # --sampling and --micro-batches reach the training run: 4 crops a step, as 2 micro-batches
    trained = json.loads((out / "model" / "train_config.json").read_text())
    assert (trained["sampling"], trained["batch_size"], trained["gradient_accumulation_steps"]) == ("batch_rebalance", 2, 2)
    assert trained["val_limit"] == 10  # the validation loss is taken on as many crops as the test scores
    # the default trains the vision encoder too, at its own learning rate (3e-4 against the decoder's 1e-3)
    base, _ = load_model(TINY_READER, device="cpu", dtype="float32")
    tuned, tuned_processor = load_model(out / "model", device="cpu", dtype="float32")
    # tables keep their printed size: the tiny reader's own cap (313,600 px) is raised for training and after
    assert trained["max_pixels"] == TINY_TABLE_PIXELS == tuned_processor.image_processor.size["longest_edge"]
    base, tuned = dict(base.named_parameters()), dict(tuned.named_parameters())
    vision = [name for name in base if is_vision(name)]
    assert not trained["freeze_vision"] and trained["vision_lr"] == 3e-4 and trained["learning_rate"] == 1e-3 and vision
    assert not all(torch.equal(base[name], tuned[name]) for name in vision)
    assert not all(torch.equal(base[name], tuned[name]) for name in base if name not in vision)
    # every headline number is the one recomputed from the rows of its predictions file
    for side, rows_file in (("base", "base_predictions.jsonl"), ("model", "model_predictions.jsonl"),
                            ("model_blank_images", "blank_images_predictions.jsonl")):
        rows = [json.loads(line) for line in (out / "compare" / rows_file).read_text().splitlines()]
        for key in ("field_accuracy", "char_accuracy", "exact_match"):
            assert summary["overall"][side][key] == pytest.approx(metric_value(rows, key)), (side, key)
    # the blank-image control is the same fine-tuned model, scored on the same records
    comparison_json = json.loads((out / "compare" / "comparison.json").read_text())
    assert comparison_json["model"] == summary["model"]
    # its fine-tuned side is the evaluate step's pass, reused rather than generated twice
    assert comparison_json["model_predictions_reused_from"] == str(out / "eval")
    assert (out / "compare" / "model_predictions.jsonl").read_text() == (out / "eval" / "predictions.jsonl").read_text()
    assert comparison_json["blank_images"]["overall"]["records"] == summary["test_records"]
    blank_rows = (out / "compare" / "blank_images_predictions.jsonl").read_text().splitlines()
    assert len(blank_rows) == summary["test_records"]
    overall = summary["overall"]
    assert summary["image_dependent_field_accuracy"] == pytest.approx(
        overall["model"]["field_accuracy"] - overall["model_blank_images"]["field_accuracy"])
    assert set(summary["per_field"]) == set(json.loads((out / "eval" / "report.json").read_text())["per_field"])
    assert summary["base"] == str(TINY_READER)  # the pretrained reader, before fine-tuning
    assert summary["test_records"] == 10  # the default regions, all five, of the first two test invoices
    comparison = (out / "compare" / "comparison.md").read_text()
    assert "base" in comparison.lower() and "field accuracy" in comparison.lower()
    assert "model on blank images" in comparison
    # per region and goals: recomputed here from the prediction files, printed beside each goal
    eval_rows = [json.loads(line) for line in (out / "eval" / "predictions.jsonl").read_text().splitlines()]
    blank_rows = [json.loads(line) for line in (out / "compare" / "blank_images_predictions.jsonl").read_text().splitlines()]
    assert set(summary["per_region"]) == set(REGIONS)
    for name, row in summary["per_region"].items():
        mine, blank = ([r for r in rows if r["region"] == name] for rows in (eval_rows, blank_rows))
        assert row["records"] == len(mine) == 2, name
        assert row["field_accuracy"] == pytest.approx(metric_value(mine, "field_accuracy")), name
        assert row["blank_images"] == pytest.approx(metric_value(blank, "field_accuracy")), name
        assert row["image_gap"] == pytest.approx(row["field_accuracy"] - row["blank_images"]), name
    region = summary["per_region"]["totals_section"]
    assert set(region["per_field"]) <= {"subtotal", "discount", "tax_rate", "tax_amount", "total", "currency"}
    goals = {g["goal"]: g for g in summary["goals"]}
    assert goals["totals_section field accuracy"]["measured"] == pytest.approx(region["field_accuracy"])
    assert goals["totals_section field accuracy"]["met"] == (region["field_accuracy"] >= 0.90)
    assert goals["totals_section blank-image gap (points)"]["target"] == 0.55
    assert goals["quickstart minutes, this run (goal: the default run, idle 2-core machine, set-up included)"]["measured"] == pytest.approx(
        summary["seconds"]["total"] / 60)
    # the host beside the time: its cores as this process sees them, and one summary line naming it
    assert summary["machine"]["cores"] == len(os.sched_getaffinity(0))
    assert summary["machine"]["torch_threads"] == torch.get_num_threads()
    digits = summary["amount_digits_by_position"]
    assert digits["model"] == comparison_json["digit_positions"]["model"]["all amounts"]
    assert digits["model"]["10^-2"]["total"] >= 4  # every test crop's amounts have a cents digit
    assert "Amount digits by position" in comparison
    # the validated-beams evaluation: its own report, its figures in the summary beside greedy's
    beams_report = json.loads((out / "eval_beams" / "report.json").read_text())
    assert beams_report["beams"] == 4 == summary["validated_beams"]
    for key in ("field_accuracy", "exact_match"):
        assert summary["overall"]["model_validated_beams"][key] == pytest.approx(beams_report["overall"][key])
    assert region["validated_beams"] == pytest.approx(beams_report["per_region"]["totals_section"]["field_accuracy"])
    beam_rows = [json.loads(line) for line in (out / "eval_beams" / "predictions.jsonl").read_text().splitlines()]
    assert len(beam_rows) == 10 and all(0 <= row["beam"] < 4 for row in beam_rows)
    printed = capsys.readouterr().out
    # the page-level evaluation: whole test pages with detected and true boxes, figures from its files
    pages = summary["pages"]
    assert pages["pages"] == 2 and pages["regions"] == list(config.regions)
    for side in ("detected", "oracle"):
        rows = [json.loads(line) for line in (out / "eval_pages" / side / "predictions.jsonl").read_text().splitlines()]
        assert len(rows) == 2 and all(row["split"] == "test" for row in rows)
        for key in ("field_accuracy", "exact_match", "validation_pass_rate"):
            assert pages[side][key] == pytest.approx(metric_value(rows, key)), (side, key)
    # read with the run's validated beams; the document goals are the detected side's figures
    page_report = json.loads((out / "eval_pages" / "report.json").read_text())
    assert pages["validated_beams"] == 4 == page_report["beams"]
    # the true boxes' crops are the test crops the validated-beams step read: none is read again
    assert page_report["oracle"]["reads_from"] == str(out / "eval_beams")
    assert page_report["oracle"]["reads_reused"] == 2 * len(REGIONS)
    document = goals["document field accuracy, validated beams, detected boxes"]
    assert document["measured"] == pytest.approx(pages["detected"]["field_accuracy"])
    assert goals["pages with every field right, validated beams, detected boxes"]["measured"] == pytest.approx(
        pages["detected"]["exact_match"])
    assert pages["detection_cost"] == pytest.approx(pages["detected"]["field_accuracy"] - pages["oracle"]["field_accuracy"])
    assert summary["reports"]["evaluation_pages"] == str(out / "eval_pages" / "report.md")
    assert "whole test pages (2 pages" in printed
    assert f"machine: {machine_line(summary['machine'])}" in printed
    assert "goals (issue 28" in printed and "per region" in printed and "amount digits right by position" in printed
    assert "fine-tuned" in printed and str(out / "compare" / "comparison.md") in printed
    # the table's rows by their place in it, recomputed from the evaluation's rows and printed
    table_rows = [r for r in eval_rows if r["region"] == "line_items_table"]
    bands = summary["per_region"]["line_items_table"]["rows_by_position"]
    assert bands == {band: cell["accuracy"] for band, cell in row_position_accuracy(table_rows).items()} and bands
    assert "line-item rows exact by their place in the table: 1-4 " in printed
    assert "validated beams" in printed
    records = [json.loads(line) for line in (out / "dataset" / "records.jsonl").read_text().splitlines()]
    assert {r["region"] for r in records} == set(REGIONS)
    assert {r["split"] for r in records} >= {"train", "test"}


def test_quickstart_rejects_too_few_samples():
    with pytest.raises(ValueError, match="num-samples"):
        QuickstartConfig(num_samples=5)


def test_quickstart_help_lists_the_model_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "--model" in text and "PaddleOCR-VL" in text and "--max-steps" in text


@pytest.mark.slow
def test_quickstart_recipe_learns_to_read_the_image(tmp_path):
    """The quickstart's recipe at reduced size: fine-tuning the reader must give accuracy that needs
    the image (fine-tuned minus the same model on blank images), positive and large."""
    config = QuickstartConfig(output_dir=tmp_path / "qs", num_samples=200, workers=1, max_steps=300, eval_limit=40,
                              regions=("totals_section",), max_new_tokens=128)
    summary = run_quickstart(config)
    assert summary["image_dependent_field_accuracy"] > 0.3, summary["overall"]


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 400 steps on five regions: ~10 min on an idle 2-core machine, far more when loaded
def test_quickstart_recipe_on_every_region_reads_each_one_from_the_image(tmp_path):
    """The same recipe on all five regions in one model: each region's field accuracy must need its
    image (its blank-image gap is positive), and the table gets its TEDS figures (the recipe's reader
    reads tables as blocks; the hand-run reader before it never parsed one: RESULTS.md)."""
    config = QuickstartConfig(output_dir=tmp_path / "qs", num_samples=200, workers=1, max_steps=400, eval_limit=100,
                              regions=REGIONS, max_new_tokens=1400, validated_beams=0, page_eval_limit=3)
    summary = run_quickstart(config)
    assert set(summary["per_region"]) == set(REGIONS)
    for region, row in summary["per_region"].items():
        assert row["records"] > 0, (region, row)
        assert row["image_gap"] > 0.0, (region, row)
    table = summary["per_region"]["line_items_table"]
    assert all(0.0 <= table[key] <= 1.0 for key in ("teds", "teds_structure", "row_exact_match")), table
    assert table["teds"] > 0.0, table  # tables parse and are scored, not cut short
    assert summary["pages"]["per_region_field_accuracy"]["detected"].keys() == set(REGIONS)
