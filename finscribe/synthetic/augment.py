"""Scan/photo degradations of a rendered page; the labels never change and the size stays the same.

    from finscribe.synthetic.augment import degrade, transform_box
    scan = degrade(page.image, seed=42, strength="medium")        # "light" | "medium" | "heavy"
    box = transform_box(page.boxes["totals_section"], page.image.size, seed=42, strength="medium")

Each effect (small rotation around the centre with white fill, soft shadow gradient,
contrast/brightness change, Gaussian blur, sensor noise, JPEG re-encoding) is switched on or off
and parameterised by `random.Random` seeded from (seed, strength) — never the global RNG — so a
page degrades identically every time. `transform_box` maps a region box through the same
rotation, for crops taken from the degraded page.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageFilter

# strength -> (probability, low, high) per effect; the rotation is in degrees (≤ 1.5).
_STRENGTHS: dict[str, dict[str, tuple[float, float, float]]] = {
    "light": {"rotate": (0.3, 0.1, 0.4), "shadow": (0.2, 0.08, 0.18), "contrast": (0.4, 0.9, 1.05),
              "blur": (0.3, 0.3, 0.6), "noise": (0.3, 2.0, 5.0), "jpeg": (0.5, 55, 70)},
    "medium": {"rotate": (0.5, 0.2, 0.8), "shadow": (0.4, 0.12, 0.3), "contrast": (0.5, 0.8, 1.1),
               "blur": (0.5, 0.4, 0.9), "noise": (0.5, 3.0, 8.0), "jpeg": (0.6, 40, 70)},
    "heavy": {"rotate": (0.7, 0.4, 1.5), "shadow": (0.6, 0.2, 0.45), "contrast": (0.6, 0.7, 1.15),
              "blur": (0.6, 0.6, 1.3), "noise": (0.7, 5.0, 12.0), "jpeg": (0.8, 30, 60)},
}
STRENGTHS: tuple[str, ...] = tuple(_STRENGTHS)
_NOISE_TILE = 256


@dataclass(frozen=True)
class DegradePlan:
    """The effects one (seed, strength) applies; None = effect off."""

    angle: float | None  # degrees, counter-clockwise
    shadow: tuple[float, float, float] | None  # (depth 0..1, direction radians, ramp gamma)
    contrast: tuple[float, float] | None  # (gain, brightness offset in grey levels)
    blur: float | None  # Gaussian radius in pixels
    noise: tuple[float, int] | None  # (sigma in grey levels, numpy seed)
    jpeg: int | None  # quality


def plan(seed: int, strength: str = "medium") -> DegradePlan:
    """Draw the effects for (seed, strength); at least one effect is always on."""
    if strength not in _STRENGTHS:
        raise ValueError(f"unknown degradation strength {strength!r}; choose one of {', '.join(STRENGTHS)}")
    params = _STRENGTHS[strength]
    rng = random.Random(f"degrade:{seed}:{strength}")
    on = {name: rng.random() < prob for name, (prob, _, _) in params.items()}
    if not any(on.values()):
        on["jpeg"] = True

    def draw(name: str) -> float:
        _, low, high = params[name]
        return rng.uniform(low, high)

    # Every value is drawn whether or not its effect is on, so switching one effect never
    # changes the parameters of the others.
    angle = draw("rotate") * rng.choice((-1, 1))
    shadow = (draw("shadow"), rng.uniform(0, 2 * math.pi), rng.uniform(1.0, 2.5))
    contrast = (draw("contrast"), rng.uniform(-12, 12))
    blur, sigma, noise_seed = draw("blur"), draw("noise"), rng.getrandbits(32)
    quality = round(draw("jpeg"))
    return DegradePlan(
        angle=angle if on["rotate"] else None,
        shadow=shadow if on["shadow"] else None,
        contrast=contrast if on["contrast"] else None,
        blur=blur if on["blur"] else None,
        noise=(sigma, noise_seed) if on["noise"] else None,
        jpeg=quality if on["jpeg"] else None,
    )


def _photometric(image: Image.Image, p: DegradePlan) -> Image.Image:
    """Contrast/brightness (a 256-entry table), shadow and noise, each one C pass of Pillow
    (ImageChops) over the page; numpy only builds the small fields that are blown up or tiled."""
    if p.contrast is not None:
        gain, offset = p.contrast
        table = np.clip((np.arange(256, dtype=np.float32) - 128.0) * gain + 128.0 + offset, 0, 255)
        image = image.point([round(float(v)) for v in table] * 3)
    width, height = image.size
    if p.shadow is not None:
        depth, direction, gamma = p.shadow
        # The ramp is smooth, so it is computed on a grid 8× coarser and resized up bilinearly.
        small = (max(2, -(-width // 8)), max(2, -(-height // 8)))
        xs = np.linspace(-0.5, 0.5, small[0], dtype=np.float32) * math.cos(direction)
        ys = np.linspace(-0.5, 0.5, small[1], dtype=np.float32) * math.sin(direction)
        ramp = np.clip(ys[:, None] + xs[None, :] + 0.5, 0.0, 1.0) ** gamma  # 0 lit side → 1 shaded side
        light = np.rint(255.0 * (1.0 - depth * ramp)).astype(np.uint8)
        field = Image.fromarray(light, "L").resize((width, height), Image.Resampling.BILINEAR)
        image = ImageChops.multiply(image, field.convert("RGB"))  # a·light/255
    if p.noise is not None:
        sigma, noise_seed = p.noise
        # A 256×256 tile of Gaussian noise (stored around grey 128), shifted by a random offset and
        # repeated: drawing a million normals per page costs more than the rest, and the repeat is invisible.
        rng = np.random.default_rng(noise_seed)
        tile = rng.standard_normal((_NOISE_TILE, _NOISE_TILE), dtype=np.float32) * np.float32(sigma) + 128.0
        tile = np.clip(np.rint(tile), 0, 255).astype(np.uint8)
        dy, dx = (int(v) for v in rng.integers(0, _NOISE_TILE, size=2))
        reps = (-(-(height + dy) // _NOISE_TILE), -(-(width + dx) // _NOISE_TILE))
        noise = np.ascontiguousarray(np.tile(tile, reps)[dy : dy + height, dx : dx + width])
        image = ImageChops.add(image, Image.fromarray(noise, "L").convert("RGB"), 1.0, -128)  # clip(a + n − 128)
    return image


def _blur(image: Image.Image, sigma: float) -> Image.Image:
    if sigma > 0.8:
        # Blur a half-size copy and scale it back up: the 2×2 box average and the bilinear
        # upsampling add a blur of σ² ≈ 0.6, the rest comes from a Gaussian on a quarter of the
        # pixels. ~2× cheaper than a full-size GaussianBlur, within 0.5 grey levels of it on a page.
        width, height = image.size
        rest = math.sqrt(max(0.05, sigma * sigma - 0.6)) / 2
        small = image.reduce(2).filter(ImageFilter.GaussianBlur(rest))
        return small.resize((width, height), Image.Resampling.BILINEAR)
    # A 3×3 Gaussian is all a sub-pixel blur needs and costs half of GaussianBlur's three box passes.
    side = math.exp(-1 / (2 * sigma * sigma))
    weights = [side * side, side, side * side, side, 1.0, side, side * side, side, side * side]
    return image.filter(ImageFilter.Kernel((3, 3), weights, scale=sum(weights)))


def degrade(image: Image.Image, seed: int, strength: str = "medium") -> Image.Image:
    """A degraded copy of `image` (same size and mode) as if scanned or photographed."""
    p = plan(seed, strength)
    mode = image.mode
    out = image.convert("RGB")
    if p.angle is not None:
        # Bilinear: at ≤ 1.5° bicubic looks the same and costs ~2.5× more.
        out = out.rotate(p.angle, resample=Image.Resampling.BILINEAR, fillcolor=(255, 255, 255))
    if p.shadow is not None or p.contrast is not None or p.noise is not None:
        out = _photometric(out, p)
    if p.blur is not None:
        out = _blur(out, p.blur)
    if p.jpeg is not None:
        buffer = io.BytesIO()
        out.save(buffer, "JPEG", quality=p.jpeg)
        buffer.seek(0)
        out = Image.open(buffer).convert("RGB")
    return out.convert(mode) if mode in ("L", "RGB") else out


def transform_box(box, size: tuple[int, int], seed: int, strength: str = "medium") -> tuple[int, int, int, int]:
    """Where `box` (x0, y0, x1, y1) lies after `degrade(seed, strength)`: the bounding box of its
    rotated corners, clipped to the page. Unchanged when that plan has no rotation."""
    angle = plan(seed, strength).angle
    x0, y0, x1, y1 = box
    if angle is None:
        return tuple(int(v) for v in box)
    width, height = size
    cx, cy = width / 2, height / 2
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    # PIL rotates counter-clockwise on screen; with y pointing down that maps (dx, dy) to
    # (dx·cos + dy·sin, −dx·sin + dy·cos) around the centre.
    xs, ys = [], []
    for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1)):
        dx, dy = x - cx, y - cy
        xs.append(cx + dx * cos + dy * sin)
        ys.append(cy - dx * sin + dy * cos)
    return (max(0, math.floor(min(xs))), max(0, math.floor(min(ys))),
            min(width, math.ceil(max(xs))), min(height, math.ceil(max(ys))))
