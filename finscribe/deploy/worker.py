"""The single thread that runs the model for the server, batching what is waiting.

Requests submit their pages (already split into model-ready crops, or held for the region
detector, which runs here too, batched over every page waiting: `service.extract_split`) and get a
`concurrent.futures.Future`. The worker takes whatever else waits (up to `batch_size` crops) and
generates it together; if that shared batch fails, every request in it is run again ALONE, so a
bad request fails by itself and never takes the others down. A request whose client hung up is
cancelled while it waits and never computed. With generation on a vLLM server (`service_vllm`,
which batches across requests itself) there are `service.concurrent_batches` threads instead,
each carrying one request at a time.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
from typing import Any

from finscribe.data.schema import REGIONS
from finscribe.deploy.detector import PendingPage
from finscribe.deploy.service import Crop
from finscribe.deploy.uploads import UploadError

logger = logging.getLogger(__name__)


class ModelWorker:
    """`submit(split_pages)` → a future of the per-page results (`service.extract_split`)."""

    def __init__(self, service: Any, batch_size: int, max_queue: int, start: bool = True):
        self.service, self.batch_size, self.max_queue = service, max(1, batch_size), max_queue
        self.jobs: queue.Queue = queue.Queue()
        self.busy = False
        self.batches = 0
        self.cancelled = 0  # requests skipped because their client had gone
        self.retried = 0  # shared batches that failed and were rerun request by request
        # One thread for a model in this process; a service whose generation runs elsewhere and batches
        # across requests itself (vLLM: service_vllm) asks for `concurrent_batches` threads, so that
        # many batches are in flight at once.
        threads = max(1, int(getattr(service, "concurrent_batches", 1)))
        if threads > 1:  # each thread carries one request, answered as soon as it is done: the engine batches
            self.batch_size = 1
        self._threads = [threading.Thread(target=self._run, name=f"finscribe-model-worker-{i}", daemon=True)
                         for i in range(threads)]
        self._thread = self._threads[0]
        if start:
            self.start()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, split_pages: list[list[Crop] | PendingPage]) -> concurrent.futures.Future:
        if self.jobs.qsize() >= self.max_queue:
            raise UploadError(503, f"the server is busy ({self.jobs.qsize()} requests queued); retry shortly")
        future: concurrent.futures.Future = concurrent.futures.Future()
        self.jobs.put((split_pages, future))
        return future

    def stop(self) -> None:
        self.jobs.put(None)  # each thread that meets it puts it back for the next one
        for thread in self._threads:
            thread.join(timeout=30)

    @staticmethod
    def _crops(split_pages: list[list[Crop] | PendingPage]) -> int:
        # a page held for detection counts as the five regions it may give
        return sum(len(REGIONS) if isinstance(crops, PendingPage) else len(crops) for crops in split_pages)

    def _take_batch(self, first: Any) -> list[Any]:
        batch, crops = [first], self._crops(first[0])
        while crops < self.batch_size:  # whatever else is already waiting, up to batch_size crops
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self.jobs.put(None)
                break
            batch.append(job)
            crops += self._crops(job[0])
        live = []
        for job in batch:
            if job[1].set_running_or_notify_cancel():
                live.append(job)
            else:
                self.cancelled += 1
        return live

    def _extract(self, batch: list[Any]) -> None:
        results = self.service.extract_split([page for pages, _ in batch for page in pages])
        start = 0
        for pages, future in batch:
            future.set_result(results[start:start + len(pages)])
            start += len(pages)

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                self.jobs.put(None)  # for the other threads
                return
            batch = self._take_batch(job)
            if not batch:
                continue
            self.busy = True
            try:
                self._extract(batch)
            except Exception as err:  # noqa: BLE001  (handed to the waiting requests; the worker keeps serving)
                if len(batch) == 1:
                    batch[0][1].set_exception(err)
                else:
                    self.retried += 1
                    logger.warning("a batch of %d requests failed (%s); running them one by one", len(batch), err)
                    for one in batch:
                        try:
                            self._extract([one])
                        except Exception as alone:  # noqa: BLE001
                            one[1].set_exception(alone)
            finally:
                self.busy = False
                self.batches += 1
