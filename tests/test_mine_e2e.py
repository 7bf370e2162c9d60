"""`finscribe mine` on the tiny real PaddleOCR-VL; the slow test runs train → mine → replay-train."""

from __future__ import annotations

import json
import re

import pytest

from finscribe.cli import main as cli_main
from finscribe.data.build_dataset import build_dataset_from_manifest, write_jsonl_atomic
from finscribe.data.selection import select_records
from finscribe.inference import GenerationArgs
from finscribe.mining.error_classifier import ErrorType
from finscribe.mining.error_logger import LOG_NAME, read_error_log
from finscribe.mining.mine import MinedSample, summarize


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    from finscribe.synthetic.export import generate_dataset

    out = tmp_path_factory.mktemp("synth")
    return generate_dataset(3, out, seed=0, workers=1, degrade=0.0)


def test_mine_cli_logs_every_wrong_output_and_writes_a_summary(tiny_model_dir, manifest, tmp_path, capsys):
    error_dir = tmp_path / "hard"
    argv = ["mine", "--model", str(tiny_model_dir), "--data", str(manifest), "--output-dir", str(error_dir),
            "--split", "all", "--regions", "totals_section", "invoice_meta", "--limit", "4",
            "--max-new-tokens", "6", "--batch-size", "4", "--device", "cpu"]
    assert cli_main(argv) == 0
    summary = json.loads((error_dir / "summary.json").read_text())
    # An untrained model cannot write a JSON object in 6 tokens: every output is INVALID_JSON.
    assert summary["samples"] == 4 and summary["errors"] == 4
    assert summary["by_type"] == {"INVALID_JSON": 4}
    assert sum(sum(c.values()) for c in summary["by_region"].values()) == 4
    assert (error_dir / "summary.png").stat().st_size > 1000
    assert "4 of 4 outputs wrong" in (error_dir / "summary.md").read_text()
    assert json.loads((error_dir / "mine_config.json").read_text())["generation"]["max_new_tokens"] == 6
    assert len((error_dir / LOG_NAME).read_text().splitlines()) == 4
    records = read_error_log(error_dir)
    assert len(records) == 4 and {r["count"] for r in records} == {1}
    assert all(r["model"] == str(tiny_model_dir) and r["raw_text"] is not None for r in records)
    assert "INVALID_JSON" in capsys.readouterr().out

    assert cli_main(argv) == 0  # the same samples again: counted, not duplicated
    records = read_error_log(error_dir)
    assert len(records) == 4 and {r["count"] for r in records} == {2}
    assert json.loads((error_dir / "summary.json").read_text())["log_records"] == 4


def test_mine_cli_rejects_bad_input_clearly(tiny_model_dir, manifest, tmp_path, capsys):
    base = ["mine", "--model", str(tiny_model_dir), "--output-dir", str(tmp_path / "hard")]
    totals_only = tmp_path / "totals.jsonl"
    write_jsonl_atomic(totals_only, build_dataset_from_manifest(manifest, regions=["totals_section"]).to_list())
    for extra, message in ((["--data", str(manifest), "--split", "nope"], "no record of split 'nope'"),
                           (["--data", str(totals_only), "--split", "all", "--regions", "page"], r"region\(s\) \['page'\]"),
                           (["--data", str(tmp_path / "missing.jsonl")], "missing.jsonl: not found")):
        assert cli_main(base + extra) == 2
        err = capsys.readouterr().err
        last = err.rstrip().split("\n")[-1].split("\r")[-1]  # progress bars may precede it on stderr
        assert re.search(message, last) and last.startswith("error: ") and "Traceback" not in err


def test_summarize_counts_primary_and_field_level_errors():
    def sample(region, error_type, field_types):
        errors = [{"path": "x", "error_type": t, "pred": None, "gt": None, "message": ""} for t in field_types]
        return MinedSample({"region": region}, ErrorType(error_type), errors, None, "")

    summary = summarize([
        sample("totals_section", "OTHER", []),
        sample("totals_section", "ARITHMETIC_INCONSISTENT", ["ARITHMETIC_INCONSISTENT"] * 2 + ["TEXT_MISMATCH"]),
        sample("invoice_meta", "DATE_MISMATCH", ["DATE_MISMATCH"]),
    ])
    assert summary["samples"] == 3 and summary["errors"] == 2
    assert summary["by_region"] == {"invoice_meta": {"DATE_MISMATCH": 1},
                                    "totals_section": {"ARITHMETIC_INCONSISTENT": 1, "OTHER": 1}}
    assert summary["field_errors_by_type"] == {"ARITHMETIC_INCONSISTENT": 2, "DATE_MISMATCH": 1, "TEXT_MISMATCH": 1}
    records = [{"split": "train", "region": "totals_section", "prompt": "Totals to JSON:"},
               {"split": "test", "region": "totals_section", "prompt": "OCR:"}]
    assert select_records(records, "all", (), "x", skip_ocr=True) == records[:1]  # OCR records have no JSON target


STEPS = 100  # optimizer steps of each training run in the slow test


def _wrong_fields(model_dir, records):
    """(wrong outputs, wrong fields) of a model on records; unparseable output = all fields wrong."""
    from finscribe.eval.field_accuracy import field_accuracy_details
    from finscribe.mining.mine import classify_records
    from finscribe.model import load_model

    model, processor = load_model(model_dir, device="cpu", dtype="float32")
    results = classify_records(model, processor, records, GenerationArgs(model="tiny", max_new_tokens=64),
                               show_progress=False)
    fields = 0
    for r in results:
        score = field_accuracy_details(r.pred, json.loads(r.record["target"]))
        fields += score.total - score.correct
    return sum(r.error_type != "OTHER" for r in results), fields


@pytest.mark.slow
def test_train_mine_replay_reduces_errors_on_the_mined_samples(tiny_model_dir, tmp_path):
    """train → mine the test split → retrain with replay → fewer errors on the mined samples."""
    from finscribe.mining.replay_dataset import build_hard_sample_dataset
    from finscribe.synthetic.export import generate_dataset
    from finscribe.training.train import TrainConfig, train

    manifest = generate_dataset(24, tmp_path / "synth", seed=0, workers=1, degrade=0.0,
                                test_fraction=0.2, val_fraction=0.0)
    common = dict(data=manifest, regions=("totals_section",), batch_size=8, gradient_accumulation_steps=1,
                  learning_rate=2e-3, warmup_ratio=0.1, logging_steps=50, save_steps=10_000,
                  eval_generate_samples=0, report_to=("none",), seed=0)
    first = train(TrainConfig(model=str(tiny_model_dir), output_dir=tmp_path / "first", max_steps=STEPS, **common))

    error_dir = tmp_path / "hard"
    assert cli_main(["mine", "--model", str(first), "--data", str(manifest), "--output-dir", str(error_dir),
                     "--split", "test", "--regions", "totals_section", "--max-new-tokens", "64",
                     "--device", "cpu"]) == 0
    mined = build_hard_sample_dataset(error_dir).to_list()
    assert mined, "the briefly trained tiny model should still get test samples wrong"

    replayed = train(TrainConfig(model=str(first), output_dir=tmp_path / "replay", max_steps=STEPS,
                                 hard_samples=error_dir, hard_ratio=0.5, **common))
    before, after = _wrong_fields(first, mined), _wrong_fields(replayed, mined)
    print(f"\n{len(mined)} mined samples: wrong outputs {before[0]} -> {after[0]}, "
          f"wrong fields {before[1]} -> {after[1]}")
    assert before[0] == len(mined)
    assert after[1] < before[1]

