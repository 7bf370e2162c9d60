"""Pretrain the tiny reader: a tiny PaddleOCR-VL taught the real model's base task, `OCR:` -> text.

The real PaddleOCR-VL reads first and is fine-tuned into an extractor afterwards; the tiny
stand-in is built the same way. Every step draws fresh crops of freshly rendered synthetic
invoices (`synthetic/ocr_text.py`: every font, locale, layout but the held-out ones, with scan
degradations): single text lines and whole region blocks, blocks taking a growing share of the
steps (a curriculum from lines to blocks). The run is reproducible (step s's batch depends only
on (seed, s)) and resumable (model, optimizer, schedule and RNG are checkpointed atomically):

    finscribe pretrain-reader --output-dir pretrain/tiny_reader            # start, or resume
    finscribe pretrain-reader --output-dir pretrain/tiny_reader --export-dir finscribe/assets/tiny_reader

`finscribe pretrain-reader` itself is `reader_recipe.main`: with `--recipe` it runs a curriculum
of such runs, without it one run (`run_single`). The output folder holds config.json, init/ (the random start and its tokenizer), checkpoint/
(the latest complete state), metrics.jsonl, eval.json (held-out line/block accuracy and CER per
region) and curve.png. `--export-dir` writes the final model as a normal model folder.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from finscribe.config import config_to_dict, save_config
from finscribe.errors import FinScribeError
from finscribe.fileio import atomic_directory, write_json_atomic, write_text_atomic
from finscribe.synthetic.generator import SUPPORTED_LOCALES
from finscribe.synthetic.ocr_text import OCR_PROMPT, OcrSample, page_samples
from finscribe.synthetic.renderer import LAYOUTS
from finscribe.training.collate import CompletionCollator
from finscribe.training.model import build_tiny_model, default_corpus, load_model
from finscribe.training.pretrain_reader_config import PretrainConfig  # noqa: F401  (the stage's config, torch-free)
from finscribe.training.reader_report import crop_area, evaluate_reading, plot_curve, reader_card

FIRST_STEPS = 3  # steps whose exact loss metrics.jsonl keeps (the reproducibility check)


class PretrainError(FinScribeError, ValueError):
    """A pretraining run that cannot start, resume or export; the message says what to do."""


# ----------------------------------------------------------------------------- data


def layouts_for(config: PretrainConfig) -> tuple[str, ...]:
    return tuple(layout for layout in LAYOUTS if layout not in config.held_out_layouts)


def step_kind(config: PretrainConfig, step: int) -> str:
    """'line' or 'block' for this step: the block share grows linearly over the first ramp."""
    progress = min(1.0, step / max(1.0, config.block_ramp * config.max_steps))
    share = config.block_share_start + (config.block_share_end - config.block_share_start) * progress
    return "block" if random.Random(f"kind:{config.seed}:{step}").random() < share else "line"


def step_samples(config: PretrainConfig, step: int) -> list[OcrSample]:
    """The training crops of `step`: from pages step*P .. step*P+P-1 of the pretraining seed. A line
    batch gives `line_focus_share` of its places to lines of `line_focus_regions` (when set)."""
    kind = step_kind(config, step)
    pool: list[OcrSample] = []
    for j in range(config.pages_per_step):
        pool += page_samples(config.seed, step * config.pages_per_step + j, dpi=config.dpi,
                             degrade_probability=config.degrade_probability, locales=SUPPORTED_LOCALES,
                             layouts=layouts_for(config), block_regions=config.block_regions)
    pool = [s for s in pool if s.kind == kind and crop_area(s) <= config.max_pixels]
    rng = random.Random(f"pick:{config.seed}:{step}")
    size = config.block_batch if kind == "block" else config.line_batch
    if kind == "line" and config.line_focus_share > 0:
        focus = [s for s in pool if s.region in config.line_focus_regions]
        rest = [s for s in pool if s.region not in config.line_focus_regions]
        picked = rng.sample(focus, min(len(focus), round(size * config.line_focus_share)))
        return picked + rng.sample(rest, min(size - len(picked), len(rest)))
    return rng.sample(pool, min(size, len(pool)))


class StepBatches(torch.utils.data.Dataset):
    """Map-style dataset indexed by step: item s is the collated batch of step s."""

    def __init__(self, config: PretrainConfig, collator: CompletionCollator):
        self.config, self.collator = config, collator

    def __len__(self) -> int:
        return self.config.max_steps + 1

    def __getitem__(self, step: int) -> tuple[str, dict[str, torch.Tensor]]:
        samples = step_samples(self.config, step)
        records = [{"image": s.image, "prompt": OCR_PROMPT, "target": s.text} for s in samples]
        return step_kind(self.config, step), self.collator(records)


def eval_samples(config: PretrainConfig) -> list[OcrSample]:
    """Held-out crops: invoices of `eval_seed` in every layout (held-out ones included);
    `eval_lines` lines drawn evenly across them and every block within the size limit."""
    lines, blocks = [], []
    for i in range(config.eval_pages):
        for sample in page_samples(config.eval_seed, i, dpi=config.dpi, degrade_probability=config.degrade_probability,
                                   block_regions=config.block_regions):
            if crop_area(sample) > config.max_pixels:
                continue
            (blocks if sample.kind == "block" else lines).append(sample)
    random.Random(f"eval:{config.eval_seed}").shuffle(lines)
    return lines[: config.eval_lines] + blocks


def tokenizer_corpus(config: PretrainConfig) -> list[str]:
    """Texts of `tokenizer_pages` pretraining invoices (never the held-out ones) plus the extraction targets
    and prompts: the tokenizer must serve the fine-tuning that follows too."""
    texts = []
    for i in range(config.tokenizer_pages):
        texts += [s.text for s in page_samples(config.seed + 1, i, dpi=config.dpi, degrade_probability=0.0,
                                               layouts=layouts_for(config))]
    return texts + default_corpus(num_invoices=min(200, 2 * config.tokenizer_pages), seed=config.seed)


# ----------------------------------------------------------------------------- model + state


def init_model(config: PretrainConfig, folder: Path) -> Path:
    if (folder / "config.json").is_file():
        return folder
    if config.init_from is not None:
        return continue_from(config, folder)
    print(f"building the random tiny PaddleOCR-VL and its tokenizer in {folder}", flush=True)
    return build_tiny_model(folder, texts=tokenizer_corpus(config), seed=config.seed, hidden_size=config.hidden_size,
                            num_layers=config.num_layers, vision_hidden_size=config.vision_hidden_size,
                            vision_layers=config.vision_layers, num_heads=config.num_heads,
                            vision_num_heads=config.vision_num_heads, vocab_size=config.vocab_size,
                            min_pixels=28 * 28, max_pixels=config.max_pixels, split_digits=True,
                            rope_theta=config.rope_theta)


def continue_from(config: PretrainConfig, folder: Path) -> Path:
    """A second phase: the earlier reader's files as the start, with --rope-theta as its text RoPE
    base (a new base re-tunes every attention's position pattern; the glyph features are kept) and
    --max-pixels as its image processor's largest area."""
    source = Path(config.init_from)
    if not (source / "config.json").is_file() or not (source / "model.safetensors").is_file():
        raise PretrainError(f"--init-from {source} is not a model folder (config.json + model.safetensors); "
                            f"pass an exported reader such as finscribe/assets/tiny_reader")
    print(f"starting from {source} with text RoPE theta {config.rope_theta:g}", flush=True)
    with atomic_directory(folder) as tmp:
        for item in source.iterdir():
            if item.is_file() and item.suffix in (".json", ".jinja", ".safetensors") and item.name not in (
                    "eval.json", "pretrain_config.json", "trainer_state.json"):
                shutil.copy2(item, tmp / item.name)
        model_config = json.loads((tmp / "config.json").read_text())
        model_config["text_config"]["rope_parameters"]["rope_theta"] = config.rope_theta
        write_json_atomic(tmp / "config.json", model_config)
        processor_config = json.loads((tmp / "processor_config.json").read_text())
        processor_config["image_processor"]["size"]["longest_edge"] = config.max_pixels  # a phase may read larger crops
        write_json_atomic(tmp / "processor_config.json", processor_config)
    return folder


def lr_factor(config: PretrainConfig, step: int) -> float:
    """Warmup-stable-decay: linear warm-up, constant, then linear decay to 10% over the last part
    (unlike cosine, the stable phase lets a run be extended before its decay starts)."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    decay_start = config.max_steps * (1 - config.decay_fraction)
    if step < decay_start:
        return 1.0
    return 1.0 - 0.9 * min(1.0, (step - decay_start) / max(1.0, config.max_steps - decay_start))


def save_checkpoint(folder: Path, model: Any, processor: Any, optimizer: torch.optim.Optimizer, step: int) -> None:
    """Model, processor, optimizer moments (safetensors, one file each so no file is larger than
    the model) and the step, written to a temp folder and renamed: a kill never leaves half a checkpoint."""
    with atomic_directory(folder) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        for moment in ("exp_avg", "exp_avg_sq"):
            save_file({str(i): optimizer.state[p][moment].contiguous() for i, p in enumerate(params)
                       if p in optimizer.state}, tmp / f"optimizer_{moment}.safetensors")
        steps = {str(i): float(optimizer.state[p]["step"]) for i, p in enumerate(params) if p in optimizer.state}
        write_json_atomic(tmp / "trainer_state.json", {"step": step, "optimizer_steps": steps,
                                                        "torch_rng": torch.get_rng_state().tolist()})


def load_checkpoint(folder: Path, model: Any, optimizer: torch.optim.Optimizer) -> int:
    state = json.loads((folder / "trainer_state.json").read_text())
    params = [p for group in optimizer.param_groups for p in group["params"]]
    moments = {m: load_file(folder / f"optimizer_{m}.safetensors") for m in ("exp_avg", "exp_avg_sq")}
    for i, p in enumerate(params):
        if str(i) in state["optimizer_steps"]:
            optimizer.state[p] = {"step": torch.tensor(state["optimizer_steps"][str(i)]),
                                  "exp_avg": moments["exp_avg"][str(i)], "exp_avg_sq": moments["exp_avg_sq"][str(i)]}
    torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
    return int(state["step"])


# ----------------------------------------------------------------------------- loop


def _read_rows(path: Path, up_to_step: int) -> list[dict[str, Any]]:
    """metrics.jsonl rows up to the resumed step: rows a killed run wrote after its last
    checkpoint are dropped, so no step is logged twice."""
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["step"] <= up_to_step]


def pretrain(config: PretrainConfig) -> Path:
    """Run (or resume) the pretraining; returns the run folder."""

    out = Path(config.output_dir)
    saved = out / "config.json"
    if saved.is_file():  # resuming: the data and schedule must be those of the original run
        previous = {k: v for k, v in json.loads(saved.read_text()).items() if k != "stage"}
        mine = config_to_dict(config)
        changed = {k for k in previous if k in mine and previous[k] != mine[k]
                   and k not in ("export_dir", "export_only", "threads", "loader_workers", "max_steps", "eval_every",
                                 "save_every", "stop_at_step", "recipe")}
        if changed:
            raise PretrainError(f"{out} was started with other settings ({sorted(changed)}); use a new --output-dir")
    save_config(config, out)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    checkpoint = out / "checkpoint"
    resuming = (checkpoint / "trainer_state.json").is_file()
    # a resumed run needs only its checkpoint (a fresh clone of a committed run has no init/)
    model, processor = load_model(str(checkpoint if resuming else init_model(config, out / "init")),
                                  device="cpu", dtype="float32")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, betas=(0.9, 0.98), weight_decay=0.0)
    start = load_checkpoint(checkpoint, model, optimizer) if resuming else 0
    last = min(config.max_steps, config.stop_at_step or config.max_steps)
    rows = _read_rows(out / "metrics.jsonl", start)
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    held_out = eval_samples(config)
    print(f"pretraining steps {start + 1}..{last} of {config.max_steps}; {len(held_out)} held-out crops", flush=True)

    loader = torch.utils.data.DataLoader(
        StepBatches(config, CompletionCollator(processor)), batch_size=None, num_workers=config.loader_workers,
        sampler=range(start + 1, last + 1), prefetch_factor=4 if config.loader_workers else None,
        worker_init_fn=lambda _: torch.set_num_threads(1))
    model.train()
    metrics = (out / "metrics.jsonl").open("a")
    window: dict[str, list[float]] = {"line": [], "block": []}
    tic = time.perf_counter()
    step = start
    with tqdm(total=config.max_steps, initial=start, desc="pretrain", unit="step") as bar:
        for step, (kind, batch) in enumerate(loader, start=start + 1):
            for group in optimizer.param_groups:
                group["lr"] = config.learning_rate * lr_factor(config, step - 1)
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss is {loss.item()} at step {step}; lower --learning-rate")
            window[kind].append(loss.item())
            if step <= FIRST_STEPS:  # exact per-step losses: what a rerun of the recipe must reproduce bit for bit
                row = {"step": step, "kind": kind, "first_step_loss": loss.item()}
                metrics.write(json.dumps(row) + "\n")
                rows.append(row)
                metrics.flush()
            bar.update(1)
            bar.set_postfix(kind=kind, loss=f"{loss.item():.3f}")
            if step % config.log_every == 0:
                for k, values in window.items():
                    if values:
                        row = {"step": step, "kind": k, "loss": round(sum(values) / len(values), 5),
                               "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.perf_counter() - tic, 1)}
                        metrics.write(json.dumps(row) + "\n")
                        rows.append(row)
                window = {"line": [], "block": []}
                metrics.flush()
            if step % config.eval_every == 0 or step == config.max_steps:
                result = evaluate_reading(model, processor, held_out)
                row = {"step": step, "eval": result}
                metrics.write(json.dumps(row) + "\n")
                metrics.flush()
                rows.append(row)
                write_json_atomic(out / "eval.json", row)
                plot_curve(rows, out / "curve.png")
                print(f"step {step}: lines exact {result['line']['exact']:.1%} CER {result['line']['cer']:.2%} | "
                      f"blocks exact {result['block']['exact']:.1%} CER {result['block']['cer']:.2%}", flush=True)
                model.train()
            if step % config.save_every == 0 or step in (config.max_steps, last):
                save_checkpoint(checkpoint, model, processor, optimizer, step)
    metrics.close()
    if step < config.max_steps:
        print(f"stopped at step {step} (--stop-at-step); run the same command without it to go on", flush=True)
        return out
    if config.export_dir is not None:
        export_reader(config, Path(config.export_dir))
    return out


def export_reader(config: PretrainConfig, export_dir: Path) -> Path:
    """The latest checkpoint as a plain model folder (no optimizer state), with its pretraining
    config, its own held-out reading accuracy (evaluated now if the run's last evaluation was of
    another step), the curve and a model card beside the weights."""
    run = Path(config.output_dir)
    checkpoint = run / "checkpoint"
    if not (checkpoint / "trainer_state.json").is_file():
        raise PretrainError(f"{run} holds no checkpoint to export; run `finscribe pretrain-reader --output-dir {run}` first")
    step = json.loads((checkpoint / "trainer_state.json").read_text())["step"]
    held_out = json.loads((run / "eval.json").read_text()) if (run / "eval.json").is_file() else {}
    if held_out.get("step") != step:
        model, processor = load_model(str(checkpoint), device="cpu", dtype="float32")
        held_out = {"step": step, "eval": evaluate_reading(model, processor, eval_samples(config))}
    with atomic_directory(export_dir) as tmp:
        for item in checkpoint.iterdir():
            if not item.name.startswith("optimizer_") and item.name != "trainer_state.json":
                shutil.copy2(item, tmp / item.name)
        if (run / "curve.png").is_file():
            shutil.copy2(run / "curve.png", tmp / "curve.png")
        shutil.copy2(run / "config.json", tmp / "pretrain_config.json")
        write_json_atomic(tmp / "eval.json", held_out)
        write_text_atomic(tmp / "README.md", reader_card(config, held_out))
    return export_dir


def run_single(config: PretrainConfig) -> None:
    """One run (no --recipe): pretrain, or only export its latest checkpoint."""
    if config.export_only:
        if config.export_dir is None:
            raise PretrainError("--export-only needs --export-dir")
        print(f"exported {export_reader(config, config.export_dir)}")
        return
    pretrain(config)
