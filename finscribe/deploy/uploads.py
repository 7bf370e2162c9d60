"""An uploaded file (PNG, JPEG, TIFF or PDF bytes) → page images, under explicit limits.

Everything a client sends is treated as hostile: the type is sniffed from the magic bytes and
must agree with the declared content type and the filename's extension; then the document is
opened by `finscribe.ingest` (the intake training and evaluation use too), which checks every
page's pixel count from its header BEFORE decoding it (decompression bombs) and normalises the
pixels. Each refusal is an `UploadError` (= `finscribe.ingest.IngestError`) carrying the HTTP
status the server answers with and a message saying what to do. Nothing here writes to disk;
the filename is only compared, never used as a path.
"""

from __future__ import annotations

import json
import math

from PIL import Image

from finscribe.data.schema import REGIONS
from finscribe.ingest import IngestError, IngestLimits, decode_document, sniff_kind

# What we accept, by sniffed kind: its content types and filename extensions.
KINDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "png": (frozenset({"image/png"}), frozenset({".png"})),
    "jpeg": (frozenset({"image/jpeg", "image/jpg", "image/pjpeg"}), frozenset({".jpg", ".jpeg"})),
    "tiff": (frozenset({"image/tiff", "image/tif"}), frozenset({".tif", ".tiff"})),
    "pdf": (frozenset({"application/pdf", "application/x-pdf"}), frozenset({".pdf"})),
}
# Content types that say nothing about the file; sniffing decides.
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})

# The service's names for the shared intake's error and limits.
UploadError = IngestError
UploadLimits = IngestLimits

__all__ = ["KINDS", "UploadError", "UploadLimits", "check_type", "decode_upload", "parse_boxes", "sniff_kind"]


def check_type(data: bytes, content_type: str | None, filename: str | None) -> str:
    """The sniffed kind, after checking it against the declared content type and extension."""
    if not data:
        raise UploadError(400, "the uploaded file is empty")
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


def decode_upload(data: bytes, content_type: str | None, filename: str | None,
                  limits: UploadLimits) -> tuple[str, list[Image.Image]]:
    """Check and decode one uploaded file → (kind, normalised page images). Raises `UploadError`."""
    if len(data) > limits.max_upload_bytes:
        raise UploadError(413, f"the upload is {len(data):,} bytes, over the limit of {limits.max_upload_bytes:,}")
    kind = check_type(data, content_type, filename)
    return decode_document(data, limits, kind)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a coordinate")


def _check_box_map(boxes: object, where: str) -> dict[str, list[float]] | None:
    if boxes is None:  # this page: no boxes, read it whole
        return None
    if not isinstance(boxes, dict):
        raise UploadError(422, f'{where}: expected a JSON object {{"region": [x0, y0, x1, y1], ...}}')
    for region, box in boxes.items():
        if region not in REGIONS:
            raise UploadError(422, f"{where}: unknown region {region!r}; expected one of {', '.join(REGIONS)}")
        if (not isinstance(box, list) or len(box) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)):
            raise UploadError(422, f"{where}.{region}: expected [x0, y0, x1, y1] numbers, got {box!r}")
        if not all(math.isfinite(v) for v in box):  # 1e999 parses as infinity
            raise UploadError(422, f"{where}.{region}: {box} holds a number that is not finite; give page pixels")
        if not (box[0] < box[2] and box[1] < box[3]):
            raise UploadError(422, f"{where}.{region}: {box} is empty (need x0 < x1 and y0 < y1)")
    return boxes


def parse_boxes(text: str | None, num_pages: int) -> list[dict[str, list[float]] | None]:
    """The optional `boxes` form field → one box map (or None: the whole page) per page.

    JSON `{region: [x0, y0, x1, y1]}` applies to every page; a JSON list gives one entry per page
    (its length must equal the page count; `null` or `{}` reads that page whole); an object keyed
    by page number (`{"1": {...}, "2": {...}}`) gives boxes for those pages only. Coordinates are
    page pixels (PDF pages at the server's dpi). NaN, Infinity and overflowing numbers are refused.
    """
    if text is None or not text.strip():
        return [None] * num_pages
    try:
        boxes = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise UploadError(422, f"boxes: not valid JSON ({err.msg} at character {err.pos})") from None
    except ValueError as err:
        raise UploadError(422, f"boxes: {err}; give finite page pixels") from None
    if isinstance(boxes, list):
        if len(boxes) != num_pages:
            raise UploadError(422, f"boxes: a list of {len(boxes)} box maps for {num_pages} page(s); give one per page")
        return [_check_box_map(b, f"boxes[{i}]") for i, b in enumerate(boxes)]
    if isinstance(boxes, dict) and boxes and all(key.isdigit() for key in boxes):
        pages = {int(key): value for key, value in boxes.items()}
        wrong = sorted(n for n in pages if not 1 <= n <= num_pages)
        if wrong:
            raise UploadError(422, f"boxes: page(s) {wrong} not in the document's {num_pages} page(s); pages count from 1")
        return [_check_box_map(pages.get(n), f"boxes[{n}]") for n in range(1, num_pages + 1)]
    return [_check_box_map(boxes, "boxes")] * num_pages
