"""Turn an uploaded file (PNG, JPEG, TIFF or PDF bytes) into page images, under explicit limits.

Everything a client sends is treated as hostile: the type is sniffed from the magic bytes and
must agree with the declared content type and the filename's extension; an image's pixel count
is checked from its header BEFORE its pixels are decoded (decompression bombs); a PDF's page
count and every page's rendered size are checked before rendering. Each refusal is an
`UploadError` carrying the HTTP status the server answers with and a message saying what to do.
Nothing here writes to disk; the filename is only compared, never used as a path.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass

import pypdfium2 as pdfium
from PIL import Image, UnidentifiedImageError

from finscribe.data.schema import REGIONS
from finscribe.errors import FinScribeError
from finscribe.limits import MAX_PIXELS

# What we accept, by sniffed kind: its content types and filename extensions.
KINDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "png": (frozenset({"image/png"}), frozenset({".png"})),
    "jpeg": (frozenset({"image/jpeg", "image/jpg", "image/pjpeg"}), frozenset({".jpg", ".jpeg"})),
    "tiff": (frozenset({"image/tiff", "image/tif"}), frozenset({".tif", ".tiff"})),
    "pdf": (frozenset({"application/pdf", "application/x-pdf"}), frozenset({".pdf"})),
}
# Content types that say nothing about the file; sniffing decides.
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "tiff": "TIFF"}


class UploadError(FinScribeError, ValueError):
    """A refused upload: `status` is the HTTP status to answer with, the message says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class UploadLimits:
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pages: int = 20
    max_pixels: int = MAX_PIXELS
    pdf_dpi: int = 150


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


def check_type(data: bytes, content_type: str | None, filename: str | None) -> str:
    """The sniffed kind, after checking it against the declared content type and extension."""
    declared = (content_type or "").split(";")[0].strip().lower()
    known_types = set().union(*(types for types, _ in KINDS.values()))
    if declared not in GENERIC_TYPES and declared not in known_types:
        raise UploadError(415, f"unsupported content type {declared!r}; upload a PNG, JPEG, TIFF or PDF file")
    kind = sniff_kind(data)
    if kind is None:
        raise UploadError(415, "the file is not a PNG, JPEG, TIFF or PDF (its first bytes match none of them)")
    types, extensions = KINDS[kind]
    if declared not in GENERIC_TYPES and declared not in types:
        raise UploadError(415, f"the file's content is {kind.upper()} but it was sent as {declared!r}")
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if filename and "." in filename else ""
    all_extensions = set().union(*(exts for _, exts in KINDS.values()))
    if suffix in all_extensions and suffix not in extensions:
        raise UploadError(415, f"the file's content is {kind.upper()} but its name ends in {suffix!r}")
    return kind


def _check_pixels(width: int, height: int, limits: UploadLimits, what: str) -> None:
    if width <= 0 or height <= 0:
        raise UploadError(422, f"{what} has an empty size {width}x{height}")
    if width * height > limits.max_pixels:
        raise UploadError(
            413, f"{what} is {width}x{height} = {width * height:,} pixels, over the limit of "
                 f"{limits.max_pixels:,}; send a smaller scan (e.g. 200 dpi)"
        )


def decode_image(data: bytes, kind: str, limits: UploadLimits) -> list[Image.Image]:
    """Decode PNG/JPEG/TIFF bytes into RGB pages (a multi-page TIFF gives several)."""
    try:
        # Our own pixel check below is the limit; PIL's global bomb guard must not pre-empt it
        # with a warning, but its hard error (2x its default) still means "too big".
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[PIL_FORMATS[kind]])
    except Image.DecompressionBombError as err:
        raise UploadError(413, f"image too large: {err}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UploadError(422, f"the {kind.upper()} file could not be read (corrupt or truncated): {err}") from None
    frames = getattr(image, "n_frames", 1)
    if frames > limits.max_pages:
        raise UploadError(413, f"the TIFF has {frames} pages, over the limit of {limits.max_pages}")
    pages = []
    for index in range(frames):
        what = f"page {index + 1}" if frames > 1 else "the image"
        try:
            image.seek(index)
            _check_pixels(image.width, image.height, limits, what)  # header size, before decoding
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image.load()
                pages.append(image.convert("RGB"))
        except UploadError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise UploadError(422, f"{what} could not be decoded (corrupt or truncated {kind.upper()}): {err}") from None
    return pages


def render_pdf_pages(data: bytes, limits: UploadLimits) -> list[Image.Image]:
    """Render every page of a PDF at `limits.pdf_dpi` with pdfium (page count and size checked first)."""
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as err:
        raise UploadError(422, f"the PDF could not be opened (corrupt, truncated or encrypted): {err}") from None
    try:
        count = len(pdf)
        if count == 0:
            raise UploadError(422, "the PDF has no pages")
        if count > limits.max_pages:
            raise UploadError(413, f"the PDF has {count} pages, over the limit of {limits.max_pages}; split it")
        scale = limits.pdf_dpi / 72.0
        pages = []
        for index in range(count):
            page = pdf[index]
            try:
                width_pt, height_pt = page.get_size()
                _check_pixels(round(width_pt * scale), round(height_pt * scale), limits,
                              f"PDF page {index + 1} at {limits.pdf_dpi} dpi")
                bitmap = page.render(scale=scale)
                pages.append(bitmap.to_pil().convert("RGB"))
            except pdfium.PdfiumError as err:
                raise UploadError(422, f"PDF page {index + 1} could not be rendered: {err}") from None
            finally:
                page.close()
        return pages
    finally:
        pdf.close()


def decode_upload(data: bytes, content_type: str | None, filename: str | None,
                  limits: UploadLimits) -> tuple[str, list[Image.Image]]:
    """Check and decode one uploaded file → (kind, RGB page images). Raises `UploadError`."""
    if not data:
        raise UploadError(400, "the uploaded file is empty")
    if len(data) > limits.max_upload_bytes:
        raise UploadError(413, f"the upload is {len(data):,} bytes, over the limit of {limits.max_upload_bytes:,}")
    kind = check_type(data, content_type, filename)
    pages = render_pdf_pages(data, limits) if kind == "pdf" else decode_image(data, kind, limits)
    return kind, pages


def _check_box_map(boxes: object, where: str) -> dict[str, list[float]]:

    if not isinstance(boxes, dict):
        raise UploadError(422, f'{where}: expected a JSON object {{"region": [x0, y0, x1, y1], ...}}')
    for region, box in boxes.items():
        if region not in REGIONS:
            raise UploadError(422, f"{where}: unknown region {region!r}; expected one of {', '.join(REGIONS)}")
        if (not isinstance(box, list) or len(box) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)):
            raise UploadError(422, f"{where}.{region}: expected [x0, y0, x1, y1] numbers, got {box!r}")
        if not (box[0] < box[2] and box[1] < box[3]):
            raise UploadError(422, f"{where}.{region}: {box} is empty (need x0 < x1 and y0 < y1)")
    return boxes


def parse_boxes(text: str | None, num_pages: int) -> list[dict[str, list[float]] | None]:
    """The optional `boxes` form field → one box map (or None) per page.

    JSON `{region: [x0, y0, x1, y1]}` applies to every page; a JSON list of such objects gives
    one per page (its length must equal the page count). Coordinates are page pixels (PDF pages
    at the server's dpi).
    """

    if text is None or not text.strip():
        return [None] * num_pages
    try:
        boxes = json.loads(text)
    except json.JSONDecodeError as err:
        raise UploadError(422, f"boxes: not valid JSON ({err.msg} at character {err.pos})") from None
    if isinstance(boxes, list):
        if len(boxes) != num_pages:
            raise UploadError(422, f"boxes: a list of {len(boxes)} box maps for {num_pages} page(s); give one per page")
        return [_check_box_map(b, f"boxes[{i}]") for i, b in enumerate(boxes)]
    return [_check_box_map(boxes, "boxes")] * num_pages
