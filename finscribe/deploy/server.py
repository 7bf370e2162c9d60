"""`finscribe serve`: the extraction service over HTTP (FastAPI + uvicorn) with a small web page.

    finscribe serve --model models/finscribe-int8 --port 8000
    curl -F file=@invoice.pdf http://127.0.0.1:8000/v1/extract
    open http://127.0.0.1:8000/         (upload / drag-and-drop page; API docs at /docs)

A request is decoded and cut into model-ready crops in a thread (`intake.prepare_upload`, under a
decoded-pixel budget shared by decoding and the queue: 503 when it is full), then queued for the
one model thread (`worker.ModelWorker`), which batches what is waiting and isolates failures so
each request succeeds or fails alone. The answer is ONE document per file (pages merged and
validated as a whole) with the per-page results beside it. A page sent without boxes is held
downscaled for the region detector (`--layout-model`), which runs in the model thread, batched:
the answer gives each detected region's box and score and the regions not found.

The request body is counted while it streams in: an oversized upload is refused with 413 and the
connection closed, without reading the rest (a declared body less than 1 MiB over the limit is
drained first, so that a client still sending reads the 413); a client that sends too slowly
gets 408. A request
whose client hung up is dropped before the model sees it. Responses never carry server paths.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from finscribe.config import parse_config
from finscribe.deploy.detector import PageDetector
from finscribe.deploy.intake import PixelBudget, prepare_upload
from finscribe.deploy.server_config import ServeConfig
from finscribe.deploy.service import PaddleOCRVLService, RegionBoxError, document_result
from finscribe.deploy.uploads import UploadError, UploadLimits
from finscribe.deploy.worker import ModelWorker
from finscribe.engine_vllm import EngineUnavailableError
from finscribe.model import check_model_folder, looks_like_local_path
from finscribe.prompting import ImageReadError

STATIC_DIR = Path(__file__).parent / "static"
EXTRACT_PATH = "/v1/extract"
MULTIPART_MARGIN = 64 * 1024  # form framing + the boxes field on top of the file itself
CLOSE = {"Connection": "close"}  # the rest of a refused body is not read: the connection goes
DRAIN_BYTES = 1024 * 1024  # a declared body at most this much over the limit is read (and dropped) before the 413
logger = logging.getLogger(__name__)


class BodyLimitMiddleware:
    """On the extract endpoint: refuse bodies over `max_bytes` (413) and bodies that arrive too
    slowly (408: `read_timeout` seconds without data, or `body_timeout` in all), closing the
    connection instead of reading the rest."""

    def __init__(self, app: Any, max_bytes: int, read_timeout: float = 30.0, body_timeout: float = 300.0):
        self.app, self.max_bytes = app, max_bytes
        self.read_timeout, self.body_timeout = read_timeout, body_timeout

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != EXTRACT_PATH:
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_big = f"the upload is over the limit of {self.max_bytes - MULTIPART_MARGIN:,} bytes"
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            # A body a little over the limit is drained so that the client, still sending, reads a
            # clean 413; a bigger one is not read at all: answer and close the connection.
            drained = int(length) <= self.max_bytes + DRAIN_BYTES and await self._drain(receive)
            response = JSONResponse({"status": 413, "error": too_big}, status_code=413,
                                    headers=None if drained else CLOSE)
            return await response(scope, receive, send)
        seen, body_done = 0, False
        deadline = asyncio.get_running_loop().time() + self.body_timeout

        async def guarded_receive() -> dict:
            nonlocal seen, body_done
            if body_done:  # afterwards only http.disconnect comes: wait for it as long as it takes
                return await receive()
            left = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, min(self.read_timeout, left)))
            except asyncio.TimeoutError:
                raise HTTPException(408, f"the request body arrived too slowly (over {self.read_timeout:g} s without "
                                         f"data or {self.body_timeout:g} s in all); send it again", headers=CLOSE) from None
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # a lying or absent Content-Length: stop reading here
                raise HTTPException(413, too_big, headers=CLOSE)
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        return await self.app(scope, guarded_receive, send)


    async def _drain(self, receive: Any) -> bool:
        """Read and drop the rest of a body (at most DRAIN_BYTES over the limit); False if the
        client stalls or sends more."""
        seen = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), timeout=self.read_timeout)
            except asyncio.TimeoutError:
                return False
            seen += len(message.get("body", b""))
            if message["type"] != "http.request" or seen > self.max_bytes + DRAIN_BYTES:
                return False
            if not message.get("more_body", False):
                return True


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"status": status, "error": message}, status_code=status, headers=headers)


async def _client_gone(request: Request) -> None:
    """Returns once the client has disconnected (polled: the body has been read by then)."""
    while not await request.is_disconnected():
        await asyncio.sleep(0.1)


async def _await_unless_gone(future: Any, request: Request) -> Any:
    """The future's result; None (and the future cancelled) if the client hangs up first."""
    result = asyncio.wrap_future(future)
    gone = asyncio.ensure_future(_client_gone(request))
    try:
        done, _ = await asyncio.wait({result, gone}, return_when=asyncio.FIRST_COMPLETED)
        if result in done:
            return result.result()
        future.cancel()  # not started yet: the worker skips it
        result.cancel()
        return None
    finally:
        gone.cancel()


def create_app(service: Any, limits: UploadLimits, *, batch_size: int | None = None, max_queue: int = 64,
               max_decoded_bytes: int = 512 * 2**20, decode_wait: float = 5.0, read_timeout: float = 30.0,
               body_timeout: float = 300.0) -> FastAPI:
    """The FastAPI app around a loaded service (tests build it directly with the tiny model)."""
    worker = ModelWorker(service, batch_size or getattr(service, "batch_size", 8), max_queue)
    budget = PixelBudget(max_decoded_bytes, wait_s=decode_wait)
    model_info = service.info()
    detector = getattr(service, "detector", None)  # pages without boxes: held for it, detected in the worker
    detector_input = detector.input_size if detector is not None else None

    async def lifespan(app: FastAPI):
        yield
        await run_in_threadpool(worker.stop)

    app = FastAPI(title="FinScribe", version="0.1.0", lifespan=lifespan,
                  description="Invoice image/PDF → validated JSON with a fine-tuned PaddleOCR-VL.")
    app.state.worker, app.state.limits, app.state.budget = worker, limits, budget
    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_upload_bytes + MULTIPART_MARGIN,
                       read_timeout=read_timeout, body_timeout=body_timeout)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return _error(err.status_code, str(err.detail), err.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in err.errors())
        return _error(422, f"invalid request ({problems}); send multipart/form-data with a `file` field")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception) -> JSONResponse:
        logger.exception("internal error on %s", request.url.path)  # details in the log, not in the answer
        return _error(500, "internal error while extracting; the server log has the details")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness: answers at once even while the model is busy."""
        return {"status": "ok", "busy": worker.busy, "queued": worker.jobs.qsize(), "batches": worker.batches,
                "cancelled": worker.cancelled, "decoded_mib": round(budget.used / 2**20, 1)}

    @app.get("/v1/model")
    async def model() -> dict[str, Any]:
        """The served model: name, quantization, dtype, parameter count."""
        return model_info

    @app.post(EXTRACT_PATH)
    async def extract(request: Request,
                      file: UploadFile = File(..., description="PNG, JPEG, TIFF or PDF (one or many pages)"),  # noqa: B008  (FastAPI declares request parameters as defaults)
                      boxes: str | None = Form(None, description='JSON {"region": [x0,y0,x1,y1]} for every page, '
                                                                 'a list with one map (or null) per page, or {"2": {...}} by page number'),
                      return_images: bool = Form(False, description="include each page as a JPEG data URL")
                      ) -> Any:
        """Extract one file → ONE document (pages merged, validated as a whole) + per-page results."""
        start = time.perf_counter()
        data = await file.read(limits.max_upload_bytes + 1)  # bounded, whatever the body claims
        try:
            prepared = await run_in_threadpool(prepare_upload, data, file.content_type, file.filename, boxes,
                                               limits, budget, return_images, detector_input)
        except UploadError as err:
            return _error(err.status, err.message, {"Retry-After": "1"} if err.status == 503 else None)
        except RegionBoxError as err:
            return _error(422, f"boxes: {err}")
        del data
        decoded = time.perf_counter()
        try:
            future = worker.submit(prepared.split_pages)
            results = await _await_unless_gone(future, request)
        except UploadError as err:
            return _error(err.status, err.message, {"Retry-After": "1"} if err.status == 503 else None)
        except (RegionBoxError, ImageReadError) as err:
            return _error(422, str(err))
        except EngineUnavailableError as err:  # --engine vllm: the server is down or restarting
            return _error(503, str(err), {"Retry-After": "5"})
        finally:
            prepared.reservation.release()
        if results is None:  # the client hung up: nobody to answer
            return _error(499, "client closed the request")
        pages = []
        for number, ((width, height), preview, result) in enumerate(zip(prepared.sizes, prepared.previews, results), start=1):
            page = {"page": number, "width": width, "height": height, **result}
            if preview:
                page["image"] = preview
            pages.append(page)
        return {"kind": prepared.kind, "num_pages": len(pages), **document_result(pages), "pages": pages,
                "model": model_info, "timings": {"decode": decoded - start, "total": time.perf_counter() - start}}

    return app


M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc mallopt parameters (malloc.h)


def return_freed_pixels_to_the_os() -> bool:
    """glibc keeps freed memory for reuse: with one arena per thread and an mmap threshold that
    grows with every large free (up to 32 MB), decoded pages freed by 40 decode threads stay in
    RSS. A fixed 128 KiB threshold (large buffers are mmapped and unmapped when freed) and two
    arenas keep RSS near what is actually held (hostile mix: peak 1,563 → 844 MB, see
    benchmarks/RESULTS.md). No-op (False) where libc is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 128 * 1024)) and bool(mallopt(M_ARENA_MAX, 2))


def main(argv: list[str] | None = None, prog: str = "finscribe serve") -> int:
    """`finscribe serve --model PATH [--host 127.0.0.1 --port 8000]`."""
    config = parse_config(ServeConfig, argv, prog, "Serve invoice extraction over HTTP with a web page at /.")
    return_freed_pixels_to_the_os()
    model = config.generation.model
    if looks_like_local_path(model) and not Path(model).expanduser().exists():
        check_model_folder(Path(model))  # a missing model says so first, not a missing detector
    detector = None
    if config.layout_model.lower() != "none":
        detector = PageDetector.load(config.layout_model, device=config.generation.device, threshold=config.detect_threshold,
                                     margin=config.margin, batch_size=config.generation.batch_size, snap=config.snap)
    if config.generation.engine != "transformers":  # generation on a vLLM server (finscribe.engine_vllm)
        from finscribe.deploy.service_vllm import VLLMService

        service = VLLMService(config.generation, detector=detector)
    else:
        service = PaddleOCRVLService(config.generation, quantized=config.quantized, detector=detector)
    app = create_app(service, config.limits(), batch_size=config.generation.batch_size, max_queue=config.max_queue,
                     max_decoded_bytes=int(config.max_decoded_mb * 2**20), decode_wait=config.decode_wait,
                     read_timeout=config.read_timeout,
                     body_timeout=config.body_timeout)
    print(f"serving {service.model_name} on http://{config.host}:{config.port}/ (API docs at /docs)")
    try:
        uvicorn.run(app, host=config.host, port=config.port, log_level=config.log_level)
    finally:
        if hasattr(service, "close"):  # the vLLM server FinScribe started stops with it
            service.close()
    return 0
