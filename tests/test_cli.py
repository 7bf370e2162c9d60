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
