"""An upload → model-ready crops, under a memory budget shared by every request in flight.

    budget = PixelBudget(512 * 2**20, wait_s=5)
    prepared = prepare_upload(data, "image/png", "scan.png", boxes_text, limits, budget)
    ...  # the model worker extracts prepared.split_pages
    prepared.reservation.release()

Decoded pixels are what blows a server's memory up: a 128 KB PNG can hold 40 MP, 160 MB once
decoded. So every page reserves its decoding cost (`PageSource.decode_bytes`, known from the
header) BEFORE it is decoded; once the page is cut into model-ready crops (downscaled to the
processor's size) the reservation shrinks to what the crops hold, and it is released when the
request is answered. The budget therefore bounds decoding and the queue together: a request
that does not fit now gets 503 (retry), a page that could never fit gets 413. A page sent without
boxes to a service with a region detector cannot be cut yet: it waits downscaled for the model
thread's detector (`finscribe.deploy.detector.PendingPage`), and holds what that copy holds.
"""

from __future__ import annotations

import base64
import io
import threading
from dataclasses import dataclass, field

from PIL import Image, ImageOps

from finscribe.deploy.detector import PendingPage, pending_page
from finscribe.deploy.service import Crop, split_page
from finscribe.deploy.uploads import UploadError, UploadLimits, check_type, parse_boxes
from finscribe.ingest import open_document

PREVIEW_SIDE = 1600  # longest side of the page previews returned with return_images


class PixelBudget:
    """Bytes of decoded pixels held at once by all requests (thread-safe). A reservation that does
    not fit waits up to `wait_s` for others to give theirs back, then is refused (503)."""

    def __init__(self, max_bytes: int, wait_s: float = 0.0):
        self.max_bytes, self.wait_s = max_bytes, wait_s
        self.used = 0
        self.peak = 0
        self.refused = 0
        self._room = threading.Condition()

    def reservation(self) -> Reservation:
        return Reservation(self)

    def _change(self, delta: int) -> None:
        with self._room:
            if delta > 0 and not self._room.wait_for(lambda: self.used + delta <= self.max_bytes, timeout=self.wait_s):
                self.refused += 1
                raise UploadError(503, f"the server is busy decoding other uploads ({self.used / 2**20:.0f} of "
                                       f"{self.max_bytes / 2**20:.0f} MiB of pixels in use); retry shortly")
            self.used += delta
            self.peak = max(self.peak, self.used)
            if delta < 0:
                self._room.notify_all()


@dataclass
class Reservation:
    """One request's share of the budget; `set` grows or shrinks it, `release` gives it back."""

    budget: PixelBudget
    held: int = 0

    def set(self, amount: int) -> None:
        if amount > self.budget.max_bytes:
            raise UploadError(413, f"a page needs {amount / 2**20:.0f} MiB to decode, more than this server's "
                                   f"{self.budget.max_bytes / 2**20:.0f} MiB; send a smaller scan (e.g. 200 dpi)")
        self.budget._change(amount - self.held)
        self.held = amount

    def release(self) -> None:
        self.set(0)


@dataclass
class PreparedUpload:
    kind: str
    sizes: list[tuple[int, int]]  # (width, height) of every page, upright, in page pixels
    split_pages: list[list[Crop] | PendingPage]  # a page's crops, or the page held for detection
    reservation: Reservation
    previews: list[str | None] = field(default_factory=list)


def _preview(image: Image.Image) -> str:
    small = ImageOps.contain(image, (PREVIEW_SIDE, PREVIEW_SIDE)) if max(image.size) > PREVIEW_SIDE else image
    buffer = io.BytesIO()
    small.convert("RGB").save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _held_bytes(crops: list[Crop] | PendingPage) -> int:
    if isinstance(crops, PendingPage):
        return crops.held_bytes()
    return sum(crop.width * crop.height * 4 for _, crop, _ in crops)  # Pillow keeps RGB as 4 bytes a pixel


def prepare_upload(data: bytes, content_type: str | None, filename: str | None, boxes_text: str | None,
                   limits: UploadLimits, budget: PixelBudget, previews: bool = False,
                   detector_input: tuple[int, int] | None = None) -> PreparedUpload:
    """Check, decode and split one upload page by page under `budget`; raises UploadError (with
    nothing left reserved) when it is refused. With `detector_input` (the detector's input size),
    a page without boxes is held for detection instead of being read whole."""
    if len(data) > limits.max_upload_bytes:
        raise UploadError(413, f"the upload is {len(data):,} bytes, over the limit of {limits.max_upload_bytes:,}")
    kind = check_type(data, content_type, filename)
    reservation = budget.reservation()
    try:
        with open_document(data, limits, kind) as document:
            boxes = parse_boxes(boxes_text, len(document.pages))
            prepared = PreparedUpload(kind, [], [], reservation)
            kept = 0
            for source, page_boxes in zip(document.pages, boxes):
                reservation.set(kept + source.decode_bytes)
                page = source.decode()
                if page_boxes or detector_input is None:
                    crops = split_page(page, page_boxes, source.what)
                else:
                    crops = pending_page(page, source.what, detector_input)
                prepared.sizes.append(page.size)
                preview = _preview(page) if previews else None
                prepared.previews.append(preview)
                del page
                kept += _held_bytes(crops) + len(preview or "")
                reservation.set(kept)
                prepared.split_pages.append(crops)
        return prepared
    except BaseException:
        reservation.release()
        raise
