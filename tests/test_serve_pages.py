"""Whole pages in the service: a page sent without boxes goes through the region detector.

The reader is the committed tiny reader (its answers depend on the pixels it is given) and the
detector a random-weight tiny RT-DETR (`tiny_detector_dir`): untrained, it finds nothing at its
default threshold (every region missing, the answer lists no regions), and at threshold 0 it
always keeps its best box, so the found-regions path runs deterministically too.
"""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from deploy_helpers import RunningServer, invoice_pages
from PIL import Image
from test_uploads import pdf_bytes

from finscribe.data.schema import REGIONS
from finscribe.deploy.detector import DETECT_OVERSIZE, KEEP_PIXELS, PageDetector, pending_page
from finscribe.deploy.server import create_app
from finscribe.deploy.service import PaddleOCRVLService
from finscribe.deploy.uploads import UploadLimits
from finscribe.detection import widen_box
from finscribe.inference import GenerationArgs
from finscribe.quickstart_config import TINY_READER

LIMITS = UploadLimits(max_upload_bytes=8 * 2**20, max_pages=2, max_pixels=40_000_000, pdf_dpi=72)


@pytest.fixture(scope="module")
def reader():
    return GenerationArgs(model=str(TINY_READER), max_new_tokens=8, batch_size=8, device="cpu")


@pytest.fixture(scope="module")
def finding(reader, tiny_detector_dir):
    """A service whose detector always keeps its best box (threshold 0)."""
    return PaddleOCRVLService(reader, detector=PageDetector.load(tiny_detector_dir, threshold=0.0, margin=12))


@pytest.fixture(scope="module")
def strict(finding, tiny_detector_dir):
    """The same reader with the untrained detector at its default threshold: it finds nothing."""
    service = PaddleOCRVLService.__new__(PaddleOCRVLService)
    service.__dict__.update(finding.__dict__)
    service.detector = PageDetector.load(tiny_detector_dir)
    return service


@pytest.fixture(scope="module")
def invoice():
    return invoice_pages(1, dpi=72)[0]


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def post(client, data: bytes, name="page.png", ctype="image/png", **fields):
    return client.post("/v1/extract", files={"file": (name, data, ctype)}, data=fields)


def test_a_page_without_boxes_is_detected_cropped_with_the_margin_and_read_by_region(finding, invoice):
    page = invoice["image"]
    result = finding.extract(page)
    assert result["boxes_from"] == "detector" and result["detected_on"] == list(page.size)
    found = list(result["regions"])
    assert found and set(found) <= set(REGIONS)  # at threshold 0 the best box is always kept; never the page prompt
    assert result["missing"] == [r for r in REGIONS if r not in found]
    for info in result["regions"].values():
        x0, y0, x1, y1 = info["detected_box"]
        assert 0 <= x0 < x1 <= page.width and 0 <= y0 < y1 <= page.height
        assert info["box"] == list(widen_box(info["detected_box"], page.size, 12))  # the crop read: margin added
        assert 0.0 <= info["score"] <= 1.0 and info["raw_text"]
    assert result["timings"]["detect"] > 0
    # The boxes the answer gives, sent back, are read exactly as they were: no detection, same crops.
    sent = finding.extract(page, boxes={r: info["box"] for r, info in result["regions"].items()})
    assert sent["boxes_from"] == "sent" and sent["missing"] == [] and "detected_on" not in sent
    assert all("score" not in info for info in sent["regions"].values())
    assert {r: i["raw_text"] for r, i in sent["regions"].items()} == {r: i["raw_text"] for r, i in result["regions"].items()}


def test_a_page_sent_with_boxes_uses_them_and_other_boxes_read_other_pixels(finding, invoice):
    boxes = {r: invoice["boxes"][r] for r in ("vendor_block", "totals_section")}
    result = finding.extract(invoice["image"], boxes=boxes)
    assert result["boxes_from"] == "sent" and {r: i["box"] for r, i in result["regions"].items()} == boxes
    texts = {r: i["raw_text"] for r, i in result["regions"].items()}
    assert texts["vendor_block"] != texts["totals_section"]  # the reader read two different crops


def test_an_untrained_detector_finds_nothing_and_every_region_is_listed_missing(strict, invoice):
    result = strict.extract(invoice["image"])
    assert result["boxes_from"] == "detector" and result["regions"] == {}
    assert result["missing"] == list(REGIONS)
    assert result["document"] == {} and result["fields_read"] == 0 and result["valid"] is False
    document = strict.extract_document([(invoice["image"], None), (invoice["image"], None)])
    assert document["document"] == {} and document["valid"] is False and len(document["pages"]) == 2


def test_pages_of_waiting_requests_are_detected_together_in_the_model_thread(finding, invoice):
    from finscribe.deploy.worker import ModelWorker

    worker = ModelWorker(finding, batch_size=8, max_queue=8, start=False)
    held = [finding.split_or_hold(invoice["image"], None, "page 1"), finding.split_or_hold(invoice["image"], {}, "page 1")]
    futures = [worker.submit([page]) for page in held]  # two requests waiting before the worker starts
    worker.start()
    try:
        results = [future.result(timeout=120)[0] for future in futures]
    finally:
        worker.stop()
    assert worker.batches == 1  # one batch: one detector call for both pages, then one generation
    assert [r["boxes_from"] for r in results] == ["detector", "detector"]
    assert results[0]["regions"] == results[1]["regions"] and results[0]["timings"]["detect"] == results[1]["timings"]["detect"]


def test_a_large_page_is_held_and_detected_downscaled():
    page = Image.new("L", (3000, 4000), 255)  # 12 MP
    pending = pending_page(page, "page 1", (384, 512))
    assert pending.size == (3000, 4000)
    assert pending.page.width * pending.page.height <= KEEP_PIXELS
    assert pending.detect_image.size == (768, 1024)  # DETECT_OVERSIZE x the detector's input, aspect kept
    assert DETECT_OVERSIZE == 2 and pending.held_bytes() == pending.page.width * pending.page.height + 768 * 1024  # "L": a byte a pixel


def test_boxes_found_on_the_small_copy_of_a_40_mp_scan_come_back_in_the_scan_pixels(finding, invoice):
    from finscribe.detection import detect_regions

    scan = invoice["image"].convert("L").resize((5300, 7500), Image.Resampling.NEAREST)
    pending = pending_page(scan, "the scan", finding.detector.input_size)
    [on_copy] = detect_regions(finding.detector.model, finding.detector.processor, [pending.detect_image], threshold=0.0)
    [(crops, found)] = finding.detector.split([pending])
    assert found["detected_on"] == list(pending.detect_image.size) and list(found["boxes"]) == list(on_copy.boxes)
    sx, sy = 5300 / pending.detect_image.width, 7500 / pending.detect_image.height
    for region, box in found["boxes"].items():
        expected = [on_copy.boxes[region][0] * sx, on_copy.boxes[region][1] * sy,
                    on_copy.boxes[region][2] * sx, on_copy.boxes[region][3] * sy]
        assert all(abs(a - b) <= 1 for a, b in zip(box, expected)), (box, expected)
    for region, crop, read_box in crops:  # cut from the held copy, fitted for the model
        assert read_box == list(widen_box(found["boxes"][region], (5300, 7500), 12))
        assert crop.mode == "RGB" and crop.width * crop.height <= KEEP_PIXELS


def test_serve_options_and_the_default_layout_model():
    from finscribe.config import parse_config
    from finscribe.deploy.server_config import DEFAULT_LAYOUT_MODEL, ServeConfig
    from finscribe.detection import DEFAULT_LAYOUT_MODEL as DETECTION_DEFAULT
    from finscribe.detection import DEFAULT_MARGIN

    assert DEFAULT_LAYOUT_MODEL == DETECTION_DEFAULT
    config = parse_config(ServeConfig, ["--model", "m"], "serve", "")
    assert (config.layout_model, config.margin, config.detect_threshold) == (str(DETECTION_DEFAULT), DEFAULT_MARGIN, 0.3)
    config = parse_config(ServeConfig, ["--model", "m", "--layout-model", "det", "--margin", "4",
                                        "--detect-threshold", "0.5"], "serve", "")
    assert (config.layout_model, config.margin, config.detect_threshold) == ("det", 4, 0.5)
    for bad in (["--detect-threshold", "1.5"], ["--margin", "-1"]):  # one clear line, before anything loads
        with pytest.raises(SystemExit):
            parse_config(ServeConfig, ["--model", "m", *bad], "serve", "")
    from finscribe.detection import DetectionError

    with pytest.raises(DetectionError, match="--detect-threshold"):
        PageDetector.load("unused", threshold=1.5)
    with pytest.raises(DetectionError, match="no detector there"):
        PageDetector.load(Path("no/such/detector"))


@pytest.fixture(scope="module")
def server(strict):
    app = create_app(strict, LIMITS)
    with RunningServer(app) as url, httpx.Client(base_url=url, timeout=300) as client:
        client.app = app
        yield client


def test_the_model_endpoint_names_the_layout_model(server, tiny_detector_dir):
    info = server.get("/v1/model").json()
    assert info["layout_model"] == tiny_detector_dir.name and str(tiny_detector_dir) not in server.get("/v1/model").text
    assert (info["detect_threshold"], info["margin"]) == (0.3, 0)


def test_bad_pages_get_a_4xx_or_an_answer_with_no_regions(server, invoice):
    thin = post(server, png(Image.new("RGB", (600, 1), "white")))  # 1 pixel tall
    assert thin.status_code == 422 and "600x1" in thin.json()["error"] and "too small to read" in thin.json()["error"]
    white = post(server, png(Image.new("RGB", (850, 1100), "white")))
    assert white.status_code == 200, white.text
    page = white.json()["pages"][0]
    assert page["regions"] == {} and page["missing"] == list(REGIONS) and white.json()["valid"] is False
    # A 40 MP greyscale scan (an invoice blown up 7.4x): accepted, detected on a small copy, boxes in its own pixels.
    scan = invoice["image"].convert("L").resize((5300, 7500), Image.Resampling.NEAREST)
    big = post(server, png(scan))
    assert big.status_code == 200, big.text
    page = big.json()["pages"][0]
    assert (page["width"], page["height"]) == (5300, 7500) and page["boxes_from"] == "detector"
    assert max(page["detected_on"]) <= DETECT_OVERSIZE * 512
    budget = server.app.state.budget
    assert budget.used == 0 and 5300 * 7500 <= budget.peak <= budget.max_bytes  # decoding it was counted, then released
    assert post(server, png(invoice["image"])).status_code == 200  # and the server still serves


def test_a_pdf_page_without_boxes_is_detected_and_one_with_boxes_is_not(server):
    body = post(server, pdf_bytes(2), name="inv.pdf", ctype="application/pdf",
                boxes='{"2": {"totals_section": [0, 0, 200, 100]}}').json()
    assert [p["boxes_from"] for p in body["pages"]] == ["detector", "sent"]
    assert body["pages"][0]["missing"] == list(REGIONS) and set(body["pages"][1]["regions"]) == {"totals_section"}
