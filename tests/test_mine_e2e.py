"""`finscribe mine` on the tiny real PaddleOCR-VL; the slow test runs train → mine → replay-train."""

from __future__ import annotations

import json

import pytest

from finscribe.cli import main as cli_main
from finscribe.mining.error_logger import LOG_NAME, read_error_log
from finscribe.mining.mine import MinedSample, select_records, summarize
from finscribe.mining.error_classifier import ErrorType


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    from finscribe.synthetic.export import generate_dataset

    out = tmp_path_factory.mktemp("synth")
    return generate_dataset(3, out, seed=0, workers=1, degrade=0.0)


def test_mine_cli_logs_every_wrong_output_and_writes_a_summary(tiny_model_dir, manifest, tmp_path, capsys):
    error_dir = tmp_path / "hard"
    argv = ["mine", "--model", str(tiny_model_dir), "--data", str(manifest), "--error-dir", str(error_dir),
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
    assert json.loads((error_dir / "mine_config.json").read_text())["max_new_tokens"] == 6
    assert len((error_dir / LOG_NAME).read_text().splitlines()) == 4
    records = read_error_log(error_dir)
    assert len(records) == 4 and {r["count"] for r in records} == {1}
    assert all(r["model"] == str(tiny_model_dir) and r["raw_text"] is not None for r in records)
    assert "INVALID_JSON" in capsys.readouterr().out

    assert cli_main(argv) == 0  # the same samples again: counted, not duplicated
    records = read_error_log(error_dir)
    assert len(records) == 4 and {r["count"] for r in records} == {2}
    assert json.loads((error_dir / "summary.json").read_text())["log_records"] == 4


def test_mine_cli_rejects_bad_input_clearly(tiny_model_dir, manifest, tmp_path):
    base = ["mine", "--model", str(tiny_model_dir), "--error-dir", str(tmp_path / "hard")]
    with pytest.raises(SystemExit, match="no record of split 'nope'"):
        cli_main(base + ["--data", str(manifest), "--split", "nope"])
    with pytest.raises(SystemExit, match=r"region\(s\) \['page'\]"):
        cli_main(base + ["--data", str(manifest), "--split", "all", "--regions", "page"])
    with pytest.raises(SystemExit, match="missing.jsonl: not found"):
        cli_main(base + ["--data", str(tmp_path / "missing.jsonl")])


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
    assert select_records(records, "all", (), "x") == records[:1]  # OCR records have no JSON target
