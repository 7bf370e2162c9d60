"""`finscribe <stage> ...`: one command, one subcommand per pipeline stage.

Each stage module owns its flags (derived from its config dataclass) through a
`main(argv) -> int` function; this file only routes the subcommand to it, importing the stage
lazily so that `finscribe generate` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable

from finscribe import __version__
from finscribe.config import build_parser
from finscribe.errors import FinScribeError

# subcommand -> (module, function, one-line help, config class of a stage whose module imports torch).
# `<command> --help` of such a stage builds its parser from the config class alone (a torch-free
# module beside the stage), so help is instant; running it imports the stage as before.
COMMANDS: dict[str, tuple[str, str, str, str | None]] = {
    "generate": ("finscribe.synthetic.export", "main", "generate synthetic invoices: pages, crops, labels, manifest", None),
    "contact-sheet": ("finscribe.synthetic.contact_sheet", "main", "one PNG with a page of every layout", None),
    "detect": ("finscribe.detect", "main", "find the five regions on pages/PDFs: crops for build-dataset, boxes.jsonl, previews",
               "finscribe.detect_config:DetectConfig"),
    "quantize": ("finscribe.deploy.quantize", "main", "INT8-quantize a model for serving (a transformers checkpoint; torchao)",
                 "finscribe.deploy.quantize_config:QuantizeConfig"),
    "benchmark-quant": ("finscribe.deploy.quant_benchmark", "main", "float vs INT8: weight bytes, memory, latency, field accuracy",
                        "finscribe.deploy.quant_benchmark_config:QuantBenchmarkConfig"),
    "serve": ("finscribe.deploy.server", "main", "HTTP extraction service + web page (FastAPI/uvicorn)",
              "finscribe.deploy.server_config:ServeConfig"),
    "evaluate": ("finscribe.eval.report", "main", "evaluate a model on a split: predictions, metrics, report + charts",
                 "finscribe.eval.report_config:EvaluateConfig"),
    "compare": ("finscribe.eval.report", "compare_main", "base vs fine-tuned on the same records, deltas with bootstrap CIs",
                "finscribe.eval.report_config:CompareConfig"),
    "pretrain-reader": ("finscribe.training.reader_recipe", "main", "pretrain the tiny reader on OCR: (fresh synthetic text crops every step)",
                        "finscribe.training.pretrain_reader_config:PretrainConfig"),
    "init-tiny-model": ("finscribe.training.model", "main", "write a tiny random PaddleOCR-VL (real classes) for offline tests/demos",
                        "finscribe.training.tiny_model_config:TinyModelConfig"),
    "train": ("finscribe.training.train", "main", "fine-tune PaddleOCR-VL (full SFT or LoRA) on dataset records",
              "finscribe.training.train_config:TrainConfig"),
    "train-layout": ("finscribe.training.train_layout", "main", "train the region detector (RT-DETR + HGNetV2) on pages with region boxes",
                     "finscribe.training.train_layout_config:LayoutTrainConfig"),
    "export": ("finscribe.training.lora", "main", "merge a LoRA adapter into its base model and save it",
               "finscribe.training.export_config:ExportConfig"),
    "build-dataset": ("finscribe.data.build_dataset", "main", "training records (image, prompt, target) from crops+annotations or a manifest", None),
    "normalize-annotations": ("finscribe.data.normalize", "main", "canonical annotations/targets from dates, amounts as printed, with a report",
                              None),
    "import-dataset": ("finscribe.data.import_dataset", "main", "SROIE, CORD or Label Studio export → crops + annotations (+ report)", None),
    "label-studio-tasks": ("finscribe.data.importers.label_studio", "export_main", "predictions → Label Studio tasks with pre-annotations", None),
    "mine": ("finscribe.mining.mine", "main", "run a model over labelled records and log its errors as hard samples",
             "finscribe.mining.mine_config:MineConfig"),
    "quickstart": ("finscribe.quickstart", "main", "the whole loop end to end: generate, build, (tiny) model, train, evaluate, compare",
                   "finscribe.quickstart_config:QuickstartConfig"),
}
# Top-level modules of the optional extras (pyproject.toml): a stage whose import misses one fails
# in one line giving the install command.
OPTIONAL_EXTRAS = {"uvicorn": "serve", "fastapi": "serve", "starlette": "serve", "multipart": "serve",
                   "python_multipart": "serve", "torchao": "quant"}
# The seed's scripts: same routing, not `finscribe` subcommands.
SCRIPTS: dict[str, tuple[str, str, str, str | None]] = {
    "train_finscribe_vl.py": COMMANDS["train"],
    "compare_base_vs_finetuned.py": ("finscribe.eval.document", "compare_main", "compare the base and the fine-tuned model on "
                                     "one document image", "finscribe.eval.document_config:DocumentCompareConfig"),
    "evaluate_model.py": ("finscribe.eval.document", "evaluate_main", "evaluate a model on one document image",
                          "finscribe.eval.document_config:DocumentEvalConfig"),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: finscribe <command> [options]   (finscribe <command> --help for its options)", "",
             "FinScribe: fine-tune PaddleOCR-VL into an exact invoice extractor.",
             "Add --debug to any command to see the traceback of an error.", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, _, help_, _) in COMMANDS.items()]
    return "\n".join(lines)


def run(stage: Callable[..., int | None], argv: list[str] | None = None, prog: str = "finscribe") -> int:
    """Call a stage's `main(argv, prog=...)`; every user error (FinScribeError) ends here as one line
    on stderr and exit status 2. `--debug` anywhere on the line shows the traceback instead.
    The scripts (train_finscribe_vl.py, compare_base_vs_finetuned.py, examples/) go through here too."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # transformers imports torchao when installed; on a CPU build torchao logs a warning per CUDA
    # kernel library it cannot load, and torch a deprecation notice for two torchao enums. Neither
    # matters to FinScribe; the command line (not the library) keeps them from burying the output.
    logging.getLogger("torchao").setLevel(logging.ERROR)
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        return int(stage(argv, prog=prog) or 0)
    except FinScribeError as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None, prog: str = "finscribe") -> int:
    """`finscribe <command> [options]`: route the subcommand to its stage (see `run`)."""
    return run(_dispatch, argv, prog)


def _dispatch(argv: list[str], prog: str = "finscribe") -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        print(f"finscribe {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"finscribe: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    return run_stage(COMMANDS[name], rest, prog=f"{prog} {name}")


def run_stage(stage: tuple[str, str, str, str | None], argv: list[str], prog: str) -> int:
    """Call `stage` = (module, function, help, config) with `argv`; `--help` of a stage with a config
    class is answered from that class alone, without importing the stage (and torch)."""
    module_name, function_name, help_, config_path = stage
    if config_path is not None and any(a in ("-h", "--help") for a in argv):
        config_module, _, class_name = config_path.partition(":")
        config_cls = getattr(importlib.import_module(config_module), class_name)
        # the stage's own parser (same class, same flags): argparse prints the help and exits 0
        build_parser(config_cls, prog, help_[0].upper() + help_[1:] + ".").parse_args(argv)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:  # an optional extra not installed: say which, not a traceback
        extra = OPTIONAL_EXTRAS.get((err.name or "").partition(".")[0])
        if extra is None:
            raise
        raise FinScribeError(f"{prog} needs the '{extra}' extra ({err.name} is not installed): "
                             f"pip install 'finscribe[{extra}]'  (or pip install -e '.[{extra}]' in a checkout)") from None
    stage_main = getattr(module, function_name)
    return int(stage_main(argv, prog=prog) or 0)


def script(name: str) -> int:
    """Entry of the seed's scripts (train_finscribe_vl.py, compare_base_vs_finetuned.py,
    examples/evaluate_model.py): `raise SystemExit(script("train_finscribe_vl.py"))`."""
    return run(lambda argv, prog: run_stage(SCRIPTS[name], argv, prog), prog=name)


if __name__ == "__main__":
    sys.exit(main())
