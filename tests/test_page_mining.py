"""Pages in the hard-sample log (issue 24): what log_error accepts is what the replay can train on,
and a page logged with its full document label is replayed as region records (crop + slice)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from finscribe.data.formatters import prompt_for, serialize_target
from finscribe.data.schema import REGIONS
from finscribe.detection import DEFAULT_MARGIN, widen_box
from finscribe.mining.error_logger import ErrorLogError, log_error, read_error_log
from finscribe.mining.replay_dataset import build_hard_sample_dataset, hard_sample_records
from finscribe.synthetic.export import generate_dataset


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """(page path, full label, true boxes) of one generated invoice."""
    out = tmp_path_factory.mktemp("pages")
    manifest = json.loads(generate_dataset(1, out, workers=1, dpi=72, degrade=0.0).read_text())
    sample = manifest["samples"][0]
    label = json.loads((out / sample["label"]).read_text())
    return out / sample["page"], label, {r: entry["box"] for r, entry in sample["regions"].items()}


def test_a_document_shaped_label_logged_for_a_region_stores_its_slice(page, tmp_path):
    path, label, boxes = page
    crop = tmp_path / "totals.png"
    with Image.open(path) as image:
        image.crop(boxes["totals_section"]).save(crop)
    log_error(crop, {"totals_section": label["totals_section"]}, None, "INVALID_JSON", tmp_path / "hard")
    log_error(crop, label, None, "INVALID_JSON", tmp_path / "hard2")  # the whole label: its slice too
    for folder in ("hard", "hard2"):
        [entry] = read_error_log(tmp_path / folder)
        assert entry["gt"] == label["totals_section"]
        [record] = hard_sample_records(tmp_path / folder)
        assert json.loads(record["target"]) == label["totals_section"]


def test_log_error_refuses_at_once_what_the_replay_cannot_use(page, tmp_path):
    path, label, boxes = page
    hard = tmp_path / "hard"
    cases = [
        (dict(label["totals_section"], vendor_name="x"), "totals_section", None, r"unknown field\(s\) \['vendor_name'\]"),
        ({"invoice_meta": label["invoice_meta"]}, "totals_section", None, "has no 'totals_section' region"),
        (label["totals_section"], "page", None, r"unknown regions \['subtotal'"),
        ([], "totals_section", None, "must be the ground truth as a dict"),
        (label, "totals_section", boxes, "boxes= belongs to a page"),
        (label, "page", {"totals_section": [0, 0, 10**5, 10]}, "outside the"),
        (label, "page", {"footer": [0, 0, 10, 10]}, "unknown region 'footer'"),
        (label, "page", {"totals_section": [0, 0, 10]}, r"expected \[x0, y0, x1, y1\]"),
    ]
    for gt, region, page_boxes, message in cases:
        with pytest.raises(ErrorLogError, match=message):
            log_error(path, gt, None, "INVALID_JSON", hard, region=region, boxes=page_boxes)
    assert not (hard / "errors.jsonl").exists()  # nothing half-logged


def _pixels(image_or_path):
    with Image.open(image_or_path) if not isinstance(image_or_path, Image.Image) else image_or_path as image:
        return np.asarray(image.convert("RGB"))


def test_a_page_logged_with_its_full_label_is_replayed_as_region_records(page, tmp_path):
    path, label, boxes = page
    hard = tmp_path / "hard"
    log_error(path, label, None, "INVALID_JSON", hard, region="page", boxes=boxes, source_id="inv_000000")
    [entry] = read_error_log(hard)
    assert entry["region"] == "page" and entry["gt"] == label and entry["boxes"] == boxes
    dataset = build_hard_sample_dataset(hard, region_type="totals_section")
    [record] = dataset.to_list()
    assert record["region"] == "totals_section" and record["prompt"] == prompt_for("totals_section")
    assert record["target"] == serialize_target(label["totals_section"])  # the region's slice
    with Image.open(path) as image:
        expected = image.crop(widen_box(boxes["totals_section"], image.size, DEFAULT_MARGIN))
        assert np.array_equal(_pixels(record["image"]), _pixels(expected))  # the region's crop, not the page
    # Every region of the label, each on its own crop; "page" replays it whole.
    every = hard_sample_records(hard, region_type=None)
    assert [r["region"] for r in every] == [r for r in REGIONS if r in label]
    assert len({r["image"] for r in every}) == len(every)
    [whole] = hard_sample_records(hard, region_type="page")
    assert json.loads(whole["target"]) == label and whole["image"] == entry["image_path"]


def test_a_page_logged_without_boxes_is_cut_where_the_detector_finds_the_regions(page, tmp_path, tiny_detector_dir):
    path, label, boxes = page
    hard = tmp_path / "hard"
    log_error(path, label, None, "INVALID_JSON", hard, region="page", boxes={"totals_section": boxes["totals_section"]})
    # totals_section has its logged box; the others go to the (untrained, tiny) detector, which
    # may find nothing: a region it misses is left out and named, never cut at a guessed box.
    from finscribe.detection import detect_regions, load_detector

    model, processor = load_detector(tiny_detector_dir)
    with Image.open(path) as image:
        [found] = detect_regions(model, processor, [image.convert("RGB")])
    missing = [r for r in REGIONS if r != "totals_section" and r not in found.boxes]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = hard_sample_records(hard, region_type=None, layout_model=tiny_detector_dir)
    assert [r["region"] for r in records] == [r for r in REGIONS if r == "totals_section" or r in found.boxes]
    for record in records:
        assert json.loads(record["target"]) == label[record["region"]]
    [message] = [str(w.message) for w in caught if "not found by the detector" in str(w.message)] or [""]
    assert all(f": {region}" in message for region in missing) and bool(message) == bool(missing)
