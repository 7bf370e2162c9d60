"""Issue 10's "also" items: data discovery under --data-dir, the base of a fine-tuned model, a
missing local --model failing at once on every entry point, and benchmark-quant."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from finscribe.cli import SCRIPTS, main, run, run_stage
from finscribe.model_card import ModelProvenanceError, base_model_of, model_card


def test_data_dir_finds_manifests_and_record_files_in_subfolders(tmp_path, records_jsonl, capsys):
    from finscribe.training.train import TrainingDataError, find_data_files

    data = tmp_path / "data"
    (data / "synthetic_invoices" / "crops").mkdir(parents=True)
    (data / "synthetic_invoices" / "training_manifest.json").write_text("{}")
    (data / "synthetic_invoices" / "crops" / "x.jsonl").write_text("{}\n")  # inside the export: its own files
    (data / "real").mkdir()
    shutil.copy(records_jsonl, data / "real" / "train.jsonl")
    (data / "hard_samples").mkdir()
    (data / "hard_samples" / "errors.jsonl").write_text('{"error_type": "OTHER"}\n')  # a log, not records
    (data / ".cache").mkdir()
    shutil.copy(records_jsonl, data / ".cache" / "old.jsonl")
    files = find_data_files(data)
    assert files == [data / "synthetic_invoices" / "training_manifest.json", data / "real" / "train.jsonl"]
    out = capsys.readouterr().out
    assert "training_manifest.json" in out and "real/train.jsonl" in out and "skipped" in out and "errors.jsonl" in out
    with pytest.raises(TrainingDataError, match="found no training_manifest.json"):
        find_data_files(data / "hard_samples")
    with pytest.raises(TrainingDataError, match="folder not found"):
        find_data_files(tmp_path / "nope")


def test_base_model_of_adapter_full_and_quantized_folders(tmp_path):
    adapter, full, quantized, bare = (tmp_path / n for n in ("adapter", "full", "int8", "bare"))
    for folder in (adapter, full, quantized, bare):
        folder.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/models/base"}))
    (full / "train_config.json").write_text(json.dumps({"model": "PaddlePaddle/PaddleOCR-VL"}))
    (quantized / "quantization.json").write_text(json.dumps({"source_model": str(adapter)}))
    assert base_model_of(adapter) == "/models/base"
    assert base_model_of(full) == "PaddlePaddle/PaddleOCR-VL"
    assert base_model_of(quantized) == "/models/base"  # followed through the adapter it was made from
    with pytest.raises(ModelProvenanceError, match="pass the base explicitly"):
        base_model_of(bare)
    assert "base_model: \"/models/base\"" in model_card(adapter) and "library_name: peft" in model_card(adapter)


def test_compare_without_base_on_a_model_that_does_not_say_fails_with_one_line(tmp_path, tiny_model_dir, capsys):
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (64, 32), "white").save(image)
    rc = _script("compare_base_vs_finetuned.py", ["--image", str(image), "--model", str(tiny_model_dir),
                                                  "--output", str(tmp_path / "c.json")])
    assert rc == 2
    assert "pass the base explicitly" in capsys.readouterr().err


def _script(name: str, argv: list[str]) -> int:
    """What `python <name> argv...` does (finscribe.cli.script), with argv given."""
    return run(lambda a, prog: run_stage(SCRIPTS[name], a, prog), argv, prog=name)


MISSING = "./no_such_model_folder"


def _entry_points(data: Path, tmp: Path) -> dict[str, list[str]]:
    image = json.loads(data.read_text().splitlines()[0])["image"]
    return {
        "train": ["train", "--data", str(data), "--model", MISSING, "--output-dir", str(tmp / "t"), "--report-to", "none"],
        "evaluate": ["evaluate", "--model", MISSING, "--data", str(data), "--split", "all", "--output-dir", str(tmp / "e")],
        "compare --model": ["compare", "--model", MISSING, "--base", MISSING, "--data", str(data), "--split", "all",
                            "--output-dir", str(tmp / "c")],
        "mine": ["mine", "--model", MISSING, "--data", str(data), "--split", "all", "--output-dir", str(tmp / "h")],
        "quantize": ["quantize", "--model", MISSING, "--output-dir", str(tmp / "q")],
        "export": ["export", "--model", MISSING, "--output-dir", str(tmp / "x")],
        "benchmark-quant": ["benchmark-quant", "--model", MISSING, "--data", str(data), "--split", "all",
                            "--output-dir", str(tmp / "b")],
        "serve": ["serve", "--model", MISSING, "--port", "0"],
        "evaluate_model.py": ["evaluate_model.py", "--image", image, "--model", MISSING, "--output", str(tmp / "r.json")],
        "compare_base_vs_finetuned.py": ["compare_base_vs_finetuned.py", "--image", image, "--model", MISSING,
                                         "--base", MISSING, "--output", str(tmp / "c.json")],
    }


@pytest.mark.parametrize("entry", ["train", "evaluate", "compare --model", "mine", "quantize", "export", "benchmark-quant",
                                   "serve", "evaluate_model.py", "compare_base_vs_finetuned.py"])
def test_a_missing_local_model_folder_fails_at_once(entry, tmp_path, records_jsonl, capsys):
    """A path that does not exist is never tried as a hub id (60 s of retries): one line, exit 2, now."""
    argv = _entry_points(records_jsonl, tmp_path)[entry]
    start = time.perf_counter()
    rc = _script(argv[0], argv[1:]) if argv[0] in SCRIPTS else main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "no_such_model_folder" in err and "not found" in err and "couldn't connect" not in err.lower()
    assert time.perf_counter() - start < 30


def test_benchmark_quant_ratio_words():
    from finscribe.deploy.quant_benchmark import _ratio_words

    assert _ratio_words(2.0, "faster", "slower") == "2.00× faster"
    assert _ratio_words(0.5, "faster", "slower") == "2.00× slower"
    assert _ratio_words(1 / 0.95, "faster", "slower") == "1.05× faster"


@pytest.mark.slow
def test_benchmark_quant_on_a_jsonl_with_regions_and_the_guard(tmp_path, tiny_model_dir, records_jsonl, capsys):
    """A records JSONL as --data, --regions, a fixed length above the repetition guard's floor (24
    tokens) with the guard on for accuracy, and both CPU kernels; the table says faster or slower."""
    rc = main(["benchmark-quant", "--model", str(tiny_model_dir), "--data", str(records_jsonl), "--split", "all",
               "--regions", "totals_section", "--limit", "2", "--repeats", "1", "--fixed-new-tokens", "40",
               "--max-new-tokens", "8", "--cpu-kernels", "both", "--output-dir", str(tmp_path / "b")])
    out = capsys.readouterr().out
    assert rc == 0, out
    summary = json.loads((tmp_path / "b" / "quantization.json").read_text())
    assert summary["records"] == 2 and summary["variants"] == ["float", "int8", "int8_torchao"]
    for variant in ("int8", "int8_torchao"):
        speedup = summary[f"{variant}_vs_float"]["latency_p50_speedup"]
        assert (f"{speedup:.2f}× faster" if speedup >= 1 else f"{1 / speedup:.2f}× slower") in out
    assert (tmp_path / "b" / "int8_model" / "model.safetensors").is_file()
