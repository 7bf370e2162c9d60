"""`finscribe pretrain-reader`: reproducible data, exact resume, export of a loadable reader."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from finscribe.cli import main as cli_main
from finscribe.model import load_model
from finscribe.synthetic.canvas import TextSpan
from finscribe.synthetic.ocr_text import group_lines, page_samples
from finscribe.training.pretrain_reader import PretrainConfig, export_reader, pretrain, step_kind, step_samples
from finscribe.training.reader_report import block_rows, class_error_rates


def _config(out, **overrides) -> PretrainConfig:
    values = dict(output_dir=out, max_steps=4, hidden_size=32, num_layers=1, num_heads=2, vision_hidden_size=32,
                  vision_layers=1, vision_num_heads=2, vocab_size=300, tokenizer_pages=2, pages_per_step=1,
                  line_batch=2, block_batch=1, save_every=2, eval_every=4, log_every=1, eval_pages=1, eval_lines=3,
                  threads=1, loader_workers=0, warmup_steps=1)
    values.update(overrides)
    return PretrainConfig(**values)


def test_lines_are_grouped_left_to_right_top_to_bottom():
    spans = [TextSpan("$10.00", (300, 52, 360, 70)), TextSpan("Total", (10, 50, 60, 72)),
             TextSpan("Subtotal", (10, 20, 80, 40)), TextSpan("$9.00", (300, 21, 350, 39))]
    assert [text for _, text in group_lines(spans)] == ["Subtotal $9.00", "Total $10.00"]


def test_samples_depend_only_on_seed_and_step_and_skip_held_out_layouts(tmp_path):
    config = _config(tmp_path)
    first, again = step_samples(config, 3), step_samples(config, 3)
    assert [s.text for s in first] == [s.text for s in again] and first
    assert [s.image.tobytes() for s in first] == [s.image.tobytes() for s in again]
    assert all(s.layout != "minimal" for step in range(6) for s in step_samples(config, step))
    assert {step_kind(config, s) for s in range(40)} == {"line", "block"}
    block = next(s for s in page_samples(7, 0) if s.kind == "block" and s.region == "totals_section")
    assert "\n" in block.text and block.image.width > 100


def test_resume_is_exact_and_export_loads(tmp_path):
    straight = pretrain(_config(tmp_path / "straight"))
    pretrain(_config(tmp_path / "resumed", max_steps=2))  # stops at the step-2 checkpoint
    resumed = pretrain(_config(tmp_path / "resumed", max_steps=4))
    a = load_file(straight / "checkpoint" / "model.safetensors")
    b = load_file(resumed / "checkpoint" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(line) for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "loss" in r]
    assert len(steps) == len(set(zip(steps, [r["kind"] for r in rows if "loss" in r])))  # no step logged twice
    assert (straight / "curve.png").read_bytes()[:4] == b"\x89PNG"

    exported = export_reader(_config(tmp_path / "straight"), tmp_path / "reader")
    model, processor = load_model(exported, device="cpu", dtype="float32")
    assert json.loads((exported / "eval.json").read_text())["step"] == 4
    assert "pretrained on the real model's base task" in (exported / "README.md").read_text()
    assert not any(p.name.startswith("optimizer_") for p in exported.iterdir())


def test_a_changed_setting_refuses_to_resume(tmp_path, capsys):
    pretrain(_config(tmp_path / "run", max_steps=2))
    saved = tmp_path / "run" / "config.json"  # the run's own settings, as --config, with one changed
    assert cli_main(["pretrain-reader", "--config", str(saved), "--learning-rate", "1e-3", "--max-steps", "3"]) == 2
    assert "started with other settings (['learning_rate'])" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [["--export-only"]])
def test_export_only_needs_an_export_dir(tmp_path, capsys, flags):
    assert cli_main(["pretrain-reader", "--output-dir", str(tmp_path), *flags]) == 2
    assert "--export-only needs --export-dir" in capsys.readouterr().err


def test_class_error_rates_say_which_characters_are_misread():
    assert class_error_rates(["Total $12.50"], ["Total $12.50"]) == {"digit": 0.0, "letter": 0.0, "other": 0.0}
    # "a" missing (letter), "2" read as "3" and the last "0" missing (two of four digits), nothing else
    assert class_error_rates(["Totl $13.5"], ["Total $12.50"]) == {"digit": 0.5, "letter": 0.2, "other": 0.0}
    # two extra letters count against letters; a class absent from the references has no rate
    assert class_error_rates(["12xx"], ["12"]) == {"digit": 0.0, "letter": None, "other": None}
    # pooled over crops: 2 letter errors in 7 reference letters (rounded to 4 places as in eval.json)
    assert class_error_rates(["Totl $13.5", "A1"], ["Total $12.50", "AB1"])["letter"] == round(2 / 7, 4)


def test_block_rows_score_each_row_against_the_same_row_of_the_target():
    rows = block_rows(["Subtotal $9.00\nTax $1.00", "Subtotal $8.00\nTax $2.00\nTotal $10.00"],
                      ["Subtotal $9.00\nTax $1.00\nTotal $10.00", "Subtotal $9.00\nTax $2.00\nTotal $11.00"])
    assert rows["0"] == {"n": 2, "exact": 0.5, "cer": round(1 / 28, 4)}  # one digit wrong in 2 x 14 characters
    assert rows["1"] == {"n": 2, "exact": 1.0, "cer": 0.0}
    assert rows["2"] == {"n": 2, "exact": 0.0, "cer": round((12 + 1) / 24, 4)}  # a missing row costs all of it


def test_a_second_phase_starts_from_an_earlier_reader_with_a_new_rope_theta(tmp_path, capsys):
    first = pretrain(_config(tmp_path / "phase1", max_steps=2))
    exported = export_reader(_config(tmp_path / "phase1", max_steps=2), tmp_path / "reader")
    second = pretrain(_config(tmp_path / "phase2", max_steps=2, init_from=exported, rope_theta=1000.0, seed=99))
    start = json.loads((second / "init" / "config.json").read_text())
    assert start["text_config"]["rope_parameters"]["rope_theta"] == 1000.0
    earlier = load_file(first / "checkpoint" / "model.safetensors")
    assert all(torch.equal(earlier[k], v) for k, v in load_file(second / "init" / "model.safetensors").items())
    assert (second / "init" / "tokenizer.json").read_bytes() == (exported / "tokenizer.json").read_bytes()
    model, _ = load_model(second / "checkpoint", device="cpu", dtype="float32")
    assert model.config.text_config.rope_parameters["rope_theta"] == 1000.0
    assert "rows" in json.loads((second / "eval.json").read_text())["eval"]["block"]["regions"]["totals_section"]

    assert cli_main(["pretrain-reader", "--output-dir", str(tmp_path / "bad"), "--init-from", str(tmp_path)]) == 2
    assert f"--init-from {tmp_path} is not a model folder" in capsys.readouterr().err
