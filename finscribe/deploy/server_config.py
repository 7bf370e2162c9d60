"""`finscribe serve` options (torch- and FastAPI-free: `--help` builds its parser from here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from finscribe.config import arg, group
from finscribe.deploy.uploads import UploadLimits
from finscribe.generation_args import GenerationArgs
from finscribe.limits import MAX_PIXELS

# finscribe.detection.DEFAULT_LAYOUT_MODEL, spelled here without importing torch (instant --help)
DEFAULT_LAYOUT_MODEL = Path(__file__).resolve().parents[1] / "assets" / "tiny_layout"


@dataclass
class ServeGenerationArgs(GenerationArgs):
    """The service's generation options: the same flags, but constrained decoding on by default, so
    that an answer is always a JSON object of the region's schema (`--no-constrained` turns it off;
    `--beams N` > 1 decodes validated beams instead, which the grammar cannot follow)."""

    constrained: bool | None = arg(None, "schema-constrained decoding: the model can only emit a JSON object of the "
                                         "region's schema (known keys, canonical amounts and dates); default: on, "
                                         "unless --beams > 1")

    def __post_init__(self) -> None:
        if self.constrained is None:
            self.constrained = self.beams == 1
        super().__post_init__()


@dataclass
class ServeConfig:
    generation: ServeGenerationArgs = group("the served model (--model: fine-tuned, LoRA adapter, merged or quantized "
                                       "with `finscribe quantize`) and how it generates")
    layout_model: str = arg(str(DEFAULT_LAYOUT_MODEL), "region detector folder (`finscribe train-layout`) run on pages "
                                                      "sent without boxes; 'none' reads such a page whole with the page prompt")
    margin: int = arg(0, "page pixels each detected box is widened by before it is cropped and read (default 0: a "
                         "snapped box holds its ink plus 7 px, like the crops the model was fine-tuned on)")
    detect_threshold: float = arg(0.3, "lowest detector score a region's box is kept at; below it the region is "
                                       "listed as missing")
    snap: bool = arg(True, "move each detected box's edges to where the ink it holds ends "
                                "(finscribe.snap.snap_to_ink); --no-snap keeps the detector's boxes")
    host: str = arg("127.0.0.1", "interface to listen on (0.0.0.0 exposes the service to the network)")
    port: int = arg(8000, "TCP port (0 = any free port)")
    max_upload_mb: float = arg(20.0, "largest accepted upload in MiB")
    max_pages: int = arg(20, "most pages per PDF/TIFF")
    max_pixels: int = arg(MAX_PIXELS, "most pixels per page (checked from the header before decoding)")
    pdf_dpi: int = arg(150, "resolution PDF pages are rendered at")
    max_decoded_mb: float = arg(512.0, "decoded pixels held at once by all requests (decoding + queue), MiB; "
                                       "over it requests wait (--decode-wait), then get 503")
    decode_wait: float = arg(5.0, "seconds a request waits for room in --max-decoded-mb before 503")
    max_queue: int = arg(64, "requests waiting beyond this get 503")
    read_timeout: float = arg(30.0, "seconds a request body may pause before 408")
    body_timeout: float = arg(300.0, "seconds a whole request body may take before 408")
    quantized: bool | None = arg(None, "force (or refuse) loading as a quantized folder; default: detect")
    log_level: str = arg("info", "uvicorn log level")

    def __post_init__(self) -> None:
        if not 0.0 <= self.detect_threshold <= 1.0:
            raise ValueError(f"--detect-threshold must be between 0 and 1, got {self.detect_threshold}")
        if self.margin < 0:
            raise ValueError(f"--margin must be >= 0 pixels, got {self.margin}")

    def limits(self) -> UploadLimits:
        return UploadLimits(max_upload_bytes=int(self.max_upload_mb * 1024 * 1024), max_pages=self.max_pages,
                            max_pixels=self.max_pixels, pdf_dpi=self.pdf_dpi)
