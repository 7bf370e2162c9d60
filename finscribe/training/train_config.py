"""`finscribe train` / train_finscribe_vl.py options (torch-free: `--help` builds its parser from here)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from finscribe.config import arg
from finscribe.data.mixing import check_shares

# = finscribe.model.DEFAULT_MODEL_ID and finscribe.training.lora.LORA_PRESETS (not imported: they bring torch);
# tests/test_cli.py checks that they agree.
DEFAULT_MODEL_ID = "PaddlePaddle/PaddleOCR-VL"
LORA_PRESET_NAMES = ("decoder", "decoder_projector", "all")


@dataclass
class TrainConfig:
    data_dir: Path | None = arg(None, "folder with training_manifest.json (finscribe generate) or a records JSONL (finscribe build-dataset)")
    data: tuple[Path, ...] = arg((), "a manifest .json or records .jsonl file (instead of --data-dir); "
                                     "several files are concatenated, or mixed at --mix shares")
    mix: tuple[float, ...] = arg((), "share of each --data file in the training split, e.g. --data synth.jsonl "
                                     "real.jsonl --mix 0.7 0.3 (smaller files are oversampled, nothing is dropped)")
    model: str = arg(DEFAULT_MODEL_ID, "hub id, local model folder, or LoRA adapter folder to start from")
    output_dir: Path = arg(Path("finetuned_finscribe_vl"), "where the model/adapter, checkpoints and logs go")
    epochs: float = arg(4.0, "training epochs", trainer="num_train_epochs")
    batch_size: int = arg(4, "per-device batch size", trainer=("per_device_train_batch_size", "per_device_eval_batch_size"))
    gradient_accumulation_steps: int = arg(4, "batches per optimizer step", trainer="gradient_accumulation_steps")
    learning_rate: float = arg(2e-5, "peak learning rate (LoRA usually wants ~1e-4..2e-4)", trainer="learning_rate")
    warmup_ratio: float = arg(0.1, "share of steps with linear warmup", trainer="warmup_steps")
    lr_scheduler: Literal["cosine", "linear", "constant"] = arg("cosine", "learning-rate schedule after warmup",
                                                                 trainer="lr_scheduler_type")
    optim: str = arg("adamw_torch", "optimizer (a transformers OptimizerNames value: adamw_torch, adamw_torch_fused, sgd, ...)",
                     trainer="optim")
    weight_decay: float = arg(0.0, "AdamW weight decay", trainer="weight_decay")
    max_grad_norm: float = arg(1.0, "gradient clipping norm (0 disables)", trainer="max_grad_norm")
    use_lora: bool = arg(False, "train LoRA adapters instead of all weights")
    lora_r: int = arg(16, "LoRA rank")
    lora_alpha: int | None = arg(None, "LoRA alpha (default 2*r)")
    lora_dropout: float = arg(0.05, "LoRA dropout")
    lora_preset: Literal["decoder", "decoder_projector", "all"] = arg("decoder", "which modules get adapters")
    freeze_vision: bool = arg(False, "full SFT: keep the vision encoder frozen")
    vision_lr: float | None = arg(None, "own learning rate for vision-encoder parameters (default: --learning-rate)")
    max_length: int | None = arg(None, "cut answers so prompt+answer fit this many tokens")
    max_pixels: int | None = arg(None, "image area (pixels) above which crops are downscaled, saved with the model's "
                                       "processor (default: the model's own; PaddleOCR-VL 2,822,400, the tiny reader "
                                       "1,003,520). Lower it to fit GPU memory; raise it to keep large crops legible")
    sampling: Literal["random", "group_by_length", "batch_rebalance"] = arg(
        "random", "how records are batched. random: shuffled; every batch is padded to its longest record (a "
        "line-item table's crop is ~5x a small one's). batch_rebalance: each step is still a random mix, but its "
        "--gradient-accumulation-steps micro-batches (on every process) are cut by length (variable sizes), so "
        "little is padded and the loss is unchanged. group_by_length: whole steps of one length, fastest, but "
        "the tables learnt less (TEDS 0.42 vs 0.59 on five regions; benchmarks/RESULTS.md)",
        trainer="train_sampling_strategy")
    logging_steps: int = arg(50, "log train loss every N optimizer steps", trainer="logging_steps")
    save_steps: int = arg(500, "checkpoint every N optimizer steps", trainer="save_steps")
    save_total_limit: int | None = arg(3, "keep at most this many checkpoints", trainer="save_total_limit")
    eval_steps: int | None = arg(None, "validate every N steps (default: --save-steps); needs 'val' records")
    val_limit: int | None = arg(None, "validate on the first N 'val' records only (default: all); the loss of a few "
                                      "hundred is as telling as of thousands, at a fraction of the time")
    eval_generate_samples: int = arg(16, "validation records to greedy-decode for field accuracy at each eval (0: off)")
    max_new_tokens: int = arg(512, "generation limit for the field-accuracy eval")
    max_steps: int = arg(-1, "stop after N optimizer steps (overrides --epochs when > 0)", trainer="max_steps")
    seed: int = arg(42, "seed for init of adapters, data order and dropout", trainer=("seed", "data_seed"))
    bf16: bool | None = arg(None, "bf16 mixed precision (default: on when a bf16-capable GPU is present)")
    gradient_checkpointing: bool = arg(False, "recompute activations in backward to save memory", trainer="gradient_checkpointing")
    resume_from_checkpoint: str | None = arg(None, "checkpoint folder to resume from, or 'latest' (in --output-dir)")
    regions: tuple[str, ...] = arg((), "train only on these regions (e.g. totals_section page); default all")
    hard_samples: Path | None = arg(None, "hard-sample folder from `finscribe mine` to replay")
    hard_ratio: float = arg(0.2, "share of hard samples in the training mix (with --hard-samples)")
    dataloader_workers: int = arg(0, "DataLoader worker processes (image decoding)", trainer="dataloader_num_workers")
    report_to: tuple[str, ...] = arg(("tensorboard",), "Trainer loggers (tensorboard, wandb, none)")

    def __post_init__(self):
        if isinstance(self.data, (str, Path)) or self.data is None:  # TrainConfig(data=path) from Python
            self.data = () if self.data is None else (Path(self.data),)
        if self.mix:
            check_shares(self.mix, len(self.data))
        if self.use_lora and self.freeze_vision and self.lora_preset == "all":
            raise ValueError("--freeze-vision contradicts --lora-preset all (which adapts the vision encoder)")
        if self.max_pixels is not None and self.max_pixels < 28 * 28:
            raise ValueError(f"--max-pixels must be >= 784 (one image token), got {self.max_pixels}")
        if self.val_limit is not None and self.val_limit < 1:
            raise ValueError(f"--val-limit must be >= 1, got {self.val_limit}")
        if not 0 <= self.hard_ratio < 1:
            raise ValueError(f"--hard-ratio must be in [0, 1), got {self.hard_ratio}")
        # The sampler cuts each step into one micro-batch per process per accumulation step; torchrun and
        # `accelerate launch` set WORLD_SIZE before this runs, so 2 processes x 1 accumulation step is fine.
        if self.sampling == "batch_rebalance" and self.gradient_accumulation_steps * _world_size() < 2:
            raise ValueError("--sampling batch_rebalance cuts each step into --gradient-accumulation-steps "
                             "micro-batches per process: pass --gradient-accumulation-steps 2 or more "
                             "(or launch 2 or more processes)")
        if self.lora_preset not in LORA_PRESET_NAMES:
            raise ValueError(f"unknown --lora-preset {self.lora_preset}")


def _world_size() -> int:
    """Data-parallel processes of this launch (torchrun / accelerate set WORLD_SIZE; 1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))
