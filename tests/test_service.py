"""PaddleOCRVLService with the tiny real PaddleOCR-VL: splitting, batching, merging, validation."""

from __future__ import annotations

import pytest
from PIL import Image

from finscribe.data.merge import merge_pages
from finscribe.deploy.quantize import quantize_model
from finscribe.deploy.service import (
    PaddleOCRVLService,
    RegionBoxError,
    clamp_box,
    document_result,
    split_page,
)
from finscribe.inference import GenerationArgs
from finscribe.ingest import IngestError
from finscribe.limits import PROCESSOR_MAX_PIXELS
from finscribe.quickstart_config import TINY_READER
from finscribe.synthetic.ocr_text import page_samples


@pytest.fixture(scope="module")
def service(tiny_model_dir):
    return PaddleOCRVLService(GenerationArgs(model=str(tiny_model_dir), max_new_tokens=4, batch_size=4, device="cpu"))


def test_split_page_crops_boxes_and_falls_back_to_the_whole_page():
    page = Image.new("RGB", (400, 300), "white")
    assert [(r, c.size, b) for r, c, b in split_page(page, None)] == [("page", (400, 300), [0, 0, 400, 300])]
    crops = split_page(page, {"totals_section": [200.4, 150, 500, 300], "vendor_block": [0, 0, 100, 50]})
    assert [(r, c.size, b) for r, c, b in crops] == [
        ("totals_section", (200, 150), [200, 150, 400, 300]), ("vendor_block", (100, 50), [0, 0, 100, 50])]
    with pytest.raises(RegionBoxError, match="no area"):
        clamp_box([500, 500, 600, 600], 400, 300, "totals_section")
    with pytest.raises(RegionBoxError, match="unknown region"):
        clamp_box([0, 0, 10, 10], 400, 300, "signature")
    for bad in (float("inf"), float("nan"), 1e999, -float("inf")):  # never an OverflowError
        with pytest.raises(RegionBoxError, match="not finite"):
            clamp_box([0, 0, bad, 10], 400, 300, "totals_section")


def test_crops_are_fitted_for_the_model_and_too_thin_ones_refused():
    big = Image.new("RGB", (3000, 2000), "white")
    [(region, crop, box)] = split_page(big, None)
    assert crop.width * crop.height <= PROCESSOR_MAX_PIXELS and box == [0, 0, 3000, 2000]
    grey = Image.new("L", (400, 300), 200)
    assert split_page(grey, {"totals_section": [0, 0, 100, 100]})[0][1].mode == "RGB"
    with pytest.raises(IngestError) as info:  # a 1-pixel-tall page: the processor's 200:1 limit, said clearly
        split_page(Image.new("RGB", (600, 1), "white"), None)
    assert info.value.status == 422 and "too small to read" in info.value.message
    with pytest.raises(IngestError, match="totals_section box"):
        split_page(big, {"totals_section": [0, 0, 600, 5]})


def test_pages_merge_into_one_document():
    from finscribe.synthetic.generator import generate_invoice

    label = generate_invoice(num_items=4, currency="USD", seed=3).to_label()
    items = label["line_items_table"]["line_items"]
    page1 = {r: label[r] for r in ("vendor_block", "client_info", "invoice_meta")}
    page1["line_items_table"] = {"line_items": items[:2]}
    page1["totals_section"] = {"subtotal": "0.01"}  # a running subtotal carried forward, superseded
    page2 = {"line_items_table": {"line_items": items[2:]}, "totals_section": label["totals_section"],
             "invoice_meta": {"invoice_number": "OTHER"}}
    merged, conflicts = merge_pages([page1, page2])
    assert merged == label  # header from page 1, items of both pages in order, totals from the last page
    assert {(c["region"], c["field"], c["page"], c["other_page"]) for c in conflicts} == {
        ("totals_section", "subtotal", 2, 1), ("invoice_meta", "invoice_number", 1, 2)}
    whole = document_result([{"document": page1}, {"document": page2}])
    assert whole["valid"] is True and whole["violations"] == [] and whole["document"] == label
    for page in (page1, page2):  # each page alone is a partial document
        assert document_result([{"document": page}])["valid"] is False


def test_extract_returns_the_documented_shape(service):
    page = Image.new("RGB", (400, 300), "white")
    result = service.extract(page, boxes={"totals_section": [200, 150, 400, 300], "client_info": [0, 100, 200, 200]})
    assert set(result) >= {"document", "violations", "regions", "timings", "model"}
    assert set(result["regions"]) == {"totals_section", "client_info"}
    for info in result["regions"].values():
        assert set(info) >= {"raw_text", "error", "repetition"}
        # 4 tokens of an untrained model are not JSON: the error says so and nothing is invented
        assert info["error"] and info["new_tokens"] <= 4
    assert result["document"] == {} and result["valid"] is False
    assert set(result["timings"]) == {"split", "detect", "extract", "validate", "total"}
    assert result["timings"]["total"] >= result["timings"]["extract"] > 0


def test_batched_pages_equal_pages_extracted_alone():
    """The committed tiny reader answers each rendered totals block with its own text, so a page
    mix-up in the batch (or padding that leaks between pages of different sizes) changes an answer."""
    blocks = [s for index in range(4) for s in page_samples(987_654, index, degrade_probability=0.0)
              if s.kind == "block" and s.region == "totals_section"][:3]
    pages = [(b.image, {"totals_section": [0, 0, *b.image.size]}) for b in blocks]
    assert len({b.image.size for b in blocks}) > 1  # mixed sizes: left padding and per-image patches in one batch
    reader = PaddleOCRVLService(GenerationArgs(model=str(TINY_READER), max_new_tokens=16, batch_size=4, device="cpu"))
    together = reader.extract_pages(pages)
    alone = [reader.extract(image, boxes) for image, boxes in pages]
    answers = [r["regions"]["totals_section"]["raw_text"] for r in together]
    assert len(set(answers)) == len(pages), answers  # the answers depend on the page
    assert [r["regions"] for r in together] == [r["regions"] for r in alone]


def test_quantized_folders_are_detected(tiny_model_dir, tmp_path):
    folder = quantize_model(tiny_model_dir, tmp_path / "int8", device="cpu")
    service = PaddleOCRVLService(GenerationArgs(model=str(folder), max_new_tokens=2))
    info = service.info()
    assert info["quantized"] is True and info["quantization"] == "int8_dynamic"
    assert info["parameters"] == PaddleOCRVLService(GenerationArgs(model=str(tiny_model_dir))).info()["parameters"]
    from finscribe.deploy.quantize import QuantizationError

    by_path = PaddleOCRVLService(folder, max_new_tokens=3, device="cpu")  # the seed's call: path + options
    assert by_path.generation == GenerationArgs(model=str(folder), max_new_tokens=3, device="cpu")
    with pytest.raises(QuantizationError, match="not a quantized model folder"):
        PaddleOCRVLService(GenerationArgs(model=str(tiny_model_dir)), quantized=True)


def test_a_page_answered_with_flat_json_is_never_valid():
    """The page prompt answered with flat keys reads zero schema fields: not "valid", and the keys are reported."""
    from finscribe.deploy.service import read_fields

    assert read_fields({"total": "12.00", "subtotal": "10.00"}) == (0, ["total", "subtotal"])
    assert read_fields({"totals_section": {"total": "12.00", "color": "red"}}) == (1, ["totals_section.color"])
    rows = {"line_items_table": {"line_items": [{"description": "A", "quantity": "1", "unit_price": "2.00",
                                                 "line_total": "2.00"}]}}
    assert read_fields(rows) == (4, [])


def test_extract_reports_fields_read_and_valid_needs_a_field(service):
    result = service.extract(Image.new("RGB", (400, 300), "white"))
    assert result["valid"] == (result["fields_read"] > 0 and not result["violations"])
    if not result["fields_read"]:
        assert result["valid"] is False


def test_the_service_decodes_validated_beams_when_asked(tiny_model_dir):
    service = PaddleOCRVLService(GenerationArgs(model=str(tiny_model_dir), max_new_tokens=4, batch_size=4,
                                                device="cpu", beams=3))
    assert service.info()["beams"] == 3 and service.info()["constrained"] is False
    page = Image.new("RGB", (400, 300), "white")
    result = service.extract(page, boxes={"totals_section": [200, 150, 400, 300]})
    totals = result["regions"]["totals_section"]
    # 4 tokens of an untrained model parse in no beam: the most likely one, flagged as not accepted
    assert (totals["beams"], totals["beam"], totals["accepted"]) == (3, 0, False)
    assert totals["error"] and result["valid"] is False
