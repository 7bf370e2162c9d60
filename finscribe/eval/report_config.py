"""`finscribe evaluate` / `finscribe compare` options (torch-free: `--help` builds their parsers from here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from finscribe.config import arg, group
from finscribe.data.selection import RecordSelection
from finscribe.eval.pages_config import DetectorArgs
from finscribe.generation_args import GenerationArgs


@dataclass
class EvaluateConfig:
    generation: GenerationArgs = group("the model and how it generates")
    records: RecordSelection = group("the records to evaluate")
    output_dir: Path = arg(Path("runs/eval"), "folder for predictions.jsonl, report.json/.md and the charts")
    held_out_layouts: tuple[str, ...] = arg((), "layouts held out of training (default: read from the manifest's config)")
    resamples: int = arg(1000, "bootstrap resamples for the confidence intervals")
    seed: int = arg(0, "bootstrap seed")
    blank_images: bool = arg(False, "control run: every image replaced by a white one of the same size, so the "
                                    "scores show what the model answers without seeing the document")
    pages: bool = arg(False, "evaluate whole pages of the manifest: detect the regions (--layout-model), read each, "
                             "merge, score the document against the page's label (finscribe.eval.pages)")
    oracle: bool = arg(True, "with --pages, also read every page at its true boxes, so that the cost of detection "
                             "is one number (detected minus oracle)")
    reads_from: Path | None = arg(None, "with --pages: output folder of a `finscribe evaluate` on crops with the "
                                        "same --model and generation options; a region whose crop has exactly the "
                                        "pixels of one of its crops takes that answer instead of being read again")
    detector: DetectorArgs = field(default_factory=DetectorArgs, metadata={"help": "the page path", "group": True})

    def __post_init__(self) -> None:
        if self.resamples < 1:
            raise ValueError("--resamples must be >= 1")
        if self.reads_from is not None and not self.pages:
            raise ValueError("--reads-from reuses crop answers for whole pages; it needs --pages")


@dataclass
class CompareConfig:
    generation: GenerationArgs = group("the fine-tuned model (--model) and how both models generate")
    records: RecordSelection = group("the records to compare on")
    base: str = arg(help="base model folder or hub id (PaddlePaddle/PaddleOCR-VL needs a local download here)")
    output_dir: Path = arg(Path("runs/compare"), "folder for comparison.json/.md/.png and both predictions files")
    held_out_layouts: tuple[str, ...] = arg((), "layouts held out of training (default: from the manifest's config)")
    resamples: int = arg(1000, "paired bootstrap resamples")
    seed: int = arg(0, "bootstrap seed")
    blank_images: bool = arg(True, "also run the fine-tuned model on white images of the same sizes (the prior-only "
                                   "control), so that a gain that needs no document is not read as learning")
    pages: bool = arg(False, "compare on whole pages of the manifest: regions detected once (--layout-model), read by "
                             "both models, merged and scored per document (finscribe.eval.pages; no blank-image control)")
    oracle: bool = arg(True, "with --pages, also compare at the true boxes")
    model_predictions: Path | None = arg(None, "output folder of a `finscribe evaluate` of the same --model on the same "
                                               "records with the same generation options: its predictions are reused "
                                               "instead of generated again (checked; not with --pages)")
    detector: DetectorArgs = field(default_factory=DetectorArgs, metadata={"help": "the page path", "group": True})

    def __post_init__(self) -> None:
        if self.resamples < 1:
            raise ValueError("--resamples must be >= 1")
        if self.pages and self.model_predictions is not None:
            raise ValueError("--model-predictions reuses crop predictions; with --pages leave it out")
