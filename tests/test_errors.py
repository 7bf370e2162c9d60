"""Every user error ends as ONE line `error: ...` naming the file or field, exit status 2, no
traceback (issue 12's list of cases that used to end in tracebacks). `--debug` shows the traceback."""

from __future__ import annotations

import shutil

import pytest

from finscribe.cli import main as cli_main
from finscribe.synthetic.export import generate_dataset


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return generate_dataset(4, tmp_path_factory.mktemp("errs") / "synth", seed=3, workers=1)


def _error(capsys, argv: list[str]) -> str:
    assert cli_main(argv) == 2, argv
    err = capsys.readouterr().err
    last = err.rstrip().split("\n")[-1].split("\r")[-1]  # progress bars may come first on stderr
    assert last.startswith("error: ") and "Traceback" not in err, err
    return last


@pytest.fixture
def broken_models(tiny_model_dir, tmp_path):
    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_model_dir, truncated)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 3])
    no_tokenizer = tmp_path / "no_tokenizer"
    shutil.copytree(tiny_model_dir, no_tokenizer)
    (no_tokenizer / "tokenizer.json").unlink()
    return truncated, no_tokenizer


def test_train_data_that_is_a_folder(capsys, tiny_model_dir, tmp_path):
    (tmp_path / "records").mkdir()
    line = _error(capsys, ["train", "--data", str(tmp_path / "records"), "--model", str(tiny_model_dir),
                           "--output-dir", str(tmp_path / "o")])
    assert "records" in line and "folder" in line


def test_truncated_weights_in_every_stage(capsys, broken_models, manifest, tmp_path):
    truncated, _ = broken_models
    for argv in (["evaluate", "--model", str(truncated), "--data", str(manifest), "--output-dir", str(tmp_path / "e")],
                 ["quantize", "--model", str(truncated), "--output-dir", str(tmp_path / "q")],
                 ["train", "--data", str(manifest), "--model", str(truncated), "--output-dir", str(tmp_path / "t"),
                  "--max-steps", "1"],
                 ["serve", "--model", str(truncated), "--port", "0"]):
        line = _error(capsys, argv)
        assert "truncated" in line and "model.safetensors" in line and "re-save" in line, (argv[0], line)


def test_missing_tokenizer(capsys, broken_models, manifest, tmp_path):
    _, no_tokenizer = broken_models
    line = _error(capsys, ["evaluate", "--model", str(no_tokenizer), "--data", str(manifest),
                           "--output-dir", str(tmp_path / "e")])
    assert "no tokenizer" in line and "tokenizer.json" in line


def test_corrupt_png_is_named(capsys, tiny_model_dir, manifest, tmp_path):
    copy = tmp_path / "synth"
    shutil.copytree(manifest.parent, copy)
    crop = sorted((copy / "crops").glob("*totals_section.png"))[0]
    crop.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    assert cli_main(["evaluate", "--model", str(tiny_model_dir), "--data", str(copy / "training_manifest.json"),
                     "--split", "all", "--output-dir", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert crop.name in err and "Traceback" not in err
    image = tmp_path / "broken.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    assert cli_main(["evaluate", "--model", str(tiny_model_dir), "--data", str(manifest), "--output-dir",
                     str(tmp_path / "e2"), "--limit", "1"]) == 0  # the intact data still evaluates
    capsys.readouterr()


def test_unwritable_output_is_refused_before_any_work(capsys, tiny_model_dir, manifest, tmp_path):
    blocked = tmp_path / "a_file"
    blocked.write_text("not a folder")
    for argv in (["evaluate", "--model", str(tiny_model_dir), "--data", str(manifest)],
                 ["mine", "--model", str(tiny_model_dir), "--data", str(manifest), "--output-dir", str(blocked / "x")],
                 ["build-dataset", "--manifest", str(manifest), "--output", str(blocked / "x" / "r.jsonl")],
                 ["train", "--data", str(manifest), "--model", str(tiny_model_dir), "--max-steps", "1"],
                 ["quantize", "--model", str(tiny_model_dir), "--output-dir", str(blocked / "x" / "q")]):
        if argv[0] in ("evaluate", "train"):
            argv = [*argv, "--output-dir", str(blocked / "x")]
        line = _error(capsys, argv)
        assert str(blocked) in line, (argv[0], line)


def test_debug_shows_the_traceback(tiny_model_dir, tmp_path):
    with pytest.raises(Exception, match="not found"):
        cli_main(["evaluate", "--model", str(tiny_model_dir), "--data", str(tmp_path / "none.json"), "--debug"])
