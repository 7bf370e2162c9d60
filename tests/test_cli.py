"""The `finscribe` command: every listed subcommand is real and answers --help."""

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from finscribe.cli import COMMANDS, main
from finscribe.config import arg, parse_config, save_config


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out and f"finscribe {name}" in out


def test_top_level_help_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_command_is_an_error(capsys):
    assert main(["fly"]) == 2
    assert "unknown command 'fly'" in capsys.readouterr().err


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "finscribe.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("finscribe ")


@dataclass
class ToyConfig:
    output_dir: Path = arg(Path("out"), "where to write")
    steps: int = arg(10, "how many steps")
    use_lora: bool = arg(False, "LoRA instead of full SFT")
    regions: tuple[str, ...] = arg(("totals_section",), "regions to use")


def test_config_flags_file_and_saved_copy(tmp_path, capsys):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("steps: 5\nuse_lora: true\n")
    config = parse_config(ToyConfig, ["--config", str(config_file), "--steps", "7", "--regions", "a", "b"], "t", "")
    assert config == ToyConfig(steps=7, use_lora=True, regions=("a", "b"))  # the flag beats the file
    saved = save_config(config, tmp_path / "run")
    assert '"steps": 7' in saved.read_text()
    with pytest.raises(SystemExit):
        parse_config(ToyConfig, ["--steps", "many"], "t", "")
    bad_file = tmp_path / "bad.json"
    bad_file.write_text('{"stepz": 1}')
    with pytest.raises(SystemExit):  # argparse's usage error, exit status 2
        parse_config(ToyConfig, ["--config", str(bad_file)], "t", "")
    assert "unknown option(s) ['stepz']" in capsys.readouterr().err


HELP_WITHOUT_TORCH = r"""
import contextlib, io, sys
from finscribe.cli import COMMANDS, SCRIPTS, main, run_stage
culprits = []
for name in sorted(COMMANDS):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            main([name, "--help"])
        except SystemExit:
            pass
    assert "usage:" in out.getvalue(), name
    if "torch" in sys.modules and not culprits:
        culprits.append(name)
for name, stage in sorted(SCRIPTS.items()):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            run_stage(stage, ["--help"], name)
        except SystemExit:
            pass
    if "torch" in sys.modules and not culprits:
        culprits.append(name)
print("TORCH_IMPORTED_BY", culprits, "transformers" in sys.modules)
"""


def test_help_of_every_subcommand_and_script_does_not_import_torch():
    """`finscribe train --help` took 53 s when it imported torch; help comes from the config class."""
    done = subprocess.run([sys.executable, "-c", HELP_WITHOUT_TORCH], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "TORCH_IMPORTED_BY [] False" in done.stdout, done.stdout


@pytest.mark.parametrize("name", sorted(n for n, c in COMMANDS.items() if c[3]))
def test_the_stage_parses_with_the_same_config_class_its_help_shows(name):
    """--help is built from COMMANDS' config class; the stage module must use that very class."""
    import importlib

    module_name, _, _, config_path = COMMANDS[name]
    config_module, _, class_name = config_path.partition(":")
    stage = importlib.import_module(module_name)
    assert getattr(stage, class_name) is getattr(importlib.import_module(config_module), class_name)


def test_torch_free_constants_agree_with_their_sources():
    from finscribe.model import DEFAULT_MODEL_ID
    from finscribe.training.lora import LORA_PRESETS
    from finscribe.training.train_config import DEFAULT_MODEL_ID as TRAIN_DEFAULT
    from finscribe.training.train_config import LORA_PRESET_NAMES

    assert TRAIN_DEFAULT == DEFAULT_MODEL_ID and set(LORA_PRESET_NAMES) == set(LORA_PRESETS)


def test_config_files_still_work_with_moved_configs(tmp_path):
    """`--config FILE` and a saved train_config.json load into the (moved) TrainConfig."""
    from finscribe.training.train_config import TrainConfig

    config = parse_config(TrainConfig, ["--data", "x.jsonl", "--use-lora"], "t", "")
    saved = save_config(config, tmp_path, name="train_config.json")
    import json

    values = {k: v for k, v in json.loads(saved.read_text()).items() if k != "stage"}
    (tmp_path / "again.json").write_text(json.dumps(values))
    assert parse_config(TrainConfig, ["--config", str(tmp_path / "again.json")], "t", "") == config
