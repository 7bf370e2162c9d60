"""Helpers for the deploy tests (quantize, service, server, browser) and benchmarks/quantization.py.

`overfit_tiny_model` trains the tiny PaddleOCR-VL on a handful of real rendered crops until it
reproduces their JSON exactly: a model with confident outputs, so that "the quantized model
gives the same JSON" and "the page shows the extracted fields" are real, checkable claims.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch


def invoice_pages(count: int = 4, seed: int = 0, layout: str = "classic", dpi: int = 60) -> list[dict[str, Any]]:
    """`count` generated invoices rendered as pages: {"image", "boxes", "label"} each."""
    from finscribe.synthetic.generator import generate_invoice
    from finscribe.synthetic.renderer import render_invoice

    pages = []
    for i in range(count):
        invoice = generate_invoice(num_items=1 + i % 3, currency="USD", seed=seed * 1000 + i)
        page = render_invoice(invoice, layout, dpi=dpi, seed=i)
        pages.append({"image": page.image, "boxes": {r: list(b) for r, b in page.boxes.items()},
                      "label": invoice.to_label(), "rendered": page})
    return pages


def region_records(pages: list[dict[str, Any]], region: str = "totals_section") -> list[dict[str, Any]]:
    from finscribe.data.formatters import prompt_for, serialize_target

    return [{"image": p["image"].crop(tuple(p["boxes"][region])), "prompt": prompt_for(region),
             "target": serialize_target(p["label"][region]), "region": region} for p in pages]


def overfit_tiny_model(base_dir: Path, output_dir: Path, records: list[dict[str, Any]], steps: int = 150,
                       lr: float = 3e-3, seed: int = 0) -> Path:
    """Train a copy of the tiny model at `base_dir` on `records` (full batch) and save it."""
    from finscribe.training.collate import CompletionCollator
    from finscribe.training.model import load_model

    model, processor = load_model(base_dir, device="cpu", dtype="float32")
    batch = CompletionCollator(processor)(records)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / 10) * 0.5 * (1 + math.cos(math.pi * step / steps)))
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(steps):
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
    model.eval()
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    return Path(output_dir)
