"""`finscribe quickstart` options (torch-free: `--help` builds its parser from here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from finscribe.config import arg
from finscribe.data.schema import REGIONS
from finscribe.errors import ConfigError
from finscribe.eval.pages_config import TINY_LAYOUT

TINY = "tiny"
TINY_READER = Path(__file__).resolve().parent / "assets" / "tiny_reader"
# 1,280 image tokens of 28x28 pixels: the largest line-items table of 150-dpi A4 pages (905,000 px,
# 21 rows) fits, and no crop of the other regions comes near it. Since the recipe's phase 4 it is also
# the tiny reader's own cap; the quickstart still passes it, so training records it explicitly.
TINY_TABLE_PIXELS = 1280 * 28 * 28


@dataclass
class QuickstartConfig:
    output_dir: Path = arg(Path("runs/quickstart"), "folder for every step's outputs")
    model: str = arg(TINY, "'tiny' (the pretrained tiny reader shipped with FinScribe, CPU) or a hub id / local "
                           "path of the real model, e.g. PaddlePaddle/PaddleOCR-VL (GPU)")
    num_samples: int = arg(4000, "invoices to generate (train/val/test split by the generator); the tiny reader "
                                 "overfits 600 invoices' ~460 training crops within 150 steps (benchmarks/RESULTS.md)")
    seed: int = arg(0, "dataset and training seed")
    workers: int | None = arg(None, "generator worker processes (default: all CPU cores)")
    dpi: int = arg(150, "page resolution in dots per inch (the tiny reader was pretrained at 150)")
    degrade: float = arg(0.0, "share of pages with scan/photo degradation")
    locales: tuple[str, ...] = arg(("en_US",), "locales to draw invoices from")
    held_out_layouts: tuple[str, ...] = arg(("minimal",), "layouts kept out of training (test only)")
    regions: tuple[str, ...] = arg(REGIONS, "regions to train one model on and evaluate (default: all five; "
                                            "--regions totals_section is the old one-region run, 10-16 minutes)")
    # training
    max_steps: int = arg(1000, "optimizer steps (1000 x 16 crops = ~1.1 epochs of the default data's 14,970 "
                                "training crops of five regions; ~5.3 epochs with --regions totals_section)")
    batch_size: int = arg(16, "crops per optimizer step")
    micro_batches: int = arg(4, "micro-batches per optimizer step (gradient accumulation): --batch-size crops are "
                                "cut into this many, by length with --sampling batch_rebalance")
    sampling: Literal["random", "group_by_length", "batch_rebalance"] = arg(
        "batch_rebalance", "how crops are batched (as `finscribe train --sampling`). batch_rebalance: each step is "
        "a random mix of --batch-size crops, cut into --micro-batches by length so a table's crop (~5x a small "
        "one's tokens) pads only other tables; same update as one batch, 1.9x faster than random batches of 16. "
        "group_by_length: whole steps of one length, faster still, but the tables learnt less (benchmarks/RESULTS.md)")
    learning_rate: float | None = arg(None, "peak learning rate (default: 1e-3 tiny reader, 2e-4 LoRA, 2e-5 full SFT)")
    warmup_ratio: float = arg(0.05, "share of steps with linear warm-up (then cosine decay)")
    use_lora: bool | None = arg(None, "LoRA adapters instead of full fine-tuning (default: on for a real model)")
    freeze_vision: bool = arg(False, "keep the vision encoder as pretrained and fine-tune only the projector and "
                                     "decoder (as `finscribe train --freeze-vision`): 1.6x less training time, but "
                                     "the encoder never adapts to tables larger than its pretraining crops (every "
                                     "field 51.1 % frozen against 62.0 % trained; benchmarks/RESULTS.md)")
    vision_lr: float | None = arg(3e-4, "peak learning rate of the vision encoder when it is trained (as `finscribe "
                                        "train --vision-lr`; the rest uses --learning-rate)")
    max_pixels: int | None = arg(None, "crops above this area (pixels) are downscaled, in training and after (as "
                                       "`finscribe train --max-pixels`). Default: 1,003,520 on the tiny reader, so "
                                       "every 150-dpi line-items table keeps its printed size (the reader's cap before its "
                                       "recipe's phase 4, 313,600, shrank 31 of 50 test tables to unreadable digits; "
                                       "phase 4 reads at 1,003,520 too); the model's own otherwise")
    # evaluation
    max_new_tokens: int = arg(1536, "generation cap per crop (a totals JSON is ~70 of the tiny reader's tokens, a "
                                    "line-items table's 740 at the median and 1,312 at most over 20 test tables); "
                                    "the summary counts the answers that used all of it")
    eval_limit: int | None = arg(250, "evaluate only the first N test crops (the crops come invoice by invoice, so 250 "
                                      "is 50 of each of the five regions); 0 = all")
    eval_batch_size: int = arg(16, "crops per generation batch")
    page_eval_limit: int = arg(10, "held-out test pages read whole at the end, through the detector and at their true "
                                   "boxes (eval_pages/: the cost of detection); 0 = skip that step")
    layout_model: Path = arg(TINY_LAYOUT, "region detector of the page-level evaluation (default: the committed tiny one)")
    validated_beams: int = arg(4, "beam candidates of the extra evaluation with validated beams (the answer is the most "
                                  "likely candidate that passes the invoice arithmetic); 0 or 1 = skip that step")

    def __post_init__(self) -> None:
        if self.num_samples < 20:
            raise ValueError(f"--num-samples must be >= 20 to leave train and test crops, got {self.num_samples}")
        if self.max_steps < 1 or self.batch_size < 1:
            raise ValueError("--max-steps and --batch-size must be >= 1")
        if self.micro_batches < 1 or self.batch_size % self.micro_batches:
            raise ValueError(f"--batch-size {self.batch_size} must be a multiple of --micro-batches {self.micro_batches}")
        if self.sampling == "batch_rebalance" and self.micro_batches < 2:
            raise ValueError("--sampling batch_rebalance cuts each step into --micro-batches: pass --micro-batches 2 or more")
        if self.validated_beams < 0:
            raise ValueError("--validated-beams must be >= 0")
        if self.eval_limit is not None and self.eval_limit < 0:
            raise ValueError("--eval-limit must be >= 0 (0 = every test crop)")
        if self.max_pixels is not None and self.max_pixels < 28 * 28:
            raise ValueError(f"--max-pixels must be >= 784 (one image token), got {self.max_pixels}")
        if self.page_eval_limit < 0:
            raise ValueError("--page-eval-limit must be >= 0")

    @property
    def tiny(self) -> bool:
        return self.model == TINY

    def base_model(self) -> str:
        """The model fine-tuning starts from (and the base of the comparison)."""
        if not self.tiny:
            return self.model
        if not (TINY_READER / "config.json").is_file():
            raise ConfigError(f"the tiny reader is missing from {TINY_READER}; rebuild it with `finscribe pretrain-reader "
                              f"--export-dir {TINY_READER}` or pass --model PATH")
        return str(TINY_READER)

    def pixels(self) -> int | None:
        """The processor's pixel cap for fine-tuning (None: the model's own)."""
        if self.max_pixels is not None or not self.tiny:
            return self.max_pixels
        return TINY_TABLE_PIXELS

    def lora(self) -> bool:
        return (not self.tiny) if self.use_lora is None else self.use_lora

    def lr(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        # The tiny reader's 1e-3 was swept on the five-region quickstart against 3e-4 (benchmarks/
        # RESULTS.md, "The learning rate"): the frozen encoder leaves a small decoder that takes it.
        return 2e-4 if self.lora() else (1e-3 if self.tiny else 2e-5)
