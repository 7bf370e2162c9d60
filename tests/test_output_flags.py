"""One spelling of the output flag: a stage that writes a folder takes `--output-dir`, a stage that
writes one file takes `--output`. The old spellings (`--output` of a folder, mine's `--error-dir`)
still parse, hidden from --help, and a saved config that uses the old key still loads."""

import importlib
import json
import re
from pathlib import Path

import pytest

from finscribe.cli import COMMANDS, SCRIPTS
from finscribe.config import build_parser, leaf_fields, parse_config, save_config

# Every `finscribe` subcommand and seed script: its config class and what its output is.
STAGES = {
    "generate": ("finscribe.synthetic.export:GenerateConfig", "folder"),
    "contact-sheet": ("finscribe.synthetic.contact_sheet:ContactSheetConfig", "file"),
    "detect": ("finscribe.detect_config:DetectConfig", "folder"),
    "train-layout": ("finscribe.training.train_layout_config:LayoutTrainConfig", "folder"),
    "quantize": ("finscribe.deploy.quantize_config:QuantizeConfig", "folder"),
    "benchmark-quant": ("finscribe.deploy.quant_benchmark_config:QuantBenchmarkConfig", "folder"),
    "serve": ("finscribe.deploy.server_config:ServeConfig", None),  # writes nothing
    "evaluate": ("finscribe.eval.report_config:EvaluateConfig", "folder"),
    "compare": ("finscribe.eval.report_config:CompareConfig", "folder"),
    "pretrain-reader": ("finscribe.training.pretrain_reader_config:PretrainConfig", "folder"),
    "init-tiny-model": ("finscribe.training.tiny_model_config:TinyModelConfig", "folder"),
    "train": ("finscribe.training.train_config:TrainConfig", "folder"),
    "export": ("finscribe.training.export_config:ExportConfig", "folder"),
    "build-dataset": ("finscribe.data.build_dataset:BuildDatasetConfig", "file"),
    # a folder for a folder --input, a .jsonl for a .jsonl --input: it mirrors --input, so plain --output
    "normalize-annotations": ("finscribe.data.normalize:NormalizeConfig", "file"),
    "import-dataset": ("finscribe.data.import_dataset:ImportDatasetConfig", "folder"),
    "label-studio-tasks": ("finscribe.data.importers.label_studio:LabelStudioTasksConfig", "file"),
    "mine": ("finscribe.mining.mine_config:MineConfig", "folder"),
    "quickstart": ("finscribe.quickstart_config:QuickstartConfig", "folder"),
    "train_finscribe_vl.py": ("finscribe.training.train_config:TrainConfig", "folder"),
    "compare_base_vs_finetuned.py": ("finscribe.eval.document_config:DocumentCompareConfig", "file"),
    "evaluate_model.py": ("finscribe.eval.document_config:DocumentEvalConfig", "file"),
}
# Spellings an output option must not use (the ones above are the only two).
OTHER_SPELLINGS = {"out", "out_dir", "output_path", "output_file", "save_dir", "save_path", "error_dir", "dest"}


def config_class(path: str) -> type:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def test_every_stage_is_listed():
    assert set(STAGES) == set(COMMANDS) | set(SCRIPTS)
    for name, stage in {**COMMANDS, **SCRIPTS}.items():
        assert stage[3] in (None, STAGES[name][0]), name  # the class its --help shows is the one listed


@pytest.mark.parametrize("name", sorted(STAGES))
def test_the_output_option_is_spelled_by_what_the_stage_writes(name):
    path, kind = STAGES[name]
    names = {field.name for field, _ in leaf_fields(config_class(path))}
    outputs = {n for n in names if n.startswith("output") or n.endswith("_output") or n in OTHER_SPELLINGS}
    assert outputs == {"folder": {"output_dir"}, "file": {"output"}, None: set()}[kind]


@pytest.mark.parametrize("name, required, old", [
    ("quantize", ["--model", "m"], "--output"),
    ("benchmark-quant", ["--model", "m", "--data", "d"], "--output"),
    ("export", ["--model", "m"], "--output"),
    ("init-tiny-model", [], "--output"),
    ("import-dataset", ["--format", "sroie", "--input", "i"], "--output"),
    ("mine", ["--model", "m", "--data", "d"], "--error-dir"),
])
def test_the_old_flag_parses_to_the_same_config_and_is_hidden(name, required, old):
    cls = config_class(STAGES[name][0])
    new = parse_config(cls, [*required, "--output-dir", "x"], name, "")
    assert parse_config(cls, [*required, old, "x"], name, "") == new and new.output_dir == Path("x")
    usage = build_parser(cls, name, "").format_help()
    assert "--output-dir" in usage and not re.search(re.escape(old) + r"(?![\w-])", usage)


@pytest.mark.parametrize("name, required, old_key", [
    ("quantize", ["--model", "m"], "output"),
    ("mine", ["--model", "m", "--data", "d"], "error_dir"),
])
def test_a_saved_config_with_the_old_key_reloads(name, required, old_key, tmp_path):
    cls = config_class(STAGES[name][0])
    config = parse_config(cls, [*required, "--output-dir", "x"], name, "")
    saved = json.loads(save_config(config, tmp_path).read_text())
    saved[old_key] = saved.pop("output_dir")  # as the stage saved it before the rename
    (tmp_path / "old.json").write_text(json.dumps(saved))
    assert parse_config(cls, ["--config", str(tmp_path / "old.json")], name, "") == config
    again = parse_config(cls, ["--config", str(tmp_path / "old.json"), "--output-dir", "y"], name, "")
    assert again.output_dir == Path("y")  # the command line still wins over the file
