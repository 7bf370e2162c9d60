"""`finscribe pretrain-reader` options (torch-free: `--help` builds its parser from here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from finscribe.config import arg


@dataclass
class PretrainConfig:
    output_dir: Path = arg(Path("pretrain/tiny_reader"), "run folder (config, checkpoint, metrics, curve); resumes if it holds a checkpoint")
    recipe: Path | None = arg(None, "a curriculum file (e.g. configs/reader.yaml): its phases run in turn under --output-dir, "
                                    "each from the previous phase's reader; resumes at any step")
    stop_at_step: int | None = arg(None, "stop (checkpointed) after this step of the current run or phase, to split a long "
                                         "run across sessions; run again without it to go on")
    export_dir: Path | None = arg(None, "also write the final model here as a plain model folder")
    export_only: bool = arg(False, "only export the latest checkpoint to --export-dir (evaluating it if needed), no training")
    init_from: Path | None = arg(None, "start from this reader (a model folder, e.g. finscribe/assets/tiny_reader) "
                                       "instead of random weights: a second phase keeps its weights, sizes and "
                                       "tokenizer; only --rope-theta is applied to it")
    max_steps: int = arg(12000, "optimizer steps")
    seed: int = arg(1234, "seed of the pretraining invoices, the init and the batch order")
    eval_seed: int = arg(4321, "seed of the held-out invoices (all layouts, never trained on)")
    dpi: int = arg(150, "page resolution: 150 dpi prints 9-10 pt text ~18 px tall, about one vision patch")
    degrade_probability: float = arg(0.3, "share of pages with scan/photo degradation")
    held_out_layouts: tuple[str, ...] = arg(("minimal",), "layouts never trained on (the quickstart tests on them)")
    pages_per_step: int = arg(6, "freshly rendered invoices per step")
    line_batch: int = arg(32, "line crops per line step")
    block_batch: int = arg(16, "block crops per block step")
    block_regions: tuple[str, ...] = arg(("vendor_block", "client_info", "invoice_meta", "totals_section"),
                                         "regions whose whole crops are block samples")
    line_focus_regions: tuple[str, ...] = arg((), "regions whose lines get --line-focus-share of every line batch "
                                                  "(open-vocabulary names and addresses are rarer than amounts)")
    line_focus_share: float = arg(0.0, "share of each line batch drawn from --line-focus-regions (0: lines drawn uniformly)")
    block_share_start: float = arg(0.15, "share of block steps at step 0 (the rest are line steps)")
    block_share_end: float = arg(0.5, "share of block steps from --block-ramp of the run on")
    block_ramp: float = arg(0.3, "fraction of the run over which the block share grows")
    learning_rate: float = arg(5e-4, "peak LR (reading_probe: 5e-4 reads, 2e-3 stalls)")
    warmup_steps: int = arg(200, "linear warm-up steps")
    decay_fraction: float = arg(0.25, "last fraction of the run with linear decay to 10% (warmup-stable-decay)")
    hidden_size: int = arg(192, "text decoder hidden size")
    num_layers: int = arg(3, "text decoder layers")
    num_heads: int = arg(6, "text attention heads (head_dim 32)")
    vision_hidden_size: int = arg(128, "vision encoder hidden size")
    vision_layers: int = arg(3, "vision encoder layers")
    vision_num_heads: int = arg(4, "vision attention heads")
    rope_theta: float = arg(20.0, "text RoPE base (the reading probe learns at 20, not at 500000)")
    vocab_size: int = arg(1024, "byte-level BPE vocabulary (digits always single tokens)")
    tokenizer_pages: int = arg(300, "pretraining invoices whose text (+ 200 invoices' JSON labels) trains the tokenizer")
    max_pixels: int = arg(28 * 28 * 160, "image processor's largest area; larger blocks are not drawn")
    save_every: int = arg(250, "checkpoint every N steps")
    eval_every: int = arg(1000, "held-out evaluation every N steps")
    log_every: int = arg(25, "metrics.jsonl row every N steps")
    eval_pages: int = arg(40, "held-out invoices for evaluation")
    eval_lines: int = arg(256, "held-out lines evaluated")
    threads: int = arg(2, "torch CPU threads")
    loader_workers: int = arg(1, "processes rendering batches ahead of the training step")
