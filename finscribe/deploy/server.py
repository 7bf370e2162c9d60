"""`finscribe serve`: the extraction service over HTTP (FastAPI + uvicorn) with a small web page.

    finscribe serve --model models/finscribe-int8 --port 8000
    curl -F file=@invoice.pdf http://127.0.0.1:8000/v1/extract
    open http://127.0.0.1:8000/         (upload / drag-and-drop page; API docs at /docs)

One worker thread owns the model and takes jobs from a queue, batching the pages that are
waiting (up to `batch_size` crops) into one `extract_pages` call; endpoints await a future, so
a long extraction never blocks `/health`. Uploads are checked by `finscribe.deploy.uploads`
(type sniffing, size, pixel and page limits) and the request body is counted while it streams
in, so an oversized upload is refused before it is buffered.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import io
import queue
import threading
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
from finscribe.deploy.server_config import ServeConfig  # noqa: F401  (the stage's config, torch-free)
from finscribe.deploy.service import PaddleOCRVLService, RegionBoxError, clamp_box
from finscribe.deploy.uploads import UploadError, UploadLimits, decode_upload, parse_boxes

STATIC_DIR = Path(__file__).parent / "static"
EXTRACT_PATH = "/v1/extract"
MULTIPART_MARGIN = 64 * 1024  # form framing + the boxes field on top of the file itself


class ModelWorker:
    """The single thread that runs the model; `submit` returns a future of per-page results."""

    def __init__(self, service: Any, batch_size: int, max_queue: int):
        self.service, self.batch_size, self.max_queue = service, max(1, batch_size), max_queue
        self.jobs: queue.Queue = queue.Queue()
        self.busy = False
        self.batches = 0
        self._thread = threading.Thread(target=self._run, name="finscribe-model-worker", daemon=True)
        self._thread.start()

    def submit(self, pages: list[tuple[Any, dict | None]]) -> concurrent.futures.Future:
        if self.jobs.qsize() >= self.max_queue:
            raise HTTPException(503, f"the server is busy ({self.jobs.qsize()} requests queued); retry shortly")
        future: concurrent.futures.Future = concurrent.futures.Future()
        self.jobs.put((pages, future))
        return future

    def stop(self) -> None:
        self.jobs.put(None)
        self._thread.join(timeout=30)

    @staticmethod
    def _crops(pages: list[tuple[Any, dict | None]]) -> int:
        return sum(len(boxes) if boxes else 1 for _, boxes in pages)

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            batch, crops = [job], self._crops(job[0])
            # Take whatever else is already waiting, up to batch_size crops in all.
            while crops < self.batch_size:
                try:
                    nxt = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.jobs.put(None)
                    break
                batch.append(nxt)
                crops += self._crops(nxt[0])
            self.busy = True
            try:
                results = self.service.extract_pages([page for pages, _ in batch for page in pages])
            except Exception as err:  # hand every failure to the waiting requests; keep serving
                for _, future in batch:
                    future.set_exception(err)
                continue
            finally:
                self.busy = False
                self.batches += 1
            start = 0
            for pages, future in batch:
                future.set_result(results[start:start + len(pages)])
                start += len(pages)


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` on the extract endpoint while they stream in."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != EXTRACT_PATH:
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_big = f"the upload is over the limit of {self.max_bytes - MULTIPART_MARGIN:,} bytes"
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            response = JSONResponse({"status": 413, "error": too_big}, status_code=413)
            return await response(scope, receive, send)
        seen = 0

        async def counting_receive() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # a lying or absent Content-Length: stop reading here
                raise HTTPException(413, too_big)
            return message

        return await self.app(scope, counting_receive, send)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": status, "error": message}, status_code=status)


def _data_url(image: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def create_app(service: Any, limits: UploadLimits, *, batch_size: int | None = None, max_queue: int = 64) -> FastAPI:
    """The FastAPI app around a loaded service (tests build it directly with the tiny model)."""
    worker = ModelWorker(service, batch_size or getattr(service, "batch_size", 8), max_queue)
    model_info = service.info()

    async def lifespan(app: FastAPI):
        yield
        await run_in_threadpool(worker.stop)

    app = FastAPI(title="FinScribe", version="0.1.0", lifespan=lifespan,
                  description="Invoice image/PDF → validated JSON with a fine-tuned PaddleOCR-VL.")
    app.state.worker, app.state.limits = worker, limits
    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_upload_bytes + MULTIPART_MARGIN)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return _error(err.status_code, str(err.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in err.errors())
        return _error(422, f"invalid request ({problems}); send multipart/form-data with a `file` field")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness: answers at once even while the model is busy."""
        return {"status": "ok", "busy": worker.busy, "queued": worker.jobs.qsize(), "batches": worker.batches}

    @app.get("/v1/model")
    async def model() -> dict[str, Any]:
        """The served model: path, quantization, dtype, parameter count."""
        return model_info

    @app.post(EXTRACT_PATH)
    async def extract(file: UploadFile = File(..., description="PNG, JPEG, TIFF or PDF"),  # noqa: B008  (FastAPI declares request parameters as defaults)
                      boxes: str | None = Form(None, description='JSON {"region": [x0,y0,x1,y1]} or a list per page'),
                      return_images: bool = Form(False, description="include each page as a JPEG data URL")
                      ) -> dict[str, Any]:
        """Extract every page of the uploaded invoice → per page: document, violations, regions, timings."""
        start = time.perf_counter()
        data = await file.read(limits.max_upload_bytes + 1)  # bounded, whatever the body claims
        try:
            kind, pages = await run_in_threadpool(decode_upload, data, file.content_type, file.filename, limits)
            page_boxes = parse_boxes(boxes, len(pages))
            for image, page_box in zip(pages, page_boxes):
                for region, box in (page_box or {}).items():
                    clamp_box(box, image.width, image.height, region)
        except UploadError as err:
            return _error(err.status, err.message)
        except RegionBoxError as err:
            return _error(422, f"boxes: {err}")
        decoded = time.perf_counter()
        future = worker.submit(list(zip(pages, page_boxes)))
        try:
            results = await asyncio.wrap_future(future)
        except RegionBoxError as err:
            return _error(422, f"boxes: {err}")
        out_pages = []
        for number, (image, result) in enumerate(zip(pages, results), start=1):
            page = {"page": number, "width": image.width, "height": image.height, **result}
            if return_images:
                page["image"] = _data_url(image)
            out_pages.append(page)
        return {"kind": kind, "num_pages": len(pages), "pages": out_pages, "model": model_info,
                "timings": {"decode": decoded - start, "total": time.perf_counter() - start}}

    return app


def main(argv: list[str] | None = None, prog: str = "finscribe serve") -> int:
    """`finscribe serve --model PATH [--host 127.0.0.1 --port 8000]`."""
    config = parse_config(ServeConfig, argv, prog, "Serve invoice extraction over HTTP with a web page at /.")

    service = PaddleOCRVLService(config.model, quantized=config.quantized, max_new_tokens=config.max_new_tokens,
                                 batch_size=config.batch_size, device=config.device)
    app = create_app(service, config.limits(), batch_size=config.batch_size, max_queue=config.max_queue)
    print(f"serving {config.model} on http://{config.host}:{config.port}/ (API docs at /docs)")
    uvicorn.run(app, host=config.host, port=config.port, log_level=config.log_level)
    return 0
