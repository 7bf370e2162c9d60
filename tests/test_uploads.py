"""Upload decoding and limits (finscribe.deploy.uploads): type sniffing, bombs, PDFs, boxes."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from finscribe.deploy.uploads import (
    UploadError,
    UploadLimits,
    decode_upload,
    parse_boxes,
    sniff_kind,
)

LIMITS = UploadLimits(max_upload_bytes=2_000_000, max_pages=3, max_pixels=4_000_000, pdf_dpi=72)


def image_bytes(fmt: str, size=(120, 80), **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (250, 250, 250)).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def pdf_bytes(pages: int = 1, size_pt=(200, 100)) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=size_pt)
    for i in range(pages):
        pdf.add_page()
        pdf.set_font("helvetica", size=12)
        pdf.text(10, 30, f"Invoice page {i + 1}")
    return bytes(pdf.output())


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height, with a tiny (invalid) data stream: a bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt,kind", [("PNG", "png"), ("JPEG", "jpeg"), ("TIFF", "tiff")])
def test_images_decode_to_one_rgb_page(fmt, kind):
    got_kind, pages = decode_upload(image_bytes(fmt), f"image/{kind}", f"scan.{kind}", LIMITS)
    assert got_kind == kind and len(pages) == 1
    assert pages[0].mode == "RGB" and pages[0].size == (120, 80)


def test_pdf_pages_render_at_the_configured_dpi():
    kind, pages = decode_upload(pdf_bytes(2), "application/pdf", "invoice.pdf", LIMITS)
    assert kind == "pdf" and [p.size for p in pages] == [(200, 100), (200, 100)]
    _, pages = decode_upload(pdf_bytes(1), "application/pdf", "x.pdf", UploadLimits(pdf_dpi=144))
    assert pages[0].size == (400, 200)


def test_sniffing_ignores_names_and_finds_the_real_type():
    assert sniff_kind(image_bytes("PNG")) == "png"
    assert sniff_kind(pdf_bytes()) == "pdf"
    assert sniff_kind(b"GIF89a....") is None
    # A generic content type and no extension: the bytes decide.
    assert decode_upload(image_bytes("JPEG"), "application/octet-stream", None, LIMITS)[0] == "jpeg"


@pytest.mark.parametrize("data,ctype,name,status,words", [
    (b"", "image/png", "a.png", 400, "empty"),
    (b"hello world", "text/plain", "a.txt", 415, "content type"),
    (b"just text, not an image", "image/png", "a.png", 415, "not a PNG"),
    (b"%PDF-1.4 rest", "image/png", "a.png", 415, "content is PDF"),
    (None, "image/png", "scan.pdf", 415, "name ends in '.pdf'"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png", "a.png", 422, "could not be read"),
    (b"%PDF-1.7\n1 0 obj garbage", "application/pdf", "a.pdf", 422, "could not be opened"),
])
def test_bad_uploads_get_a_specific_status_and_message(data, ctype, name, status, words):
    data = image_bytes("PNG") if data is None else data
    with pytest.raises(UploadError) as info:
        decode_upload(data, ctype, name, LIMITS)
    assert info.value.status == status
    assert words in info.value.message


def test_truncated_jpeg_is_422():
    data = image_bytes("JPEG", size=(400, 300))
    with pytest.raises(UploadError) as info:
        decode_upload(data[: len(data) // 2], "image/jpeg", "a.jpg", LIMITS)
    assert info.value.status == 422


def test_pixel_bomb_is_refused_from_its_header_before_decoding():
    bomb = png_header_only(30_000, 30_000)  # 900 M pixels claimed, 100 bytes sent
    assert len(bomb) < 200
    with pytest.raises(UploadError) as info:
        decode_upload(bomb, "image/png", "bomb.png", LIMITS)
    assert info.value.status == 413 and "pixels" in info.value.message


def test_page_and_size_limits():
    with pytest.raises(UploadError) as info:
        decode_upload(pdf_bytes(4), "application/pdf", "a.pdf", LIMITS)
    assert info.value.status == 413 and "4 pages" in info.value.message
    with pytest.raises(UploadError) as info:  # a giant media box at the render dpi
        decode_upload(pdf_bytes(1, size_pt=(3000, 3000)), "application/pdf", "a.pdf", LIMITS)
    assert info.value.status == 413
    with pytest.raises(UploadError) as info:
        decode_upload(b"\x89PNG" + b"\x00" * 3_000_000, "image/png", "a.png", LIMITS)
    assert info.value.status == 413


def test_boxes_field():
    assert parse_boxes(None, 2) == [None, None]
    boxes = parse_boxes('{"totals_section": [1, 2, 30, 40]}', 2)
    assert boxes == [{"totals_section": [1, 2, 30, 40]}] * 2
    assert parse_boxes('[{"vendor_block": [0, 0, 5, 5]}, {}]', 2)[1] == {}
    for text, words in [("{", "not valid JSON"), ('{"nope": [0, 0, 1, 1]}', "unknown region"),
                        ('{"totals_section": [0, 0, 1]}', "expected [x0, y0, x1, y1]"),
                        ('{"totals_section": [5, 5, 1, 1]}', "empty"), ("[{}]", "1 box maps for 2")]:
        with pytest.raises(UploadError) as info:
            parse_boxes(text, 2)
        assert info.value.status == 422 and words in info.value.message


def test_boxes_must_be_finite_and_can_be_given_per_page():
    for text in ('{"totals_section": [0, 0, Infinity, 40]}', '{"totals_section": [0, 0, 1e999, 40]}',
                 '{"totals_section": [NaN, 0, 10, 40]}', '[{"totals_section": [0, -Infinity, 10, 40]}, null]'):
        with pytest.raises(UploadError) as info:
            parse_boxes(text, 2)
        assert info.value.status == 422 and ("not finite" in info.value.message or "not a coordinate" in info.value.message)
    assert parse_boxes('{"2": {"totals_section": [1, 2, 30, 40]}}', 3) == [None, {"totals_section": [1, 2, 30, 40]}, None]
    assert parse_boxes('[null, {"vendor_block": [0, 0, 5, 5]}]', 2) == [None, {"vendor_block": [0, 0, 5, 5]}]
    with pytest.raises(UploadError, match=r"page\(s\) \[0, 4\]"):
        parse_boxes('{"0": {}, "4": {}}', 3)


def test_decoded_pixel_budget_waits_then_refuses():
    import threading
    import time

    from finscribe.deploy.intake import PixelBudget

    budget = PixelBudget(100, wait_s=0.2)
    first, second = budget.reservation(), budget.reservation()
    first.set(80)
    start = time.monotonic()
    with pytest.raises(UploadError) as info:
        second.set(30)
    assert info.value.status == 503 and time.monotonic() - start >= 0.2 and budget.used == 80
    with pytest.raises(UploadError) as info:
        second.set(101)  # could never fit
    assert info.value.status == 413
    budget.wait_s = 5
    threading.Timer(0.1, first.release).start()
    second.set(30)  # waits for the first to give its share back
    assert budget.used == 30 and budget.peak == 80
    second.set(10)
    second.release()
    assert budget.used == 0
