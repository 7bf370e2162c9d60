"""Shared pytest fixtures. The tiny PaddleOCR-VL is built once per session (a few seconds)."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config):
    # The test machine's 2 cores are shared by several processes: one intra-op thread per test
    # process is several times faster than two threads fighting over busy cores.
    import torch

    torch.set_num_threads(int(os.environ.get("FINSCRIBE_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Path of a tiny real PaddleOCR-VL (model + processor + chat template), loadable with
    `finscribe.training.model.load_model(path)`. Read-only: tests that modify it copy it first."""
    from finscribe.training.model import build_tiny_model, default_corpus

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", default_corpus(), seed=0)


@pytest.fixture(scope="session")
def tiny_detector_dir(tmp_path_factory):
    """Path of a tiny random-weight region detector (RT-DETR + HGNetV2, the five region labels),
    loadable with `finscribe.detection.load_detector(path)`. Untrained: it may find nothing."""
    from finscribe.detection import build_tiny_detector

    return build_tiny_detector(tmp_path_factory.mktemp("detector") / "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    """`(model, processor)` of the tiny model on CPU, float32. Shared: do not train it in place."""
    from finscribe.model import load_model

    return load_model(tiny_model_dir, device="cpu", dtype="float32")


# A totals answer ~5x the tokens of '{"total":"1"}': length-aware batching and loss normalisation tests mix the two.
LONG_ANSWER = '{"subtotal":"1234567.89","tax_amount":"234567.89","total":"1469135.78","currency":"EUR"}'


def write_records(folder, targets, split="train", size=(200, 60), region="totals_section", prompt="Totals to JSON:",
                  font_size=20):
    """Draw each target's values onto a small crop, save it, return records (COMMON.md format)."""
    import json
    from pathlib import Path

    from matplotlib import font_manager
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(font_manager.findfont("DejaVu Sans"), font_size)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i, target in enumerate(targets):
        image = Image.new("RGB", size, "white")
        values = " ".join(str(v) for v in json.loads(target).values())
        ImageDraw.Draw(image).text((4, 4), values, fill="black", font=font)
        path = folder / f"{split}_{i:03d}.png"
        image.save(path)
        records.append({"image": str(path), "prompt": prompt, "target": target, "region": region,
                        "split": split, "source_id": f"{split}_{i:03d}", "layout": "test"})
    return records


@pytest.fixture
def records_jsonl(tmp_path):
    """A records JSONL (8 train + 2 val short totals crops); returns its path."""
    import json

    totals = [f'{{"total":"{i * 11}.{i}0"}}' for i in range(10)]  # canonical: '0.00', '11.10', ...
    records = write_records(tmp_path / "crops", totals[:8]) + write_records(tmp_path / "crops", totals[8:], split="val")
    path = tmp_path / "training_dataset.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path
