"""finscribe.detection: a tiny real RT-DETR detector loads, answers at most one box per region in page
pixels, reports regions it did not find, and crops widened boxes within the page."""

from __future__ import annotations

import json

import pytest
from PIL import Image, ImageDraw
from transformers import RTDetrForObjectDetection

from finscribe.data.schema import REGIONS
from finscribe.detection import (
    DEFAULT_MARGIN,
    DetectionError,
    PageRegions,
    build_tiny_detector,
    crop_regions,
    detect_regions,
    load_detector,
    regions_of,
    tiny_detector_config,
    widen_box,
)
from finscribe.snap import snap_to_ink
from finscribe.synthetic.export import generate_dataset


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return load_detector(build_tiny_detector(tmp_path_factory.mktemp("det") / "tiny", seed=0))


def test_tiny_detector_has_the_five_regions_as_labels(detector):
    model, processor = detector
    assert [model.config.id2label[i] for i in range(len(REGIONS))] == list(REGIONS)
    assert model.config.freeze_backbone_batch_norms is False
    assert not model.training
    assert processor.size == {"height": 512, "width": 384}


def test_detect_regions_answers_one_box_per_region_within_each_page(detector):
    model, processor = detector
    pages = [Image.new("RGB", (620, 877), "white"), Image.new("L", (300, 200), 200), Image.new("RGB", (900, 1), "white")]
    found = detect_regions(model, processor, pages, threshold=0.0, batch_size=2)
    assert len(found) == 3
    for page, regions in zip(pages, found):
        assert regions.size == page.size
        assert set(regions.boxes) == set(regions.scores)
        assert set(regions.boxes).isdisjoint(regions.missing)
        assert set(regions.boxes) | set(regions.missing) == set(REGIONS)
        assert list(regions.boxes) == [r for r in REGIONS if r in regions.boxes]
        for x0, y0, x1, y1 in regions.boxes.values():
            assert 0 <= x0 < x1 <= page.width and 0 <= y0 < y1 <= page.height
    # Threshold 0 keeps every query's best label: an untrained detector still finds something.
    assert any(regions.boxes for regions in found)


def test_a_region_not_found_is_listed_missing_never_invented(detector):
    model, processor = detector
    [regions] = detect_regions(model, processor, [Image.new("RGB", (400, 500), "white")], threshold=1.0)
    assert regions.boxes == {} and regions.scores == {}
    assert regions.missing == tuple(REGIONS)
    assert crop_regions(Image.new("RGB", (400, 500)), regions) == {}
    assert regions.to_json() == {"size": [400, 500], "boxes": {}, "scores": {}, "missing": list(REGIONS)}


def test_regions_of_keeps_the_highest_scoring_usable_box():
    scores = [0.4, 0.9, 0.7, 0.8, 0.95]
    labels = ["vendor_block", "vendor_block", "totals_section", "invoice_meta", "invoice_meta"]
    boxes = [[1, 1, 50, 20], [10.4, 5.6, 80.2, 30.5], [-5, 90, 120, 130], [20, 40, 60, 50], [200, 10, 300, 20]]
    regions = regions_of(list(zip(labels, scores, boxes)), (100, 120))
    assert regions.boxes["vendor_block"] == (10, 5, 81, 31)  # rounded outward
    assert regions.scores["vendor_block"] == pytest.approx(0.9)
    assert regions.boxes["totals_section"] == (0, 90, 100, 120)  # clamped to the page
    # The 0.95 meta box lies outside the page: the usable 0.8 one is kept.
    assert regions.boxes["invoice_meta"] == (20, 40, 60, 50)
    assert list(regions.boxes) == ["vendor_block", "invoice_meta", "totals_section"]
    assert regions.missing == ("client_info", "line_items_table")
    assert json.loads(json.dumps(regions.to_json()))["boxes"]["vendor_block"] == [10, 5, 81, 31]


def test_one_query_box_goes_to_its_best_region_only():
    same = (100.0, 100.0, 300.0, 200.0)
    detections = [("client_info", 0.6, same), ("invoice_meta", 0.4, same), ("invoice_meta", 0.35, (400.0, 90.0, 600.0, 180.0)),
                  ("vendor_block", 0.3, same)]
    regions = regions_of(detections, (800, 1000))
    assert regions.boxes == {"client_info": (100, 100, 300, 200), "invoice_meta": (400, 90, 600, 180)}
    assert regions.missing == ("vendor_block", "line_items_table", "totals_section")


def test_widen_box_grows_by_the_margin_and_stays_on_the_page():
    assert widen_box((50, 60, 100, 110), (500, 500), margin=12) == (38, 48, 112, 122)
    assert DEFAULT_MARGIN == 0 and widen_box((50, 60, 100, 110), (500, 500)) == (50, 60, 100, 110)
    assert widen_box((3, 5, 195, 98), (200, 100), margin=10) == (0, 0, 200, 100)
    assert widen_box((3, 5, 195, 98), (200, 100), margin=0) == (3, 5, 195, 98)


def test_default_crops_at_the_true_boxes_are_the_generators_training_crops(tmp_path):
    # The page path reads what fine-tuning saw: a crop at a region's box, with nothing added (a
    # 12-px margin cost the quickstart's model 12-14 points of field accuracy on whole pages).
    manifest = generate_dataset(3, tmp_path / "gen", seed=5, workers=1)
    samples = json.loads(manifest.read_text())["samples"]
    for sample in samples:
        page = Image.open(manifest.parent / sample["page"]).convert("RGB")
        boxes = {region: tuple(entry["box"]) for region, entry in sample["regions"].items()}
        crops = crop_regions(page, PageRegions(page.size, boxes, {r: 1.0 for r in boxes}))
        assert set(crops) == set(REGIONS)
        for region, crop in crops.items():
            trained_on = Image.open(manifest.parent / sample["regions"][region]["crop"]).convert("RGB")
            assert crop.size == trained_on.size and crop.tobytes() == trained_on.tobytes(), (sample["id"], region)


def test_crop_regions_cuts_widened_boxes_in_regions_order():
    page = Image.new("RGB", (300, 400), "white")
    page.paste((0, 0, 0), (100, 200, 150, 220))
    regions = PageRegions(size=(300, 400), boxes={"client_info": (100, 200, 150, 220), "vendor_block": (0, 0, 40, 30)},
                          scores={"client_info": 0.9, "vendor_block": 0.8}, missing=("invoice_meta", "line_items_table", "totals_section"))
    crops = crop_regions(page, regions, margin=5)
    assert list(crops) == ["vendor_block", "client_info"]  # REGIONS order, whatever the dict order
    assert crops["client_info"].size == (60, 30)
    assert crops["client_info"].getpixel((5, 5)) == (0, 0, 0) and crops["client_info"].getpixel((2, 2)) == (255, 255, 255)
    assert crops["vendor_block"].size == (45, 35)


def test_load_detector_refuses_a_folder_without_a_detector(tmp_path):
    with pytest.raises(DetectionError, match="no config.json"):
        load_detector(tmp_path / "nothing")


def test_load_detector_refuses_another_label_set(tmp_path):
    config = tiny_detector_config()
    config.id2label = {0: "text", 1: "table"}
    config.label2id = {"text": 0, "table": 1}
    RTDetrForObjectDetection(config).save_pretrained(tmp_path / "other")
    with pytest.raises(DetectionError, match="train-layout --init-from"):
        load_detector(tmp_path / "other")


def test_the_committed_detector_is_the_default_loads_and_carries_its_card():
    from finscribe.detection import DEFAULT_LAYOUT_MODEL

    model, processor = load_detector()
    assert [model.config.id2label[i] for i in range(len(REGIONS))] == list(REGIONS)
    assert sum(f.stat().st_size for f in DEFAULT_LAYOUT_MODEL.iterdir()) <= 10 * 1024 * 1024
    card = (DEFAULT_LAYOUT_MODEL / "README.md").read_text()
    assert "Held-out figures" in card and "scripts/make_tiny_layout.sh" in card
    [regions] = detect_regions(model, processor, [Image.new("RGB", (827, 1169), "white")])
    assert set(regions.boxes) | set(regions.missing) == set(REGIONS)


def test_snap_scales_with_the_page_and_detect_regions_can_skip_it(detector):
    page = Image.new("RGB", (620, 877), "white")  # an A4 page at half the snap's scale: pad 4 px (3.5 rounded)
    for top in range(150, 224, 12):  # text-like lines, 8 px tall
        ImageDraw.Draw(page).rectangle((100, top, 299, min(top + 8, 224) - 1), fill=(0, 0, 0))
    x0, y0, x1, y1 = snap_to_ink(page, (95, 145, 305, 225))
    assert (x0, y0, x1, y1) == (100 - 4, 150 - 4, 300 + 4, 224 + 4)
    model, processor = detector
    [raw] = detect_regions(model, processor, [page], threshold=0.0, snap=False)
    [snapped] = detect_regions(model, processor, [page], threshold=0.0)
    assert raw.scores == snapped.scores and raw.missing == snapped.missing
    assert snapped.boxes == {r: snap_to_ink(page, b) for r, b in raw.boxes.items()}
