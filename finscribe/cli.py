"""`finscribe <stage> ...`: one command, one subcommand per pipeline stage.

Each stage module owns its flags (derived from its config dataclass) through a
`main(argv) -> int` function; this file only routes the subcommand to it, importing the stage
lazily so that `finscribe generate` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, function, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "generate": ("finscribe.synthetic.export", "main", "generate synthetic invoices: pages, crops, labels, manifest"),
    "contact-sheet": ("finscribe.synthetic.contact_sheet", "main", "one PNG with a page of every layout"),
    "quantize": ("finscribe.deploy.quantize", "main", "INT8-quantize a model for serving (dynamic on CPU, weight-only on GPU)"),
    "benchmark-quant": ("finscribe.deploy.quant_benchmark", "main", "float vs INT8: weight bytes, memory, latency, field accuracy"),
    "serve": ("finscribe.deploy.server", "main", "HTTP extraction service + web page (FastAPI/uvicorn)"),
    "evaluate": ("finscribe.eval.report", "main", "evaluate a model on a split: predictions, metrics, report + charts"),
    "compare": ("finscribe.eval.report", "compare_main", "base vs fine-tuned on the same records, deltas with bootstrap CIs"),
    "pretrain-reader": ("finscribe.training.pretrain_reader", "main", "pretrain the tiny reader on OCR: (fresh synthetic text crops every step)"),
    "init-tiny-model": ("finscribe.training.model", "main", "write a tiny random PaddleOCR-VL (real classes) for offline tests/demos"),
    "train": ("finscribe.training.train", "main", "fine-tune PaddleOCR-VL (full SFT or LoRA) on dataset records"),
    "export": ("finscribe.training.lora", "main", "merge a LoRA adapter into its base model and save it"),
    "build-dataset": ("finscribe.data.build_dataset", "main", "training records (image, prompt, target) from crops+annotations or a manifest"),
    "normalize-annotations": ("finscribe.data.normalize", "main", "canonical annotations/targets from dates, amounts as printed, with a report"),
    "import-dataset": ("finscribe.data.import_dataset", "main", "SROIE, CORD or Label Studio export → crops + annotations (+ report)"),
    "label-studio-tasks": ("finscribe.data.importers.label_studio", "export_main", "predictions → Label Studio tasks with pre-annotations"),
    "mine": ("finscribe.mining.mine", "main", "run a model over labelled records and log its errors as hard samples"),
    "quickstart": ("finscribe.quickstart", "main", "the whole loop end to end: generate, build, (tiny) model, train, evaluate, compare"),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: finscribe <command> [options]   (finscribe <command> --help for its options)", "",
             "FinScribe: fine-tune PaddleOCR-VL into an exact invoice extractor.", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from finscribe import __version__

        print(f"finscribe {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"finscribe: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, function_name, _ = COMMANDS[name]
    stage_main = getattr(importlib.import_module(module_name), function_name)
    return int(stage_main(rest, prog=f"finscribe {name}") or 0)


if __name__ == "__main__":
    sys.exit(main())
