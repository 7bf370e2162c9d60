"""The tiny reader's whole pretraining as one curriculum file, run by one resumable command:

    finscribe pretrain-reader --recipe configs/reader.yaml --output-dir pretrain/reader
    finscribe pretrain-reader --recipe configs/reader.yaml --output-dir pretrain/reader --export-dir finscribe/assets/tiny_reader

A recipe is YAML: `defaults` (options every phase shares) and `phases` (a list, each a `name` and
the options that phase changes). Every key is a `finscribe pretrain-reader` option (the
PretrainConfig field name). Phase k runs in `<output-dir>/<k>_<name>` as an ordinary
pretrain-reader run: the first from random weights, every later one from the previous phase's
reader (weights and tokenizer, with its own `rope_theta` and `max_pixels`). Running the command
again resumes in the phase and at the step where it stopped; finished phases are skipped.

The run folder stays small enough to keep in git while it runs: a finished phase keeps its
config, metrics, eval and curve and drops its checkpoint and start weights; the previous phase's
reader goes once the next phase has copied it. So at any time the one checkpoint of the running
phase is the only weight file that matters.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import yaml

from finscribe.config import parse_config
from finscribe.fileio import atomic_directory, ensure_output_dir, write_json_atomic, write_text_atomic
from finscribe.training.pretrain_reader import PretrainError, pretrain, run_single
from finscribe.training.pretrain_reader_config import PretrainConfig

# Options that say where a run lives or how it is driven, never what it learns: a recipe may not set them.
NOT_IN_RECIPE = frozenset({"output_dir", "export_dir", "export_only", "init_from", "recipe", "stop_at_step"})


@dataclasses.dataclass(frozen=True)
class Phase:
    name: str
    config: PretrainConfig


def _options(source: Path, where: str, options: Any) -> dict[str, Any]:
    """A recipe's options as PretrainConfig values; one line naming the file and key for anything else."""
    if not isinstance(options, dict):
        raise PretrainError(f"{source}: {where} must be a mapping of pretrain-reader options")
    fields = {f.name: f for f in dataclasses.fields(PretrainConfig)}
    values = {}
    for key, value in options.items():
        if key not in fields or key in NOT_IN_RECIPE:
            allowed = ", ".join(sorted(set(fields) - NOT_IN_RECIPE))
            raise PretrainError(f"{source}: {where} sets {key!r}, which is not a recipe option (options: {allowed})")
        default = fields[key].default
        if isinstance(default, tuple):
            if not isinstance(value, list):
                raise PretrainError(f"{source}: {where}.{key} must be a list")
            value = tuple(value)
        elif isinstance(default, bool) or isinstance(value, bool):
            if not isinstance(value, bool) or not isinstance(default, bool):
                raise PretrainError(f"{source}: {where}.{key} must be {type(default).__name__}, not {value!r}")
        elif isinstance(default, (int, float)) and not isinstance(value, (int, float)):
            raise PretrainError(f"{source}: {where}.{key} must be a number, not {value!r}")
        elif isinstance(default, int) and not isinstance(value, int):
            raise PretrainError(f"{source}: {where}.{key} must be a whole number, not {value!r}")
        values[key] = value
    return values


def load_recipe(config: PretrainConfig) -> list[Phase]:
    """The phases of `config.recipe`, each a complete PretrainConfig in its own folder under --output-dir."""
    source = Path(config.recipe)
    if not source.is_file():
        raise PretrainError(f"--recipe {source} is not a file; pass a curriculum such as configs/reader.yaml")
    try:
        recipe = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise PretrainError(f"{source} is not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(recipe, dict) or not isinstance(recipe.get("phases"), list) or not recipe["phases"]:
        raise PretrainError(f"{source} must hold `phases:`, a non-empty list (and optionally `defaults:`)")
    unknown = set(recipe) - {"defaults", "phases"}
    if unknown:
        raise PretrainError(f"{source}: unknown top-level key(s) {sorted(unknown)}; a recipe holds `defaults` and `phases`")
    defaults = _options(source, "defaults", recipe.get("defaults") or {})
    out = Path(config.output_dir)
    phases: list[Phase] = []
    for k, raw in enumerate(recipe["phases"], start=1):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"].isidentifier():
            raise PretrainError(f"{source}: phase {k} needs a `name` (letters, digits, _)")
        options = _options(source, f"phase {raw['name']}", {key: v for key, v in raw.items() if key != "name"})
        folder = out / f"{k}_{raw['name']}"
        start = phases[-1].config.output_dir / "export" if phases else None
        phase = dataclasses.replace(config, **{**defaults, **options}, output_dir=folder, init_from=start,
                                    export_dir=folder / "export", export_only=False, recipe=None)
        phases.append(Phase(raw["name"], phase))
    return phases


def _remove(folder: Path) -> None:
    if folder.is_dir():
        shutil.rmtree(folder)


def run_recipe(config: PretrainConfig) -> Path | None:
    """Run (or resume) every phase of the recipe; returns the final reader's folder, or None when
    --stop-at-step stopped a phase first."""
    out = Path(config.output_dir)
    phases = load_recipe(config)
    text = Path(config.recipe).read_text(encoding="utf-8")
    saved = out / "recipe.yaml"
    if saved.is_file() and saved.read_text(encoding="utf-8") != text:
        raise PretrainError(f"{out} was started with another recipe ({saved} differs from {config.recipe}); "
                            f"use a new --output-dir, or the recipe it was started with")
    ensure_output_dir(out)
    write_text_atomic(saved, text)
    for index, phase in enumerate(phases):
        folder = phase.config.output_dir
        if (folder / "done.json").is_file():
            continue
        print(f"== phase {index + 1}/{len(phases)}: {phase.name} ({folder})", flush=True)
        pretrain(phase.config)
        if not (folder / "export" / "config.json").is_file():
            return None  # stopped by --stop-at-step; the same command goes on from here
        write_json_atomic(folder / "done.json", {"phase": phase.name, "steps": phase.config.max_steps})
        _remove(folder / "checkpoint")
        _remove(folder / "init")
        if index > 0:
            _remove(phases[index - 1].config.output_dir / "export")
    final = phases[-1].config.output_dir / "export"
    if config.export_dir is not None and final.is_dir():
        with atomic_directory(Path(config.export_dir)) as tmp:
            shutil.copytree(final, tmp, dirs_exist_ok=True)
        _remove(final)
        final = Path(config.export_dir)
    print(f"the recipe's reader: {final}", flush=True)
    return final


def main(argv: list[str] | None = None, prog: str = "finscribe pretrain-reader") -> int:
    """`finscribe pretrain-reader`: the recipe (`--recipe FILE`) or one run."""
    config = parse_config(PretrainConfig, argv, prog, "Pretrain the tiny reader: a tiny PaddleOCR-VL taught the real "
                                                      "model's base task, `OCR:` -> text (one run, or a --recipe of runs).")
    if config.recipe is None:
        run_single(config)
        return 0
    if config.export_only:
        raise PretrainError("--export-only exports a single run's checkpoint; a --recipe run exports its last "
                            "phase itself (rerun the recipe command with --export-dir)")
    run_recipe(config)
    return 0
