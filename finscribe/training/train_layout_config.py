"""`finscribe train-layout` options (torch-free: `--help` builds its parser from here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from finscribe.config import arg


@dataclass
class LayoutTrainConfig:
    data: tuple[Path, ...] = arg((), "page boxes to train on: training_manifest.json (finscribe generate), COCO detection JSON, "
                                     "or a Label Studio export with rectangle labels named after the regions (several files are concatenated)")
    output_dir: Path = arg(Path("layout_detector"), "where the detector, checkpoints, metrics.jsonl, loss curve and card go")
    init_from: Path | None = arg(None, "start from a local PP-DocLayoutV2/V3 or RT-DETR folder: its backbone, encoder and decoder "
                                       "are kept, the class head is new (default: a tiny detector from scratch)")
    image_height: int = arg(512, "detector input height in pixels (pages are resized to it)")
    image_width: int = arg(384, "detector input width in pixels")
    d_model: int = arg(64, "from scratch: hidden size of the encoder/decoder")
    decoder_layers: int = arg(3, "from scratch: decoder layers")
    num_queries: int = arg(30, "from scratch: object queries (boxes proposed per page)")
    max_steps: int = arg(2000, "optimizer steps", trainer="max_steps")
    batch_size: int = arg(4, "pages per step", trainer=("per_device_train_batch_size", "per_device_eval_batch_size"))
    learning_rate: float = arg(5e-4, "peak learning rate (AdamW)", trainer="learning_rate")
    weight_decay: float = arg(1e-4, "AdamW weight decay", trainer="weight_decay")
    warmup_steps: int = arg(100, "linear warm-up steps", trainer="warmup_steps")
    lr_scheduler: str = arg("cosine", "learning-rate schedule after warm-up (cosine, linear, constant)", trainer="lr_scheduler_type")
    max_grad_norm: float = arg(0.1, "gradient clipping norm (RT-DETR's recipe uses 0.1)", trainer="max_grad_norm")
    augment: bool = arg(True, "box-aware augmentation (affine shift/scale/rotation, contrast, blur, noise, JPEG) "
                              "with albumentations; --no-augment trains on the pages as they are")
    val_fraction: float = arg(0.05, "COCO / Label Studio pages held out for validation (the manifest keeps its own splits)")
    eval_limit: int = arg(100, "validation pages scored at each evaluation (0: no evaluation)")
    eval_steps: int = arg(250, "evaluate every N steps (box IoU hit rate, coverage, mAP)")
    threshold: float = arg(0.3, "score threshold of the detections the IoU hit rate is measured on")
    logging_steps: int = arg(25, "log the training loss every N steps", trainer="logging_steps")
    save_steps: int = arg(250, "checkpoint every N steps", trainer="save_steps")
    save_total_limit: int = arg(2, "keep at most this many checkpoints", trainer="save_total_limit")
    resume_from_checkpoint: str | None = arg(None, "checkpoint folder to resume from, or 'latest' (in --output-dir)")
    seed: int = arg(0, "seed of the initial weights, the data order and the augmentation", trainer=("seed", "data_seed"))
    threads: int = arg(1, "torch CPU threads (0: torch's choice); on a shared CPU one thread is several times cheaper per step "
                          "than threads that wait on each other (measured: 0.7 vs 6.7 CPU-s per step)")

    def __post_init__(self):
        if isinstance(self.data, (str, Path)):
            self.data = (Path(self.data),)
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if self.image_height < 64 or self.image_width < 64 or self.image_height % 32 or self.image_width % 32:
            raise ValueError(f"--image-height/--image-width must be multiples of 32 of at least 64, got {self.image_height}x{self.image_width}")
