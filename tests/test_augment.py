"""Scan/photo degradations: same size, real pixel changes, deterministic per seed, boxes follow.

Run: .venv/bin/python -m pytest -q tests/test_augment.py
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from finscribe.synthetic.augment import STRENGTHS, degrade, plan, transform_box


@pytest.fixture(scope="module")
def page() -> Image.Image:
    """A page-like image: white paper, black text-like bars, a framed table."""
    image = Image.new("RGB", (420, 600), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for row in range(12):
        draw.rectangle((40, 60 + row * 40, 40 + 25 * (row % 5 + 4), 70 + row * 40), fill=(20, 20, 20))
    draw.rectangle((30, 300, 390, 560), outline=(0, 0, 0), width=2)
    return image


@pytest.mark.parametrize("strength", STRENGTHS)
def test_degrade_keeps_size_changes_pixels_and_is_deterministic(page, strength):
    for seed in range(6):
        out = degrade(page, seed, strength)
        assert out.size == page.size and out.mode == "RGB"
        diff = np.abs(np.asarray(out, dtype=np.int16) - np.asarray(page, dtype=np.int16))
        assert diff.mean() > 0.05, (strength, seed, plan(seed, strength))
        assert degrade(page, seed, strength).tobytes() == out.tobytes()
    assert degrade(page, 1, strength).tobytes() != degrade(page, 2, strength).tobytes()


def test_effects_vary_with_seed_and_stay_in_range():
    plans = [plan(seed, "heavy") for seed in range(200)]
    for p in plans:
        assert p.angle is None or 0 < abs(p.angle) <= 1.5
        assert p.jpeg is None or 30 <= p.jpeg <= 70
        assert any(v is not None for v in (p.angle, p.shadow, p.contrast, p.blur, p.noise, p.jpeg))
    for effect in ("angle", "shadow", "contrast", "blur", "noise", "jpeg"):
        states = {getattr(p, effect) is None for p in plans}
        assert states == {True, False}, f"{effect} is never switched {'on' if True in states else 'off'}"
    light = [plan(seed, "light") for seed in range(200)]
    assert max(abs(p.angle) for p in light if p.angle) <= 0.4


def test_degrade_does_not_touch_the_global_rng(page):
    import random

    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), np.random.rand())
    random.seed(123)
    np.random.seed(123)
    degrade(page, 5, "heavy")
    assert (random.random(), np.random.rand()) == expected


def test_grayscale_input_stays_grayscale(page):
    gray = page.convert("L")
    out = degrade(gray, 3, "medium")
    assert out.mode == "L" and out.size == gray.size


def test_unknown_strength_is_rejected(page):
    with pytest.raises(ValueError, match="strength"):
        degrade(page, 0, "extreme")


def test_transform_box_follows_the_rotation():
    # A black square near a corner: after rotation its ink must lie inside the transformed box.
    image = Image.new("RGB", (800, 1000), (255, 255, 255))
    box = (40, 40, 120, 90)
    ImageDraw.Draw(image).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=(0, 0, 0))
    seed = next(s for s in range(100) if (p := plan(s, "heavy")).angle and abs(p.angle) > 1.0
                and p.blur is None and p.shadow is None and p.contrast is None)
    out = np.asarray(degrade(image, seed, "heavy").convert("L"))
    ys, xs = np.nonzero(out < 100)
    moved = transform_box(box, image.size, seed, "heavy")
    assert moved != box
    assert moved[0] - 1 <= xs.min() and xs.max() < moved[2] + 1 and moved[1] - 1 <= ys.min() and ys.max() < moved[3] + 1
    # The original box no longer contains all the ink: the rotation moved it by several pixels.
    assert xs.min() < box[0] or ys.min() < box[1] or xs.max() >= box[2] or ys.max() >= box[3]


@pytest.mark.parametrize("sigma", [0.5, 1.0, 1.3])
def test_fast_blur_matches_a_true_gaussian(page, sigma):
    from PIL import ImageFilter

    from finscribe.synthetic.augment import _blur

    fast = np.asarray(_blur(page, sigma), dtype=np.int16)
    exact = np.asarray(page.filter(ImageFilter.GaussianBlur(sigma)), dtype=np.int16)
    assert fast.shape == exact.shape
    assert np.abs(fast - exact).mean() < 1.5, sigma  # grey levels, on 0..255
    assert np.abs(fast - np.asarray(page, dtype=np.int16)).mean() > 1.0  # and it does blur


def test_tiled_noise_and_shadow_have_the_planned_strength():
    from finscribe.synthetic.augment import DegradePlan, _photometric

    grey = Image.new("RGB", (700, 500), (128, 128, 128))
    noisy = np.asarray(_photometric(grey, DegradePlan(None, None, None, None, (8.0, 3), None)), dtype=np.float32)
    assert abs(noisy.std() - 8.0) < 0.8 and abs(noisy.mean() - 128) < 1.0
    assert (noisy[:, :, 0] == noisy[:, :, 2]).all()  # grey sensor noise, no colour speckle
    white = Image.new("RGB", (700, 500), (255, 255, 255))
    shaded = np.asarray(_photometric(white, DegradePlan(None, (0.3, 0.0, 1.0), None, None, None, None)), dtype=np.float32)
    # Direction 0: the shade grows left → right, down to 1 − depth at the far edge.
    assert shaded[:, :20].mean() > 245 and abs(shaded[:, -5:].mean() - 255 * 0.7) < 6
