"""finscribe.ingest: every image mode reaches the model as the pixels a reader sees; shapes the
processor refuses are padded or refused clearly; documents open page by page under limits."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from finscribe.ingest import (
    IngestError,
    IngestLimits,
    decode_document,
    fit_for_model,
    normalize_image,
    open_document,
    prepare_image,
    probe_document,
    read_document,
)
from finscribe.limits import MAX_ASPECT, MIN_READABLE_SIDE, MIN_SIDE, PROCESSOR_MAX_PIXELS
from finscribe.prompting import ImageReadError, load_image


def encoded(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def reopened(image: Image.Image, fmt: str = "PNG", **kwargs) -> Image.Image:
    opened = Image.open(io.BytesIO(encoded(image, fmt, **kwargs)))
    opened.load()
    return opened


def text_mask(size=(120, 60)) -> Image.Image:
    """"L" mask: 255 where a black bar of "text" is (left half, middle band), 0 elsewhere."""
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle([10, 20, size[0] // 2, 40], fill=255)
    return mask


def assert_black_text_on_white(image: Image.Image) -> None:
    rgb = np.asarray(image.convert("RGB")).astype(int)
    assert image.mode in ("L", "RGB")
    assert rgb[30, 30].tolist() == [0, 0, 0], "the text must stay black"
    assert rgb[5, 100].tolist() == [255, 255, 255], "the background must be white"


def test_transparent_backgrounds_are_composited_on_white():
    mask = text_mask()
    black = Image.new("RGBA", mask.size, (0, 0, 0, 0))
    black.putalpha(mask)  # black text, fully transparent (black) elsewhere
    assert np.asarray(black.convert("RGB")).max() == 0  # the old path: an all-black image
    assert_black_text_on_white(normalize_image(reopened(black)))
    la = Image.merge("LA", (Image.new("L", mask.size, 0), mask))
    assert_black_text_on_white(normalize_image(reopened(la)))
    palette = Image.new("P", mask.size, 0)
    palette.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    palette.paste(1, mask=Image.eval(mask, lambda v: 255 - v))  # index 1 = white background ...
    palette.info["transparency"] = 1  # ... declared transparent: composited on white stays white
    palette_png = reopened(palette)
    assert palette_png.mode == "P" and "transparency" in palette_png.info
    assert_black_text_on_white(normalize_image(palette_png))
    # a palette whose transparent index is black: black text on transparent black → on white
    palette.putpalette([0, 0, 0, 0, 0, 0] + [0] * 762)
    assert_black_text_on_white(normalize_image(reopened(palette)))


def test_sixteen_bit_greyscale_keeps_its_contrast():
    values = np.full((60, 120), 60000, dtype=np.uint16)  # light grey paper
    values[20:41, 10:61] = 2000  # dark text
    scan = reopened(Image.fromarray(values))
    assert scan.mode == "I;16"
    assert np.asarray(scan.convert("L")).min() == 255  # Pillow's own conversion: blank
    out = np.asarray(normalize_image(scan))
    assert out[30, 30] == 2000 >> 8 and out[5, 100] == 60000 >> 8
    tiff = reopened(Image.fromarray(values), "TIFF")
    assert np.array_equal(np.asarray(normalize_image(tiff)), out)


def test_exif_orientation_is_applied():
    upright = Image.new("RGB", (80, 40), "white")
    ImageDraw.Draw(upright).rectangle([0, 0, 9, 9], fill="red")  # a mark at the top-left
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a phone held sideways stores
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    photo = reopened(stored, "JPEG", exif=exif.tobytes(), quality=95)
    assert photo.size == (40, 80)
    out = normalize_image(photo)
    assert out.size == (80, 40)
    r, g, b = out.getpixel((3, 3))
    assert r > 200 and g < 60 and b < 60


def test_cmyk_becomes_rgb():
    cmyk = Image.new("CMYK", (60, 40), (0, 0, 0, 0))  # no ink: white paper
    ImageDraw.Draw(cmyk).rectangle([0, 0, 29, 39], fill=(0, 0, 0, 255))  # black ink
    out = normalize_image(reopened(cmyk, "JPEG", quality=95))
    assert out.mode == "RGB"
    assert max(out.getpixel((10, 20))) < 30 and min(out.getpixel((50, 20))) > 225


@pytest.mark.parametrize("mode", ["1", "L", "RGB", "I", "F", "YCbCr"])
def test_other_modes_become_l_or_rgb_with_the_same_picture(mode):
    base = Image.new("L", (60, 40), 255)
    ImageDraw.Draw(base).rectangle([0, 0, 29, 39], fill=0)
    image = base.convert(mode) if mode != "F" else Image.fromarray(np.asarray(base, dtype=np.float32) / 255.0, "F")
    out = normalize_image(image).convert("L")
    assert out.getpixel((10, 20)) < 20 and out.getpixel((50, 20)) > 235


def test_shapes_the_processor_refuses_are_padded_or_refused():
    with pytest.raises(IngestError) as info:
        fit_for_model(Image.new("RGB", (600, 1), "white"))
    assert info.value.status == 422 and "600x1" in info.value.message and f"{MIN_READABLE_SIDE} px" in info.value.message
    line = fit_for_model(Image.new("RGB", (346, 18), "white"))  # a text line: the processor scales it up itself
    assert line.size == (346, 18)
    thin = fit_for_model(Image.new("RGB", (4000, 10), "white"))  # 400:1 and thin: padded, not refused
    assert thin.width == 4000 and thin.width / thin.height < MAX_ASPECT
    strip = Image.new("RGB", (MIN_SIDE * 300, MIN_SIDE), "black")  # 300:1, refused by the processor as is
    out = fit_for_model(strip)
    assert out.width == strip.width and out.width / out.height < MAX_ASPECT
    assert out.getpixel((5, 5)) == (0, 0, 0) and out.getpixel((5, out.height - 1)) == (255, 255, 255)
    big = fit_for_model(Image.new("L", (4000, 3000), 128))
    assert big.mode == "RGB" and big.width * big.height <= PROCESSOR_MAX_PIXELS
    assert abs(big.width / big.height - 4 / 3) < 0.01


def test_padded_strips_go_through_the_processor(tiny_model):
    _, processor = tiny_model
    from finscribe.prompting import encode_prompt

    for size in ((MIN_SIDE * 250, MIN_SIDE), (4000, 10), (10, 4001)):  # 250:1, and thin strips the processor scales up
        inputs = encode_prompt(processor, Image.new("RGB", size, "white"), "Totals to JSON:")
        assert inputs["pixel_values"].shape[0] > 0
    with pytest.raises(ImageReadError, match="too small to read, rejected"):
        encode_prompt(processor, Image.new("RGB", (600, 1), "white"), "Totals to JSON:")


def test_load_image_uses_the_same_normalisation(tmp_path):
    values = np.full((60, 120), 50000, dtype=np.uint16)
    path = tmp_path / "scan16.png"
    Image.fromarray(values).save(path)
    from_file = load_image(path)
    assert from_file.mode == "RGB" and from_file.getpixel((0, 0)) == (50000 >> 8,) * 3
    assert np.array_equal(np.asarray(from_file), np.asarray(prepare_image(Image.open(path))))
    rgba = Image.new("RGBA", (60, 40), (0, 0, 0, 0))
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)


def test_documents_open_page_by_page_with_limits_checked_first(tmp_path):
    frames = [Image.new("RGB", (100, 80), c) for c in ("white", "black")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:])
    with open_document(buffer.getvalue()) as document:
        assert document.kind == "tiff" and [p.number for p in document.pages] == [1, 2]
        assert document.pages[0].decode_bytes >= 100 * 80 * 4
        assert document.pages[1].decode().getpixel((0, 0)) == (0, 0, 0)
    with pytest.raises(IngestError) as info:
        decode_document(buffer.getvalue(), IngestLimits(max_pages=1))
    assert info.value.status == 413 and "2 pages" in info.value.message
    path = tmp_path / "two.tiff"
    path.write_bytes(buffer.getvalue())
    kind, pages = read_document(path)
    assert kind == "tiff" and len(pages) == 2
    assert probe_document(path) == ("tiff", 2)
    bomb = tmp_path / "bomb.png"
    Image.new("1", (8000, 6000)).save(bomb)  # 48 MP in a few KB: refused from the header
    with pytest.raises(IngestError, match=r"bomb\.png: the image is 8000x6000 = 48,000,000 pixels"):
        probe_document(bomb)
    (tmp_path / "x.gif").write_bytes(b"GIF89a" + b"\x00" * 20)
    with pytest.raises(IngestError, match=r"x\.gif: the file is not a PNG"):
        read_document(tmp_path / "x.gif")
