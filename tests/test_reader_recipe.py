"""`finscribe pretrain-reader --recipe`: the reader's whole pretraining as one curriculum file.

The committed run (pretrain/reader) must be what configs/reader.yaml gives: its first steps are
reproduced bit for bit here; and a recipe stopped anywhere and resumed ends in the same weights
as one run straight through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from finscribe.cli import main as cli_main
from finscribe.training.pretrain_reader import FIRST_STEPS, PretrainConfig, pretrain
from finscribe.training.reader_recipe import load_recipe, run_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "reader.yaml"
COMMITTED_RUN = ROOT / "pretrain" / "reader"

TINY_RECIPE = """
defaults:
  hidden_size: 32
  num_layers: 1
  num_heads: 2
  vision_hidden_size: 32
  vision_layers: 1
  vision_num_heads: 2
  vocab_size: 300
  tokenizer_pages: 2
  pages_per_step: 1
  line_batch: 2
  block_batch: 1
  save_every: 1
  eval_every: 100
  log_every: 1
  eval_pages: 1
  eval_lines: 2
  warmup_steps: 1
  max_pixels: 200704
phases:
  - name: lines
    seed: 11
    max_steps: 3
    rope_theta: 20
    line_focus_regions: [vendor_block, client_info]
    line_focus_share: 0.5
  - name: blocks
    seed: 12
    max_steps: 2
    rope_theta: 1000
    max_pixels: 250000
    block_regions: [vendor_block, line_items_table]
    block_share_start: 0.9
    block_share_end: 0.9
"""


def _run(tmp_path: Path, name: str, **overrides) -> Path | None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(TINY_RECIPE)
    config = PretrainConfig(output_dir=tmp_path / name, recipe=recipe, export_dir=tmp_path / f"{name}_reader",
                            threads=1, loader_workers=0, **overrides)
    return run_recipe(config)


def test_a_stopped_recipe_resumes_to_the_same_reader_and_keeps_one_checkpoint(tmp_path):
    straight = _run(tmp_path, "straight")
    assert _run(tmp_path, "resumed", stop_at_step=2) is None  # stops inside phase 1
    phase1 = tmp_path / "resumed" / "1_lines"
    assert json.loads((phase1 / "checkpoint" / "trainer_state.json").read_text())["step"] == 2
    assert not (tmp_path / "resumed" / "2_blocks").exists()
    resumed = _run(tmp_path, "resumed")
    a, b = (load_file(folder / "model.safetensors") for folder in (straight, resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # finished phases keep their record, not their weights; the last phase's reader moved to --export-dir
    for phase in ("1_lines", "2_blocks"):
        folder = tmp_path / "resumed" / phase
        assert (folder / "done.json").is_file() and (folder / "metrics.jsonl").is_file() and (folder / "config.json").is_file()
        assert not any(folder.rglob("*.safetensors")), phase
    # phase 2 started from phase 1's reader with its own RoPE base and pixel budget
    model_config = json.loads((resumed / "config.json").read_text())
    assert model_config["text_config"]["rope_parameters"]["rope_theta"] == 1000
    assert json.loads((resumed / "processor_config.json").read_text())["image_processor"]["size"]["longest_edge"] == 250000
    phase2 = json.loads((tmp_path / "resumed" / "2_blocks" / "config.json").read_text())
    assert phase2["block_regions"] == ["vendor_block", "line_items_table"] and phase2["seed"] == 12
    card = (resumed / "README.md").read_text()  # the reader says it is the recipe's, and how to make it again
    assert "phase `2_blocks` of the recipe" in card and f"--recipe {tmp_path / 'resumed' / 'recipe.yaml'}" in card
    first = [json.loads(line) for line in (phase1 / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in first if "first_step_loss" in r] == [1, 2, 3]  # logged once each across the resume


def test_line_focus_gives_the_focus_regions_their_share_of_a_line_batch(tmp_path):
    from finscribe.training.pretrain_reader import step_kind, step_samples
    config = PretrainConfig(output_dir=tmp_path, line_batch=10, pages_per_step=2, line_focus_regions=("vendor_block",),
                            line_focus_share=0.5, seed=5)
    step = next(s for s in range(50) if step_kind(config, s) == "line")
    regions = [s.region for s in step_samples(config, step)]
    assert len(regions) == 10 and regions.count("vendor_block") == 5


@pytest.mark.parametrize(("text", "message"), [
    ("phases: []", "non-empty list"),
    ("phases:\n  - name: a\n    learning_rat: 0.1", "'learning_rat', which is not a recipe option"),
    ("phases:\n  - name: a\n    output_dir: x", "'output_dir', which is not a recipe option"),
    ("phases:\n  - name: a\n    max_steps: many", "max_steps must be a number"),
    ("phases:\n  - name: a\n    block_regions: totals_section", "block_regions must be a list"),
    ("phases: [", "not valid YAML"),
    ("defaults: {}\nphase: []", "must hold `phases:`"),
])
def test_a_bad_recipe_is_one_line_naming_the_file_and_key(tmp_path, capsys, text, message):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(text)
    assert cli_main(["pretrain-reader", "--recipe", str(recipe), "--output-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and str(recipe) in err and len(err.strip().splitlines()) == 1


def test_a_run_folder_refuses_another_recipe(tmp_path, capsys):
    _run(tmp_path, "run", stop_at_step=1)
    other = tmp_path / "other.yaml"
    other.write_text(TINY_RECIPE.replace("seed: 12", "seed: 13"))
    assert cli_main(["pretrain-reader", "--recipe", str(other), "--output-dir", str(tmp_path / "run")]) == 2
    assert "was started with another recipe" in capsys.readouterr().err


def test_the_committed_recipe_loads_as_complete_phases():
    phases = load_recipe(PretrainConfig(output_dir=Path("pretrain/reader"), recipe=RECIPE))
    assert [p.name for p in phases] == ["lines", "blocks", "polish", "positions"]
    assert phases[0].config.init_from is None and phases[1].config.init_from == Path("pretrain/reader/1_lines/export")
    assert phases[3].config.init_from == Path("pretrain/reader/3_polish/export")
    # the last phase widens the text RoPE for long answers and reads tables at their printed size
    assert [p.config.rope_theta for p in phases] == [20, 1000, 1000, 20000]
    assert [p.config.max_pixels for p in phases] == [313600, 313600, 313600, 1003520]
    assert all("line_items_table" in p.config.block_regions for p in phases[1:])
    # the committed run is this recipe's: every phase finished, with its record
    assert (COMMITTED_RUN / "recipe.yaml").read_text() == RECIPE.read_text()
    for index, phase in enumerate(phases, start=1):
        assert json.loads((COMMITTED_RUN / f"{index}_{phase.name}" / "done.json").read_text())["steps"] == phase.config.max_steps


@pytest.mark.slow
def test_the_recipe_reproduces_the_committed_runs_first_steps_bit_exactly(tmp_path):
    """Phase 1 of configs/reader.yaml from random weights, its first steps' exact losses against
    the committed run's (pretrain/reader/1_lines/metrics.jsonl)."""
    committed = [json.loads(line) for line in (COMMITTED_RUN / "1_lines" / "metrics.jsonl").read_text().splitlines()]
    expected = [(r["step"], r["kind"], r["first_step_loss"]) for r in committed if "first_step_loss" in r]
    assert len(expected) == FIRST_STEPS
    phase = load_recipe(PretrainConfig(output_dir=tmp_path, recipe=RECIPE))[0].config
    from dataclasses import replace
    pretrain(replace(phase, stop_at_step=FIRST_STEPS, export_dir=None))
    rerun = [json.loads(line) for line in (phase.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["kind"], r["first_step_loss"]) for r in rerun if "first_step_loss" in r] == expected
