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


def write_crop_folder(records: list[dict[str, Any]], folder: Path) -> Path:
    """crops/<id>.png + annotations/<id>.json (the export layout) for benchmark-quant --data."""
    from finscribe.data.formatters import parse_output
    from finscribe.fileio import write_json_atomic

    (folder / "crops").mkdir(parents=True, exist_ok=True)
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    for i, record in enumerate(records):
        name = f"inv_{i:06d}__{record['region']}"
        record["image"].save(folder / "crops" / f"{name}.png")
        write_json_atomic(folder / "annotations" / f"{name}.json",
                          {"region": record["region"], "fields": parse_output(record["target"])})
    return folder


def region_records(pages: list[dict[str, Any]], region: str = "totals_section") -> list[dict[str, Any]]:
    from finscribe.data.formatters import prompt_for, serialize_target

    return [{"image": p["image"].crop(tuple(p["boxes"][region])), "prompt": prompt_for(region),
             "target": serialize_target(p["label"][region]), "region": region} for p in pages]


OVERFIT_CACHE_KEY = "finscribe-deploy-overfit-v1"


def cached_overfit_model(request: Any, tmp_path_factory: Any) -> Path:
    """The overfit tiny model, trained once per checkout (kept in pytest's cache folder).

    Training takes ~1 min on an idle 2-core CPU (several under load), so it is not repeated
    for every module or session; delete `.pytest_cache` to rebuild it.
    """
    from finscribe.training.model import build_tiny_model, default_corpus

    cache = getattr(request.config, "cache", None)
    root = cache.mkdir(OVERFIT_CACHE_KEY) if cache is not None else tmp_path_factory.mktemp("overfit")
    model_dir = Path(root) / "model"
    if not (model_dir / "config.json").is_file():
        base = build_tiny_model(Path(root) / "base", default_corpus(), seed=0)
        tmp = Path(root) / "model.tmp"
        overfit_tiny_model(base, tmp, region_records(invoice_pages(4)))
        tmp.rename(model_dir)
    return model_dir


def overfit_tiny_model(base_dir: Path, output_dir: Path, records: list[dict[str, Any]], steps: int = 100,
                       lr: float = 3e-3, seed: int = 0) -> Path:
    """Train a copy of the tiny model at `base_dir` on `records` (full batch) and save it."""
    from finscribe.model import load_model
    from finscribe.training.collate import CompletionCollator

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


class RunningServer:
    """uvicorn serving `app` on 127.0.0.1 (a free port) in a thread; `with RunningServer(app) as url:`."""

    def __init__(self, app: Any):
        import socket

        import uvicorn

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = None

    def __enter__(self) -> str:
        import threading
        import time

        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start within 30 s")
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()


if __name__ == "__main__":
    # python tests/deploy_helpers.py OUT_DIR: the overfit tiny model benchmarks/quantization.py uses.
    import sys

    from finscribe.training.model import build_tiny_model, default_corpus

    out = Path(sys.argv[1])
    records = region_records(invoice_pages(4))
    write_crop_folder(records, out.with_name(out.name + "-data"))
    if "--data-only" not in sys.argv:
        overfit_tiny_model(build_tiny_model(out.with_name(out.name + "-base"), default_corpus(), seed=0), out, records)
    print(f"wrote {out} and {out.name}-data")
