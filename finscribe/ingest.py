"""Documents in: a file (PNG, JPEG, TIFF or PDF; one page or many) → the RGB pages the model sees.

Training, evaluation and serving all go through here, so a model is served exactly the pixels it
was trained and evaluated on:

    from finscribe.ingest import read_document, prepare_image
    kind, pages = read_document("invoice.pdf")        # normalised pages, full resolution
    model_input = prepare_image(pages[0])              # what `predict` feeds the processor

* `sniff_kind` / `open_document`: the type comes from the magic bytes; every page's size is read
  from its header, and the page count and pixel limits are checked, BEFORE any pixel is decoded
  (decompression bombs). `PageSource.decode_bytes` is the memory one page takes to decode, so a
  server can reserve it first (`finscribe.deploy.server` keeps a shared budget).
* `normalize_image`: EXIF orientation applied (phone photos), 16-bit and float greyscale scaled to
  8 bits (not clipped to white), transparency composited on white (black text on a transparent
  background stays black on white), CMYK through its ICC profile when it has one. Returns "L" or
  "RGB" (greyscale stays one byte per pixel until the page is cropped and downscaled).
* `fit_for_model`: the shape PaddleOCR-VL's processor accepts: sides under `MIN_READABLE_SIDE`
  are refused (no line of text fits; a 1-pixel-tall image), images over `PROCESSOR_MAX_PIXELS` are downscaled as the processor
  would (build-dataset stores them the same way), and strips longer than `MAX_ASPECT`:1, which the
  processor refuses, are padded with white.

Refusals are `IngestError`s with the HTTP status a service answers with (413 too large, 415 not a
supported type, 422 unreadable or unusable) and a one-line message saying what to do.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
from PIL import ExifTags, Image, ImageCms, ImageOps, UnidentifiedImageError

from finscribe.errors import FinScribeError
from finscribe.limits import MAX_ASPECT, MAX_PIXELS, MIN_READABLE_SIDE, PROCESSOR_MAX_PIXELS, downscaled_size

KINDS = ("png", "jpeg", "tiff", "pdf")
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "tiff": "TIFF"}
# Bytes per pixel Pillow holds for a decoded image of each mode (RGB is stored as 4 bytes).
_STORED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
PDF_RENDER_BYTES = 4  # pdfium renders BGRx
RESIZE_BYTES = 2  # a Lanczos downscale's first pass (full height x new width, RGBX), per source pixel, at most


class IngestError(FinScribeError, ValueError):
    """A document that cannot be used: `status` is the HTTP status a service answers with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class IngestLimits:
    """What one document may be: bytes, pages, pixels per page, and the dpi PDFs render at."""

    max_upload_bytes: int = 20 * 1024 * 1024
    max_pages: int = 20
    max_pixels: int = MAX_PIXELS
    pdf_dpi: int = 150


DEFAULT_LIMITS = IngestLimits()


def sniff_kind(data: bytes) -> str | None:
    """'png' | 'jpeg' | 'tiff' | 'pdf' from the first bytes, or None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    # The PDF header may follow a little junk; readers accept it within the first 1 KiB.
    if b"%PDF-" in data[:1024]:
        return "pdf"
    return None


# ----------------------------------------------------------------------------- pixels


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(ExifTags.Base.Orientation, 1) or 1)
    except (ValueError, TypeError, OSError, SyntaxError):  # a broken EXIF block: keep the pixels as stored
        return 1


def _greyscale_8bit(image: Image.Image) -> Image.Image:
    """16-bit / 32-bit / float greyscale → "L" scaled over the type's range (Pillow's own
    conversion clips at 255, which turns a 16-bit scan almost white)."""
    values = np.asarray(image)
    if image.mode.startswith("I;16"):
        out = values >> 8  # 0..65535 → 0..255
    elif image.mode == "F":
        top = float(np.nanmax(values)) if values.size else 0.0
        out = np.nan_to_num(values * (255.0 if top <= 1.0 else 1.0), nan=255.0)
    else:  # "I": 32-bit ints, in practice 16-bit data (TIFF, PNG via older Pillow)
        out = values / 257.0 if values.size and values.max() > 255 else values
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "L")


def _on_white(image: Image.Image) -> Image.Image:
    """Composite an image with alpha (any mode Pillow can turn into LA/RGBA) on white."""
    grey = image.mode in ("LA", "La") or (image.mode == "L" and "transparency" in image.info)
    rgba = image.convert("LA" if grey else "RGBA")
    background = Image.new("L" if grey else "RGB", image.size, "white")
    background.paste(rgba.convert(background.mode), mask=rgba.getchannel("A"))
    return background


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("LA", "La", "RGBA", "RGBa", "PA") or "transparency" in image.info


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    icc = image.info.get("icc_profile")
    if icc:
        try:
            return ImageCms.profileToProfile(image, ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                             ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):  # an unusable profile: Pillow's formula below
            pass
    return image.convert("RGB")


def normalize_image(image: Image.Image) -> Image.Image:
    """One decoded image → upright "L" or "RGB" with the pixels a reader sees (see the module doc)."""
    if _orientation(image) != 1:
        image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in ("L", "RGB") and "transparency" not in image.info:
        return image
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I") or mode == "F":
        return _greyscale_8bit(image)
    if _has_alpha(image):
        return _on_white(image)
    if mode == "CMYK":
        return _cmyk_to_rgb(image)
    return image.convert("RGB")  # P without transparency, YCbCr, LAB, HSV, RGBX, ...


def fit_for_model(image: Image.Image, what: str = "the image") -> Image.Image:
    """An RGB image PaddleOCR-VL's processor takes: downscaled to `PROCESSOR_MAX_PIXELS`, padded
    with white when longer than `MAX_ASPECT`:1; a side under `MIN_READABLE_SIDE` px is an IngestError."""
    width, height = image.size
    if min(width, height) < MIN_READABLE_SIDE:
        raise IngestError(422, f"{what} is {width}x{height} pixels: too small to read, rejected; "
                               f"each side must be at least {MIN_READABLE_SIDE} px (send a larger scan or box)")
    long_side = max(width, height)
    # The padded canvas keeps the processor's ratio limit with one to spare for its rounding.
    canvas = (width, height)
    if long_side / min(width, height) >= MAX_ASPECT:
        short = math.ceil(long_side / (MAX_ASPECT - 1))
        canvas = (width, short) if width >= height else (short, height)
    target = downscaled_size(*canvas, PROCESSOR_MAX_PIXELS)
    scale = target[0] / canvas[0]
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    if target != image.size:
        padded = Image.new(image.mode, target, "white")
        padded.paste(image, (0, 0))  # top-left: a strip of text reads like the top of a page
        image = padded
    return image.convert("RGB")


def prepare_image(image: Image.Image, what: str = "the image") -> Image.Image:
    """`fit_for_model(normalize_image(image))`: what the model is given, in every stage."""
    return fit_for_model(normalize_image(image), what)


# ----------------------------------------------------------------------------- documents


def _check_pixels(width: int, height: int, limits: IngestLimits, what: str) -> None:
    if width <= 0 or height <= 0:
        raise IngestError(422, f"{what} has an empty size {width}x{height}")
    if width * height > limits.max_pixels:
        raise IngestError(413, f"{what} is {width}x{height} = {width * height:,} pixels, over the limit of "
                               f"{limits.max_pixels:,}; send a smaller scan (e.g. 200 dpi)")


@dataclass
class PageSource:
    """One page of an opened document, known from its header: decode it with `decode()`."""

    number: int
    width: int
    height: int
    mode: str
    what: str
    _decode: Callable[[], Image.Image] = field(repr=False)

    @property
    def decode_bytes(self) -> int:
        """Memory the page may take at its peak while it is decoded, normalised and cut down:
        the decoded pixels, a normalised (or rotated) RGB copy, and a resize's intermediate."""
        stored = PDF_RENDER_BYTES if self.mode == "pdf" else _STORED_BYTES.get(self.mode, 4)
        return self.width * self.height * (stored + 4 + RESIZE_BYTES)

    def decode(self) -> Image.Image:
        """The normalised page ("L" or "RGB", full resolution); unreadable pixels are an IngestError."""
        return self._decode()


@dataclass
class Document:
    kind: str
    pages: list[PageSource]


def _image_pages(data: bytes, kind: str, limits: IngestLimits) -> tuple[Callable[[], None], list[PageSource]]:
    try:
        # Our own pixel check is the limit; PIL's global bomb guard must not pre-empt it with a
        # warning, but its hard error (2x its default) still means "too big".
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[PIL_FORMATS[kind]])
    except Image.DecompressionBombError as err:
        raise IngestError(413, f"image too large: {err}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise IngestError(422, f"the {kind.upper()} file could not be read (corrupt or truncated): {err}") from None
    frames = getattr(image, "n_frames", 1)
    if frames > limits.max_pages:
        image.close()
        raise IngestError(413, f"the TIFF has {frames} pages, over the limit of {limits.max_pages}; split it")
    pages = []
    for index in range(frames):
        what = f"page {index + 1}" if frames > 1 else "the image"
        try:
            image.seek(index)
        except (OSError, EOFError, ValueError) as err:
            raise IngestError(422, f"{what} could not be read (corrupt {kind.upper()}): {err}") from None
        _check_pixels(image.width, image.height, limits, what)  # header size, before decoding

        def decode(index: int = index, what: str = what) -> Image.Image:
            try:
                image.seek(index)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                    image.load()
                    page = normalize_image(image)
                    # the next seek rewrites the opened image in place: a frame of many is copied out
                    return page.copy() if page is image and frames > 1 else page
            except (OSError, SyntaxError, ValueError, EOFError) as err:
                raise IngestError(422, f"{what} could not be decoded (corrupt or truncated {kind.upper()}): {err}") from None

        pages.append(PageSource(index + 1, image.width, image.height, image.mode, what, decode))
    # Not closed with the document: Image.close() would free the pixels of a page handed out;
    # the in-memory file goes with the garbage collector.
    return lambda: None, pages


def _pdf_pages(data: bytes, limits: IngestLimits) -> tuple[Callable[[], None], list[PageSource]]:
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as err:
        raise IngestError(422, f"the PDF could not be opened (corrupt, truncated or encrypted): {err}") from None
    count = len(pdf)
    if count == 0:
        pdf.close()
        raise IngestError(422, "the PDF has no pages")
    if count > limits.max_pages:
        pdf.close()
        raise IngestError(413, f"the PDF has {count} pages, over the limit of {limits.max_pages}; split it")
    scale = limits.pdf_dpi / 72.0
    pages = []
    for index in range(count):
        what = f"PDF page {index + 1}"
        try:
            page = pdf[index]
            try:
                width_pt, height_pt = page.get_size()
            finally:
                page.close()
        except pdfium.PdfiumError as err:
            pdf.close()
            raise IngestError(422, f"{what} could not be read: {err}") from None
        width, height = round(width_pt * scale), round(height_pt * scale)
        try:
            _check_pixels(width, height, limits, f"{what} at {limits.pdf_dpi} dpi")
        except IngestError:
            pdf.close()
            raise

        def decode(index: int = index, what: str = what) -> Image.Image:
            page = pdf[index]
            try:
                return page.render(scale=scale).to_pil().convert("RGB")
            except pdfium.PdfiumError as err:
                raise IngestError(422, f"{what} could not be rendered: {err}") from None
            finally:
                page.close()

        pages.append(PageSource(index + 1, width, height, "pdf", what, decode))
    return pdf.close, pages


@contextlib.contextmanager
def open_document(data: bytes, limits: IngestLimits = DEFAULT_LIMITS, kind: str | None = None) -> Iterator[Document]:
    """Open document bytes: every page's size checked from its header, nothing decoded yet.

        with open_document(data, limits) as document:
            for source in document.pages:
                page = source.decode()
    """
    if not data:
        raise IngestError(400, "the file is empty")
    if len(data) > limits.max_upload_bytes:
        raise IngestError(413, f"the file is {len(data):,} bytes, over the limit of {limits.max_upload_bytes:,}")
    kind = kind or sniff_kind(data)
    if kind is None:
        raise IngestError(415, "the file is not a PNG, JPEG, TIFF or PDF (its first bytes match none of them)")
    close, pages = _pdf_pages(data, limits) if kind == "pdf" else _image_pages(data, kind, limits)
    try:
        yield Document(kind, pages)
    finally:
        close()


def decode_document(data: bytes, limits: IngestLimits = DEFAULT_LIMITS, kind: str | None = None) -> tuple[str, list[Image.Image]]:
    """(kind, normalised full-resolution pages) of document bytes."""
    with open_document(data, limits, kind) as document:
        return document.kind, [source.decode() for source in document.pages]


def probe_document(path: str | Path, limits: IngestLimits = DEFAULT_LIMITS) -> tuple[str, int]:
    """(kind, page count) of a document file, from its headers only (nothing decoded): a cheap
    check before a long job; errors are IngestErrors naming the file."""
    path = Path(path)
    try:
        with open_document(_read_bytes(path), limits) as document:
            return document.kind, len(document.pages)
    except IngestError as err:
        raise IngestError(err.status, f"{path}: {err.message}") from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise IngestError(422, f"cannot read the file ({err.strerror or err}); pass an existing "
                               "PNG, JPEG, TIFF or PDF") from None


def read_document(path: str | Path, limits: IngestLimits = DEFAULT_LIMITS) -> tuple[str, list[Image.Image]]:
    """(kind, normalised pages) of a document file; errors are IngestErrors naming the file."""
    path = Path(path)
    try:
        return decode_document(_read_bytes(path), limits)
    except IngestError as err:
        raise IngestError(err.status, f"{path}: {err.message}") from None
