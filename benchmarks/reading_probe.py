"""Reading probe (slow): how many steps does the tiny PaddleOCR-VL need to learn to read ONE amount?

The simplest reading task there is: a white strip with one printed amount ("49,099.97", DejaVu
Sans, 1-6 integer digits), prompt "OCR:", answer the digits ("49099.97"). Every step draws fresh
images, so there is no data limit and no memorising: what this measures is how fast a
from-scratch tiny model (same classes and collator as the quickstart, digit-by-digit tokenizer)
learns glyph reading and left-to-right alignment at all. It bounds what the quickstart can show:
a totals crop holds four such amounts plus labels.

    .venv/bin/python benchmarks/reading_probe.py --steps 2000 --output-dir benchmarks/results/reading_probe

Writes OUTPUT_DIR/reading_probe.json (loss and held-out exact/digit accuracy per evaluation point)
and OUTPUT_DIR/reading_probe.png. Digit accuracy compares the answer right-aligned with the truth,
character by character ("always 1111.11" scores ~20 %).
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from finscribe.config import arg, parse_config, save_config

PROMPT = "OCR:"


@dataclass
class ProbeConfig:
    output_dir: Path = arg(Path("benchmarks/results/reading_probe"), "output folder")
    steps: int = arg(2000, "optimizer steps")
    batch_size: int = arg(32, "fresh images per step")
    learning_rate: float = arg(2e-3, "peak learning rate (AdamW, cosine after warm-up)")
    warmup_steps: int = arg(50, "linear warm-up steps")
    eval_every: int = arg(250, "evaluate on the held-out strips every N steps")
    test_size: int = arg(64, "held-out strips (fixed seeds, never trained on)")
    max_integer_digits: int = arg(6, "amounts have 1..N integer digits (+ 2 decimals)")
    font_size: int = arg(20, "glyph size in pixels (20: a digit is ~12 px wide, ~1 vision patch)")
    rope_theta: float | None = arg(None, "override the text RoPE base (default: the real model's 500000)")
    hidden_size: int = arg(128, "tiny decoder hidden size")
    num_layers: int = arg(2, "tiny decoder layers")
    vision_hidden_size: int = arg(128, "tiny vision hidden size")
    vision_layers: int = arg(2, "tiny vision layers")
    threads: int = arg(2, "torch CPU threads")
    seed: int = arg(0, "seed")


def render_amount(rng: random.Random, font: Any, max_digits: int, font_size: int) -> dict[str, Any]:
    """One white strip (336 px wide, one text line) with a random en_US amount; target without commas."""
    from PIL import Image, ImageDraw

    digits = rng.randint(1, max_digits)
    integer = rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10 ** digits - 1)
    text = f"{integer:,}.{rng.randint(0, 99):02d}"
    height = 28 * math.ceil((font_size + 8) / 28)
    image = Image.new("RGB", (28 * 12, height), "white")
    ImageDraw.Draw(image).text((4 + rng.randint(0, 8), rng.randint(0, 3)), text, fill="black", font=font)
    return {"image": image, "prompt": PROMPT, "target": text.replace(",", "")}


def digit_accuracy(answers: list[str], targets: list[str]) -> float:
    hits = total = 0
    for answer, target in zip(answers, targets):
        answer = answer.strip()[-len(target):].rjust(len(target), "\0")
        hits += sum(a == b for a, b in zip(answer, target))
        total += len(target)
    return hits / total


def run(config: ProbeConfig) -> list[dict[str, Any]]:
    import matplotlib
    import torch
    from PIL import ImageFont

    from finscribe.inference import predict
    from finscribe.training.collate import CompletionCollator
    from finscribe.training.model import build_tiny_model, load_model

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    out = Path(config.output_dir)
    save_config(config, out)
    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"), config.font_size)
    draw = lambda rng: render_amount(rng, font, config.max_integer_digits, config.font_size)  # noqa: E731
    test = [draw(random.Random(10_000 + i)) for i in range(config.test_size)]
    model_dir = build_tiny_model(out / "model", texts=["0123456789.", PROMPT] * 10, seed=config.seed,
                                 hidden_size=config.hidden_size, num_layers=config.num_layers,
                                 vision_hidden_size=config.vision_hidden_size, vision_layers=config.vision_layers,
                                 vocab_size=300, min_pixels=28 * 28, max_pixels=28 * 28 * 400, split_digits=True)
    if config.rope_theta:
        config_file = model_dir / "config.json"
        saved = json.loads(config_file.read_text())
        saved["text_config"]["rope_parameters"]["rope_theta"] = config.rope_theta
        config_file.write_text(json.dumps(saved))
    model, processor = load_model(str(model_dir), device="cpu", dtype="float32")
    collator = CompletionCollator(processor)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.0, betas=(0.9, 0.98))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / config.warmup_steps)
                                                 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / config.steps))))
    rng, losses, rows, started = random.Random(config.seed), [], [], time.perf_counter()

    def evaluate(step: int) -> None:
        answers = [p.raw_text for p in predict(model, processor, [t["image"] for t in test], "ocr",
                                               prompts=[PROMPT] * len(test), max_new_tokens=16, batch_size=32)]
        targets = [t["target"] for t in test]
        rows.append({"step": step, "minutes": round((time.perf_counter() - started) / 60, 2),
                     "train_loss": round(sum(losses[-50:]) / max(1, len(losses[-50:])), 4) if losses else None,
                     "exact": sum(a.strip() == t for a, t in zip(answers, targets)) / len(test),
                     "digit_accuracy": digit_accuracy(answers, targets), "example": [answers[0], targets[0]]})
        print(json.dumps(rows[-1]), flush=True)

    evaluate(0)
    model.train()
    for step in range(1, config.steps + 1):
        loss = model(**collator([draw(rng) for _ in range(config.batch_size)])).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        if step % config.eval_every == 0 or step == config.steps:
            evaluate(step)
    _write(out, config, rows)
    return rows


def _write(out: Path, config: ProbeConfig, rows: list[dict[str, Any]]) -> None:
    import matplotlib.pyplot as plt

    from finscribe.eval.charts import (
        save_figure,  # selects the Agg backend before pyplot is imported
    )
    from finscribe.fileio import write_json_atomic

    write_json_atomic(out / "reading_probe.json", {"config": {k: str(v) for k, v in asdict(config).items()},
                                                   "points": rows})
    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = [r["step"] for r in rows]
    ax.plot(steps, [100 * r["digit_accuracy"] for r in rows], marker="o", label="digit accuracy")
    ax.plot(steps, [100 * r["exact"] for r in rows], marker="x", label="exact amount")
    ax.set_xlabel(f"steps (batch {config.batch_size}, fresh images)")
    ax.set_ylabel("% on 64 held-out strips")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Tiny PaddleOCR-VL from scratch reading one amount")
    fig.tight_layout()
    save_figure(fig, out / "reading_probe.png")


def main(argv: list[str] | None = None) -> int:
    config = parse_config(ProbeConfig, argv, "benchmarks/reading_probe.py", __doc__.split("\n\n")[0])
    run(config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
