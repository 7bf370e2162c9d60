"""The HTTP server on a real port (uvicorn in a thread) with the tiny real PaddleOCR-VL.

Every hostile or malformed upload gets its 4xx JSON error, and the next good request still
succeeds; /health answers while an extraction is running; queued requests are batched.
"""

from __future__ import annotations

import dataclasses
import io
import socket
import threading
import time

import httpx
import pytest
from deploy_helpers import RunningServer
from PIL import Image
from test_uploads import image_bytes, pdf_bytes, png_header_only

from finscribe.deploy.server import create_app
from finscribe.deploy.service import PaddleOCRVLService
from finscribe.deploy.uploads import UploadLimits
from finscribe.inference import GenerationArgs

LIMITS = UploadLimits(max_upload_bytes=300_000, max_pages=2, max_pixels=2_000_000, pdf_dpi=72)


@pytest.fixture(scope="module")
def service(tiny_model_dir):
    # A few tokens per region: these tests are about the server, not the model's answers.
    return PaddleOCRVLService(GenerationArgs(model=str(tiny_model_dir), max_new_tokens=6, batch_size=4, device="cpu"))


@pytest.fixture(scope="module")
def server(service):
    with RunningServer(create_app(service, LIMITS)) as url:
        with httpx.Client(base_url=url, timeout=120) as client:
            yield client


def page_png(size=(300, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "white").save(buffer, format="PNG")
    return buffer.getvalue()


def post(client, data: bytes, name="page.png", ctype="image/png", **fields):
    return client.post("/v1/extract", files={"file": (name, data, ctype)}, data=fields)


def test_health_model_page_and_docs(server, tiny_model_dir):
    assert server.get("/health").json()["status"] == "ok"
    info = server.get("/v1/model").json()
    assert info["model"] == tiny_model_dir.name and info["quantized"] is False
    assert "model_path" not in info and str(tiny_model_dir) not in server.get("/v1/model").text
    assert info["dtype"] == "float32" and info["parameters"] > 1_000_000
    page = server.get("/")
    assert page.status_code == 200 and "FinScribe" in page.text and "/static/app.js" in page.text
    assert server.get("/static/app.js").status_code == 200
    assert server.get("/docs").status_code == 200
    assert "/v1/extract" in server.get("/openapi.json").json()["paths"]


def test_extract_with_boxes_returns_one_result_per_page(server):
    boxes = '{"totals_section": [150, 100, 300, 200], "vendor_block": [0, 0, 150, 80]}'
    response = post(server, page_png(), boxes=boxes, return_images="true")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "png" and body["num_pages"] == 1
    page = body["pages"][0]
    assert set(page["regions"]) == {"totals_section", "vendor_block"}
    assert page["regions"]["totals_section"]["box"] == [150, 100, 300, 200]
    assert set(page["timings"]) == {"split", "detect", "extract", "validate", "total"}
    assert page["image"].startswith("data:image/jpeg;base64,")
    assert isinstance(page["violations"], list) and "document" in page
    assert body["document"] == page["document"] and body["valid"] == page["valid"]  # one page: the file's document
    assert "/" not in body["model"]["model"] and "/" not in page["model"]  # never a server path


def test_serve_takes_the_shared_generation_group_with_the_same_flags():
    from finscribe.config import parse_config
    from finscribe.deploy.server import ServeConfig

    config = parse_config(ServeConfig, ["--model", "m", "--device", "cpu", "--batch-size", "3", "--max-new-tokens", "5",
                                        "--max-decoded-mb", "64", "--constrained"], "serve", "")
    expected = GenerationArgs(model="m", device="cpu", batch_size=3, max_new_tokens=5, constrained=True)
    assert dataclasses.asdict(config.generation) == dataclasses.asdict(expected)
    assert config.max_decoded_mb == 64
    # the service decodes constrained by default (issue 15); --no-constrained turns it off
    assert parse_config(ServeConfig, ["--model", "m"], "serve", "").generation.constrained is True
    assert parse_config(ServeConfig, ["--model", "m", "--no-constrained"], "serve", "").generation.constrained is False
    # --beams > 1 decodes validated beams instead (the grammar follows one sequence per row)
    beams = parse_config(ServeConfig, ["--model", "m", "--beams", "4"], "serve", "").generation
    assert (beams.beams, beams.constrained) == (4, False)
    with pytest.raises(SystemExit):  # both asked for explicitly: one clear error
        parse_config(ServeConfig, ["--model", "m", "--beams", "4", "--constrained"], "serve", "")


def test_pdf_every_page_is_extracted_with_the_page_prompt(server):
    body = post(server, pdf_bytes(2), name="inv.pdf", ctype="application/pdf").json()
    assert body["kind"] == "pdf" and [p["page"] for p in body["pages"]] == [1, 2]
    assert all(set(p["regions"]) == {"page"} for p in body["pages"])


BAD_INPUTS = [
    ("empty file", dict(data=b""), 400),
    ("text file", dict(data=b"hello", name="a.txt", ctype="text/plain"), 415),
    ("text posing as png", dict(data=b"not an image at all"), 415),
    ("pdf named .png", dict(data=pdf_bytes(1)), 415),
    ("png sent as pdf", dict(data=page_png(), name="a.pdf", ctype="application/pdf"), 415),
    ("corrupt png", dict(data=page_png()[:60]), 422),
    ("corrupt pdf", dict(data=b"%PDF-1.4\n%garbage\n" * 10, name="a.pdf", ctype="application/pdf"), 422),
    ("pixel bomb", dict(data=png_header_only(40_000, 40_000)), 413),
    ("too many pages", dict(data=pdf_bytes(3), name="a.pdf", ctype="application/pdf"), 413),
    ("oversized upload", dict(data=b"\x89PNG\r\n\x1a\n" + b"\x00" * 400_000), 413),
    ("bad boxes json", dict(data=page_png(), boxes="{not json"), 422),
    ("box outside the page", dict(data=page_png(), boxes='{"totals_section": [900, 900, 950, 950]}'), 422),
    ("boxes with Infinity", dict(data=page_png(), boxes='{"totals_section": [0, 0, Infinity, 50]}'), 422),
    ("boxes with 1e999", dict(data=page_png(), boxes='{"totals_section": [0, 0, 1e999, 50]}'), 422),
    ("boxes with NaN", dict(data=page_png(), boxes='[{"totals_section": [NaN, 0, 10, 50]}]'), 422),
    ("1-pixel-tall image", dict(data=page_png((600, 1))), 422),
    ("jpeg truncated", dict(data=image_bytes("JPEG", size=(300, 300))[:300], name="a.jpg", ctype="image/jpeg"), 422),
]


@pytest.mark.parametrize("what,kwargs,status", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gets_a_4xx_json_error_and_the_server_stays_up(server, what, kwargs, status):
    kwargs = dict(kwargs)
    data = kwargs.pop("data")
    response = post(server, data, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["status"] == status and response.json()["error"]
    good = post(server, page_png((64, 64)))
    assert good.status_code == 200, good.text


def test_requests_without_a_file_get_422(server):
    response = server.post("/v1/extract", data={"boxes": "{}"})
    assert response.status_code == 422 and "file" in response.json()["error"]
    response = server.post("/v1/extract", content=b"{}", headers={"content-type": "application/json"})
    assert response.status_code == 422


def raw_request(url: str, head: str, body_parts=(), pause: float = 0.0, wait: float = 10.0) -> tuple[bytes, bool, int]:
    """Send a request by hand on a socket: the head, then body parts as long as the server reads
    them; then wait for the answer. Returns (response bytes, connection closed by the server, body
    bytes the socket accepted)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=wait)
    sent = 0
    try:
        sock.sendall(head.encode("latin-1"))
        for part in body_parts:
            try:
                sock.sendall(part)
                sent += len(part)
            except OSError:  # the server stopped reading and closed: what a refusal should do
                break
        time.sleep(pause)
        data, closed = b"", False
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
        return data, closed, sent
    finally:
        sock.close()


MULTIPART_HEAD = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
                  b"Content-Type: image/png\r\n\r\n")


def test_an_oversized_body_is_refused_without_being_read(server):
    url = str(server.base_url)
    # a declared size over the limit: 413 at once, and the connection is closed, nothing read
    head = ("POST /v1/extract HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {50 * 2**20}\r\n\r\n")
    data, closed, _ = raw_request(url, head)
    assert data.startswith(b"HTTP/1.1 413") and closed
    # a body just over the limit, sent whole: drained, so the client reads a clean 413 (kept alive)
    body = b"\x00" * (LIMITS.max_upload_bytes + 100_000)
    head = ("POST /v1/extract HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    data, closed, sent = raw_request(url, head, [body], wait=1.0)
    assert data.startswith(b"HTTP/1.1 413") and not closed and sent == len(body)
    # chunked (no Content-Length): refused once the limit streams past; the rest is never read
    head = ("POST /v1/extract HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            "Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"\x00" * 65536
    parts = [b"%x\r\n%s\r\n" % (len(MULTIPART_HEAD), MULTIPART_HEAD)] + [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 8
    data, closed, sent = raw_request(url, head, parts)
    assert data.startswith(b"HTTP/1.1 413") and b"over the limit" in data
    assert closed  # the server does not wait for (or read) the rest of the 50 MB-to-come
    assert post(server, page_png()).status_code == 200


def test_a_slow_client_gets_408(service):
    app = create_app(service, LIMITS, read_timeout=0.5, body_timeout=5)
    with RunningServer(app) as url:
        head = ("POST /v1/extract HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                "Content-Length: 5000\r\n\r\n")
        start = time.monotonic()
        data, closed, _ = raw_request(url, head, [MULTIPART_HEAD], wait=10)  # then nothing more
        assert data.startswith(b"HTTP/1.1 408") and closed
        assert time.monotonic() - start < 5


def test_one_bad_upload_never_fails_the_others(service):
    """Three good receipts and a 1-pixel-tall image sent together: three 200s and one 422."""
    app = create_app(service, LIMITS, batch_size=8)
    with RunningServer(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        uploads = [page_png((200 + 20 * i, 120)) for i in range(3)] + [page_png((600, 1))]
        statuses: dict[int, int] = {}
        errors: dict[int, str] = {}

        def send(i: int) -> None:
            response = post(client, uploads[i])
            statuses[i] = response.status_code
            errors[i] = response.json().get("error", "")

        threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [statuses[i] for i in range(4)] == [200, 200, 200, 422], errors
        assert "600x1" in errors[3] and "too small to read" in errors[3]


def test_a_batch_that_fails_is_rerun_request_by_request(service):
    """Even a crop that reaches the model unprepared (600x1) fails alone, not its whole batch."""
    from finscribe.deploy.worker import ModelWorker

    worker = ModelWorker(service, batch_size=8, max_queue=8, start=False)
    good = [[("page", Image.new("RGB", (120, 90), "white"), [0, 0, 120, 90])] for _ in range(3)]
    bad = [[("page", Image.new("RGB", (600, 1), "white"), [0, 0, 600, 1])]]
    futures = [worker.submit([page]) for page in (good[0], bad[0], good[1], good[2])]
    worker.start()
    try:
        outcomes = [f.exception(timeout=120) for f in futures]
        assert [e is None for e in outcomes] == [True, False, True, True]
        assert "600x1" in str(outcomes[1])
        assert worker.retried == 1 and len(futures[0].result()) == 1
    finally:
        worker.stop()


def test_multi_page_files_give_one_merged_document_with_boxes_per_page(server):
    boxes = '{"2": {"totals_section": [0, 0, 200, 100]}}'  # page 1 read whole, page 2 by its box
    body = post(server, pdf_bytes(2), name="inv.pdf", ctype="application/pdf", boxes=boxes).json()
    assert body["num_pages"] == 2 and [p["page"] for p in body["pages"]] == [1, 2]
    assert set(body["pages"][0]["regions"]) == {"page"} and set(body["pages"][1]["regions"]) == {"totals_section"}
    assert {"document", "violations", "valid", "conflicts"} <= set(body)
    per_page = [{"document": p["document"]} for p in body["pages"]]
    from finscribe.deploy.service import document_result

    assert body["document"] == document_result(per_page)["document"]
    as_list = post(server, pdf_bytes(2), name="inv.pdf", ctype="application/pdf",
                   boxes='[null, {"totals_section": [0, 0, 200, 100]}]').json()
    assert [set(p["regions"]) for p in as_list["pages"]] == [{"page"}, {"totals_section"}]
    wrong = post(server, pdf_bytes(2), name="inv.pdf", ctype="application/pdf", boxes='{"3": {}}')
    assert wrong.status_code == 422 and "page(s) [3]" in wrong.json()["error"]


def test_the_decoded_pixel_budget_answers_503_or_413_and_is_always_released(service):
    budget_bytes = 6 * 2**20  # one 600x600 page (2.9 MB to decode) at a time
    app = create_app(service, LIMITS, max_decoded_bytes=budget_bytes)
    with RunningServer(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        assert post(client, page_png((1000, 1000))).status_code == 413  # 8 MB to decode: never fits
        statuses: list[int] = []

        def send() -> None:
            statuses.append(post(client, page_png((600, 600))).status_code)

        threads = [threading.Thread(target=send) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert set(statuses) <= {200, 503} and 200 in statuses
        assert app.state.budget.used == 0 and app.state.budget.peak <= budget_bytes
        assert client.get("/health").json()["decoded_mib"] == 0


def test_a_request_whose_client_hung_up_is_not_computed(service):
    slow = PaddleOCRVLService.__new__(PaddleOCRVLService)
    slow.__dict__.update(service.__dict__)
    # 300 tokens per crop, loop guard off: the first request keeps the model busy for seconds
    slow.generation = dataclasses.replace(service.generation, max_new_tokens=300, batch_size=1, repetition_window=0)
    app = create_app(slow, LIMITS, batch_size=1)
    five = '{"vendor_block": [0, 0, 150, 100], "client_info": [150, 0, 300, 100], "invoice_meta": [0, 100, 150, 200], ' \
           '"line_items_table": [150, 100, 300, 200], "totals_section": [0, 0, 300, 200]}'
    with RunningServer(app) as url, httpx.Client(base_url=url, timeout=300) as client:
        first = threading.Thread(target=lambda: post(client, page_png(), boxes=five))  # keeps the model busy
        first.start()
        deadline = time.monotonic() + 60
        while not client.get("/health").json()["busy"] and time.monotonic() < deadline:
            time.sleep(0.01)
        body = (MULTIPART_HEAD + page_png() + b"\r\n--b--\r\n")
        head = ("POST /v1/extract HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        raw_request(url, head, [body], wait=0.2)  # sends it, then hangs up while it is queued
        assert app.state.worker.busy, "the first request must still run for this test to mean anything"
        first.join()
        deadline = time.monotonic() + 30
        while app.state.worker.jobs.qsize() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        health = client.get("/health").json()
        assert health["cancelled"] == 1 and health["batches"] == 1


def test_health_answers_while_an_extraction_runs_and_queued_requests_are_batched(service):
    slow = PaddleOCRVLService.__new__(PaddleOCRVLService)
    slow.__dict__.update(service.__dict__)
    # long enough to watch the worker being busy, even on an idle machine (the loop guard is off)
    slow.generation = dataclasses.replace(service.generation, max_new_tokens=200, repetition_window=0)
    app = create_app(slow, LIMITS, batch_size=8)
    with RunningServer(app) as url, httpx.Client(base_url=url, timeout=300) as client:
        statuses: list[int] = []

        def extract():
            statuses.append(post(client, page_png()).status_code)

        threads = [threading.Thread(target=extract) for _ in range(4)]
        for thread in threads:
            thread.start()
            time.sleep(0.05)
        busy_latencies = []
        deadline = time.monotonic() + 120
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            start = time.perf_counter()
            health = client.get("/health").json()
            if health["busy"]:
                busy_latencies.append(time.perf_counter() - start)
            time.sleep(0.02)
        for thread in threads:
            thread.join()
        assert statuses == [200] * 4
        assert busy_latencies, "never saw the worker busy"
        assert min(busy_latencies) < 1.0  # answered during the extraction, not after it
        # 4 requests, but those that waited behind the first were generated together.
        assert app.state.worker.batches < 4
