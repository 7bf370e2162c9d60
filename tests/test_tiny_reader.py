"""The committed tiny reader (finscribe/assets/tiny_reader): it loads by path like any model, its
answers depend on the image, and it reads freshly rendered text that it never saw, which the
same lines on blank images do not give.

Thresholds: issue 17's goal is <= 2 % CER on held-out lines of the quickstart's regions; on the 16
fresh lines of this test the reading test asks for <= 10 % (the goal with room for a small sample
and for a seed no evaluation used). A model that cannot read scores a CER near 1 on fresh lines.
The committed reader (phase 5, step 5,000) reads them with 0.3 % CER, 15 of 16 exact (blank images:
96 % CER; phase 3 read them with 0.9 % / 91 %); its held-out figures are in its README.md, in
benchmarks/results/reader_lines/ (440 totals lines) and in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image
from rapidfuzz.distance import Levenshtein

from finscribe.inference import predict
from finscribe.model import load_model
from finscribe.quickstart import TINY_READER
from finscribe.synthetic.ocr_text import OCR_PROMPT, page_samples

FRESH_SEED = 987_654  # used by no pretraining or evaluation run
READ_CER = 0.10


def _cer(answers: list[str], targets: list[str]) -> float:
    return sum(Levenshtein.distance(a, t) for a, t in zip(answers, targets)) / sum(len(t) for t in targets)


@pytest.fixture(scope="module")
def reader():
    return load_model(TINY_READER, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def transcripts(reader):
    """(targets, answers on the lines, answers on white images of the same sizes)."""
    model, processor = reader
    lines = []
    for index in range(6):
        lines += [s for s in page_samples(FRESH_SEED, index, locales=("en_US",), degrade_probability=0.0)
                  if s.kind == "line" and s.region == "totals_section"]
    lines = lines[:16]

    def read(images):
        return [p.raw_text.strip() for p in predict(model, processor, images, "page", prompts=[OCR_PROMPT] * len(images),
                                                    max_new_tokens=48, batch_size=16)]
    return ([s.text for s in lines], read([s.image for s in lines]),
            read([Image.new("RGB", s.image.size, "white") for s in lines]))


def test_the_committed_reader_is_small_and_says_how_it_was_made():
    assert (TINY_READER / "model.safetensors").stat().st_size <= 10 * 1024 * 1024
    pretrain = json.loads((TINY_READER / "pretrain_config.json").read_text())
    assert pretrain["stage"] == "PretrainConfig" and pretrain["rope_theta"] == 20000.0 and pretrain["init_from"]
    held_out = json.loads((TINY_READER / "eval.json").read_text())
    assert held_out["eval"]["line"]["n"] > 100 and held_out["step"] > 0
    assert f"step {held_out['step']}" in (TINY_READER / "README.md").read_text()


def test_the_reader_answers_from_the_image(transcripts):
    """Lines get varied answers closer to their text than the answers to blank images, which are
    a few recurring priors: the reader looks at the image."""
    targets, read, blank = transcripts
    assert len(set(read)) >= 12 and len(set(blank)) <= len(set(read)) // 4
    assert _cer(read, targets) < _cer(blank, targets)


def test_the_reader_reads_fresh_lines(transcripts):
    targets, read, blank = transcripts
    assert _cer(read, targets) <= READ_CER
    assert _cer(blank, targets) > 0.9
