"""Stage configs are dataclasses; their CLI flags and their saved copy are derived from them.

Each stage declares one `@dataclass` whose fields carry `help` metadata. `build_parser` turns it
into argparse flags (`num_samples` → `--num-samples`), `parse_config` reads the command line (and
an optional `--config file.json|yaml` whose values the flags override), and `save_config` writes
the config next to the stage's outputs so every output folder says what produced it.

Path options are checked here, once for every stage: each has a kind (`path_kind`: "file", "dir"
or "any"; declared with `arg(path=...)`, else read from the field), and `config_from_dict`
refuses, in one line naming the option, an empty path, an existing folder given for a file and an
existing file given for a folder. (Whether a path exists is left to the stage: outputs do not yet.)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from finscribe.errors import ConfigError
from finscribe.fileio import write_json_atomic

T = TypeVar("T")


def arg(default: Any = dataclasses.MISSING, help: str = "", *, trainer: str | tuple[str, ...] | None = None,
        aliases: tuple[str, ...] = (), path: str | None = None, **kwargs: Any) -> Any:
    """A dataclass field with CLI help text: `num_samples: int = arg(100, "how many invoices")`.

    `trainer` names the `transformers.TrainingArguments` field(s) the option sets (`epochs` →
    "num_train_epochs"): TrainingArguments is then built from the config, not copied field by field.
    `aliases` are old spellings of the flag (`("--output",)` for `output_dir`) that still parse, and
    whose key name (`output`) a saved config may still use; `--help` shows only the current flag.
    `path` declares what a path option names ("file", "dir" or "any") where `path_kind` would guess
    wrong (a folder-or-file input, say)."""
    metadata: dict[str, Any] = {"help": help}
    if path is not None:
        if path not in PATH_KINDS:
            raise TypeError(f"path={path!r}: expected one of {PATH_KINDS}")
        metadata["path"] = path
    if trainer is not None:
        metadata["trainer"] = (trainer,) if isinstance(trainer, str) else tuple(trainer)
    if aliases:
        metadata["aliases"] = tuple(aliases)
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata, **kwargs)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


PATH_KINDS = ("file", "dir", "any")
# Path options without a declared kind: a name ending in _dir, or one of these, names a folder; any
# other Path option names a file (the project's flag rule: --output-dir writes a folder, --output a file).
FOLDER_OPTIONS = frozenset({"hard_samples", "init_from", "document_root", "layout_model"})
# str options that name a local folder whenever they name a local path at all (a hub id, 'latest' or
# 'none' are other values of theirs and are not checked).
STR_FOLDER_OPTIONS = frozenset({"model", "base", "resume_from_checkpoint", "quantized_path", "layout_model"})


class PathOptionError(ConfigError):
    """A path option that cannot be what it names (empty, a folder for a file, a file for a folder)."""


def path_kind(field: dataclasses.Field, hint: Any) -> str | None:
    """"file", "dir" or "any" for a path option (Path, tuple of Paths, or a str folder option of
    STR_FOLDER_OPTIONS), None for any other option."""
    if "path" in field.metadata:
        return field.metadata["path"]
    tp, _ = _unwrap_optional(hint)
    if tp is Path or (typing.get_origin(tp) is tuple and typing.get_args(tp)[:1] == (Path,)):
        return "dir" if field.name.endswith("_dir") or field.name in FOLDER_OPTIONS else "file"
    if tp is str and field.name in STR_FOLDER_OPTIONS:
        return "dir"
    return None


def check_path(option: str, kind: str, value: Any) -> None:
    """Raise ConfigError (one line naming `option`) for an empty path, a folder where a file is
    expected (kind "file") or a file where a folder is (kind "dir")."""
    for item in value if isinstance(value, (list, tuple)) else [value]:
        if item is None:
            continue
        if not str(item).strip():
            expected = {"file": "a file", "dir": "a folder"}.get(kind, "a file or folder")
            raise PathOptionError(f"{option}: the path is empty; give {expected}")
        path = Path(item)
        if kind == "file" and path.is_dir():
            raise PathOptionError(f"{option} {item}: is a folder; this option takes a file")
        if kind == "dir" and path.exists() and not path.is_dir():
            raise PathOptionError(f"{option} {item}: is a file; this option takes a folder")


def group(help: str = "") -> Any:
    """A config field holding a shared group of options (a dataclass such as `GenerationArgs`): its
    fields become flags of the stage as if declared there (`--batch-size`, not `--generation.batch-size`),
    and the saved config.json nests them under the group's name. Required: groups come first."""
    return dataclasses.field(metadata={"help": help, "group": True})


def _is_group(field: dataclasses.Field, hint: Any) -> bool:
    return dataclasses.is_dataclass(hint) and isinstance(hint, type)


def leaf_fields(config_cls: type) -> list[tuple[dataclasses.Field, Any]]:
    """(field, type hint) of every option of `config_cls`, the fields of its groups flattened in."""
    hints = typing.get_type_hints(config_cls)
    leaves: list[tuple[dataclasses.Field, Any]] = []
    for field in dataclasses.fields(config_cls):
        if _is_group(field, hints[field.name]):
            leaves += leaf_fields(hints[field.name])
        else:
            leaves.append((field, hints[field.name]))
    names = [f.name for f, _ in leaves]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise TypeError(f"{config_cls.__name__}: options {clashes} are declared twice (in the stage and a group)")
    return leaves


def trainer_arguments(config: Any) -> dict[str, Any]:
    """`{TrainingArguments field: value}` for every option of `config` declared with `arg(trainer=...)`."""
    return {name: getattr(config, field.name) for field in dataclasses.fields(config)
            for name in field.metadata.get("trainer", ())}


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def build_parser(config_cls: type, prog: str, description: str) -> argparse.ArgumentParser:
    """An argparse parser with one flag per config field, plus `--config FILE`."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    for field, hint in leaf_fields(config_cls):
        flag = "--" + field.name.replace("_", "-")
        tp, optional = _unwrap_optional(hint)
        default = (
            field.default if field.default is not dataclasses.MISSING
            else field.default_factory() if field.default_factory is not dataclasses.MISSING  # type: ignore[misc]
            else None
        )
        kwargs: dict[str, Any] = {"dest": field.name, "help": field.metadata.get("help", "") or " ",
                                  "default": argparse.SUPPRESS}
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            kwargs["help"] += " (required)"
        else:
            kwargs["help"] += f" (default: {default})"
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) in (list, tuple):
            inner = typing.get_args(tp)[0]
            # Paths stay strings until config_from_dict: Path("") is Path("."), an empty path unseen.
            kwargs.update(nargs="*", type=str if inner is Path else inner)
        elif tp is Path:
            kwargs["type"] = str
        elif typing.get_origin(tp) is typing.Literal:
            choices = typing.get_args(tp)
            kwargs.update(choices=choices, type=type(choices[0]))
        else:
            kwargs["type"] = tp
        kwargs["help"] = kwargs["help"].replace("%", "%%")  # argparse formats help with %
        action = parser.add_argument(flag, *field.metadata.get("aliases", ()), **kwargs)
        # The aliases stay registered with the parser (they parse); help and error messages name
        # the option by `option_strings`, so keeping only the current flag there hides the old ones.
        action.option_strings = [s for s in action.option_strings if s not in field.metadata.get("aliases", ())]
    parser.add_argument("--config", dest="_config_file", metavar="FILE", type=Path, default=None,
                        help="JSON or YAML file with config values; flags given on the command line win")
    # ArgumentDefaultsHelpFormatter would print SUPPRESS; the help strings already carry defaults.
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a JSON or YAML config file into a dict; errors name the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError(f"config file {path} not found (or not a file)") from None
    try:
        data = yaml.safe_load(text) if Path(path).suffix in (".yaml", ".yml") else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        raise ConfigError(f"config file {path} could not be parsed: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of field names to values")
    return data


def config_from_dict(config_cls: type[T], values: dict[str, Any], source: str = "config") -> T:
    """Build a config dataclass, converting JSON values (str → Path, list → tuple) per field type.

    Options of a group may be given flat (as on the command line) or nested under the group's name
    (as config.json saves them)."""
    hints = typing.get_type_hints(config_cls)
    values = dict(values)
    for field, _ in leaf_fields(config_cls):  # an old key ("output" for output_dir); the current one wins
        for alias in field.metadata.get("aliases", ()):
            key = alias.lstrip("-").replace("-", "_")
            if key in values:
                values.setdefault(field.name, values.pop(key))
    if values.get("stage") == config_cls.__name__:  # a config.json saved by save_config: reusable as --config
        del values["stage"]
    groups = {f.name: hints[f.name] for f in dataclasses.fields(config_cls) if _is_group(f, hints[f.name])}
    names = {f.name for f, _ in leaf_fields(config_cls)} | set(groups)
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{source}: unknown option(s) {unknown}; known: {sorted(names - set(groups))}")
    converted = {}
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    for name, group_cls in groups.items():
        nested = values.pop(name, None) or {}
        if not isinstance(nested, dict):
            raise ConfigError(f"{source}: {name!r} must be a mapping of its options")
        own = {f.name for f, _ in leaf_fields(group_cls)}
        nested.update({k: values.pop(k) for k in list(values) if k in own})
        converted[name] = config_from_dict(group_cls, nested, source)
    for name, value in values.items():
        kind = path_kind(fields[name], hints[name])
        if kind is not None:
            check_path("--" + name.replace("_", "-"), kind, value)
        tp, _ = _unwrap_optional(hints[name])
        if value is not None and tp is Path:
            value = Path(value)
        elif value is not None and typing.get_origin(tp) is tuple:
            inner = typing.get_args(tp)[0]
            value = tuple(Path(v) if inner is Path else v for v in value)
        converted[name] = value
    try:
        return config_cls(**converted)
    except TypeError as err:
        raise ConfigError(f"{source}: {err}") from None


def parse_config(config_cls: type[T], argv: list[str] | None, prog: str, description: str) -> T:
    """Parse the command line (and `--config FILE`) into a config dataclass instance."""
    parser = build_parser(config_cls, prog, description)
    namespace = vars(parser.parse_args(argv))
    config_file = namespace.pop("_config_file")
    values = load_config_file(config_file) if config_file else {}
    values.update(namespace)
    try:
        return config_from_dict(config_cls, values, source=str(config_file or "command line"))
    except PathOptionError:  # already one line naming the option: the CLI prints it as it is
        raise
    except ValueError as err:  # __post_init__ validation
        parser.error(str(err))
        raise  # unreachable: parser.error exits


def config_to_dict(config: Any) -> dict[str, Any]:
    """JSON-ready dict of a config dataclass (Paths as strings, groups as nested dicts)."""
    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return config_to_dict(value)
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value

    return {f.name: convert(getattr(config, f.name)) for f in dataclasses.fields(config)}


def save_config(config: Any, output_dir: Path, name: str = "config.json") -> Path:
    """Write the config into `output_dir/name` atomically and return the path."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / name
    write_json_atomic(path, {"stage": type(config).__name__, **config_to_dict(config)})
    return path
