"""The HTTP server on a real port (uvicorn in a thread) with the tiny real PaddleOCR-VL.

Every hostile or malformed upload gets its 4xx JSON error, and the next good request still
succeeds; /health answers while an extraction is running; queued requests are batched.
"""

from __future__ import annotations

import io
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

LIMITS = UploadLimits(max_upload_bytes=300_000, max_pages=2, max_pixels=2_000_000, pdf_dpi=72)


@pytest.fixture(scope="module")
def service(tiny_model_dir):
    # A few tokens per region: these tests are about the server, not the model's answers.
    return PaddleOCRVLService(tiny_model_dir, max_new_tokens=6, batch_size=4, device="cpu")


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
    assert info["model_path"] == str(tiny_model_dir) and info["quantized"] is False
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
    assert set(page["timings"]) == {"split", "extract", "validate", "total"}
    assert page["image"].startswith("data:image/jpeg;base64,")
    assert isinstance(page["violations"], list) and "document" in page


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


def test_requests_without_a_file_or_with_a_chunked_oversized_body(server):
    response = server.post("/v1/extract", data={"boxes": "{}"})
    assert response.status_code == 422 and "file" in response.json()["error"]
    response = server.post("/v1/extract", content=b"{}", headers={"content-type": "application/json"})
    assert response.status_code == 422

    def chunks():  # no Content-Length: the limit is enforced while the body streams in
        yield (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
               b"Content-Type: image/png\r\n\r\n")
        for _ in range(100):
            yield b"\x00" * 65536

    response = server.post("/v1/extract", content=chunks(),
                           headers={"content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413
    assert post(server, page_png()).status_code == 200


def test_health_answers_while_an_extraction_runs_and_queued_requests_are_batched(service):
    slow = PaddleOCRVLService.__new__(PaddleOCRVLService)
    slow.__dict__.update(service.__dict__)
    slow.max_new_tokens = 24  # long enough to watch the worker being busy
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
