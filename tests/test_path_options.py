"""Issue 27: every path option of every stage refuses an empty path, a folder where a file is
expected and a file where a folder is expected, in one line naming the option.

The stages are discovered from the CLI's COMMANDS (and the seed's SCRIPTS) table and each stage's
config class, so a stage added later is covered without touching this file. The check itself
lives in `finscribe.config` (`path_kind`, `check_path`), where every stage's options are parsed."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import subprocess
import sys
import typing

import pytest

from finscribe.cli import COMMANDS, SCRIPTS, main
from finscribe.config import PathOptionError, leaf_fields, parse_config, path_kind


def _config_class(entry):
    module_name, function_name, _, config_path = entry
    if config_path is not None:  # a torch-importing stage names its torch-free config module
        module, _, name = config_path.partition(":")
        return getattr(importlib.import_module(module), name)
    module = importlib.import_module(module_name)  # torch-free stages: the class their main parses
    match = re.search(r"parse_config\((\w+)", inspect.getsource(getattr(module, function_name)))
    assert match, f"{module_name}.{function_name} does not parse its options with parse_config"
    return getattr(module, match.group(1))


STAGES = {name: _config_class(entry) for name, entry in {**COMMANDS, **SCRIPTS}.items()}


def _flag(field):
    return "--" + field.name.replace("_", "-")


def _valid(field, hint, kind, tmp_path):
    """argv giving a required option a value that passes (so that only the option under test fails)."""
    tp = typing.get_args(hint)[0] if typing.get_origin(hint) in (typing.Union,) else hint
    if kind == "dir":
        return [_flag(field), str(tmp_path / "a_folder")]
    if kind in ("file", "any"):
        return [_flag(field), str(tmp_path / "a_file.json")]
    if typing.get_origin(tp) is typing.Literal:
        return [_flag(field), str(typing.get_args(tp)[0])]
    if tp in (int, float):
        return [_flag(field), "1"]
    return [_flag(field), "x"]


def _cases():
    for stage, config_cls in STAGES.items():
        for field, hint in leaf_fields(config_cls):
            kind = path_kind(field, hint)
            if kind is None:
                continue
            yield pytest.param(stage, field.name, "empty", id=f"{stage}-{field.name}-empty")
            if kind == "file":
                yield pytest.param(stage, field.name, "folder", id=f"{stage}-{field.name}-folder-for-file")
            if kind == "dir":
                yield pytest.param(stage, field.name, "file", id=f"{stage}-{field.name}-file-for-folder")


CASES = list(_cases())


def test_the_table_covers_the_stages_and_their_path_kinds():
    stages = {case.values[0] for case in CASES}
    assert {"build-dataset", "train", "evaluate", "serve", "import-dataset", "quantize", "export"} <= stages
    kinds = {case.values[2] for case in CASES}
    assert kinds == {"empty", "folder", "file"}
    assert len(CASES) >= 60


@pytest.mark.parametrize(("stage", "option", "case"), CASES)
def test_every_path_option_refuses_what_it_cannot_be(stage, option, case, tmp_path):
    config_cls = STAGES[stage]
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "a_file.json").write_text("{}")
    argv = []
    for field, hint in leaf_fields(config_cls):
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        if required and field.name != option:
            argv += _valid(field, hint, path_kind(field, hint), tmp_path)
    [(field, hint)] = [(f, h) for f, h in leaf_fields(config_cls) if f.name == option]
    bad = {"empty": "", "folder": str(tmp_path / "a_folder"), "file": str(tmp_path / "a_file.json")}[case]
    with pytest.raises(PathOptionError) as caught:
        parse_config(config_cls, argv + [_flag(field), bad], f"finscribe {stage}", "")
    message = str(caught.value)
    assert message.startswith(_flag(field)) and "\n" not in message
    assert {"empty": "the path is empty", "folder": "is a folder; this option takes a file",
            "file": "is a file; this option takes a folder"}[case] in message


def test_the_issues_command_fails_in_one_line(tmp_path, capsys):
    """`finscribe build-dataset --manifest "" --output x.jsonl` (issue 27) and its kin, end to end."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.jsonl").write_text("")
    for argv, expected in [
        (["build-dataset", "--manifest", "", "--output", str(tmp_path / "x.jsonl")], "error: --manifest: the path is empty"),
        (["build-dataset", "--manifest", str(tmp_path / "folder"), "--output", str(tmp_path / "x.jsonl")],
         "is a folder; this option takes a file"),
        (["import-dataset", "--format", "sroie", "--input", str(tmp_path / "folder"), "--output-dir",
          str(tmp_path / "file.jsonl")], "error: --output-dir"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --") and expected in err and err.count("\n") == 1, err


def test_a_config_file_is_checked_too(tmp_path):
    from finscribe.data.build_dataset import BuildDatasetConfig

    (tmp_path / "c.yaml").write_text(f"manifest: ''\noutput: {tmp_path / 'x.jsonl'}\n")
    with pytest.raises(PathOptionError, match="^--manifest: the path is empty"):
        parse_config(BuildDatasetConfig, ["--config", str(tmp_path / "c.yaml")], "finscribe build-dataset", "")


def test_serve_without_the_serve_extra_says_how_to_install_it(tmp_path):
    """An environment without uvicorn (blocked in a child interpreter): one line with the command."""
    code = ("import sys; sys.modules['uvicorn'] = None\n"
            "from finscribe.cli import main\n"
            "raise SystemExit(main(['serve', '--model', 'x']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert lines == ["error: finscribe serve needs the 'serve' extra (uvicorn is not installed): "
                     "pip install 'finscribe[serve]'  (or pip install -e '.[serve]' in a checkout)"], done.stderr
    assert "Traceback" not in done.stderr
