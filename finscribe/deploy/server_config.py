"""`finscribe serve` options (torch- and FastAPI-free: `--help` builds its parser from here)."""

from __future__ import annotations

from dataclasses import dataclass

from finscribe.config import arg
from finscribe.deploy.uploads import UploadLimits
from finscribe.limits import MAX_PIXELS


@dataclass
class ServeConfig:
    model: str = arg(help="model folder: fine-tuned, LoRA adapter, merged or quantized (`finscribe quantize`)")
    host: str = arg("127.0.0.1", "interface to listen on (0.0.0.0 exposes the service to the network)")
    port: int = arg(8000, "TCP port (0 = any free port)")
    max_upload_mb: float = arg(20.0, "largest accepted upload in MiB")
    max_pages: int = arg(20, "most pages per PDF/TIFF")
    max_pixels: int = arg(MAX_PIXELS, "most pixels per page (checked from the header before decoding)")
    pdf_dpi: int = arg(150, "resolution PDF pages are rendered at")
    max_new_tokens: int = arg(512, "generation limit per region")
    batch_size: int = arg(8, "most crops generated together (across queued requests)")
    max_queue: int = arg(64, "requests waiting beyond this get 503")
    quantized: bool | None = arg(None, "force (or refuse) loading as a quantized folder; default: detect")
    device: str | None = arg(None, "cpu or cuda (default: cuda when available)")
    log_level: str = arg("info", "uvicorn log level")

    def limits(self) -> UploadLimits:
        return UploadLimits(max_upload_bytes=int(self.max_upload_mb * 1024 * 1024), max_pages=self.max_pages,
                            max_pixels=self.max_pixels, pdf_dpi=self.pdf_dpi)
