"""Hard-sample records from an error folder, and the replay mix (ratio, oversampling, seed)."""

from __future__ import annotations

import collections
import json

import pytest
from PIL import Image

from finscribe.data.formatters import OCR_PROMPT, prompt_for, serialize_target
from finscribe.data.records import RECORD_KEYS
from finscribe.mining.error_logger import LOG_NAME, ErrorLogError, file_sha256, log_error
from finscribe.mining.replay_dataset import (
    build_hard_sample_dataset,
    mix_datasets,
    ocr_records,
    ocr_text,
)

TOTALS = {"subtotal": "100.00", "discount": "0.00", "tax_rate": "10", "tax_amount": "10.00",
          "total": "110.00", "currency": "USD"}
META = {"invoice_number": "INV-7", "invoice_date": "2024-03-15", "due_date": "2024-04-14", "currency": "USD"}


def normal_records(n, region="totals_section"):
    return [{"image": f"/data/crops/inv_{i:06d}__{region}.png", "prompt": prompt_for(region),
             "target": serialize_target(dict(TOTALS, total=f"{i}.00")), "region": region,
             "split": "train", "source_id": f"inv_{i:06d}", "layout": "classic"} for i in range(n)]


@pytest.fixture
def error_dir(tmp_path):
    folder = tmp_path / "hard"
    for i in range(5):
        path = tmp_path / f"crop_{i}.png"
        Image.new("RGB", (30, 10), (i * 40, 0, 0)).save(path)
        log_error(path, dict(TOTALS, total=f"{i}.00"), None, "INVALID_JSON" if i % 2 else "NUMERIC_MISMATCH",
                  folder, region="totals_section", layout="modern")
    meta_crop = tmp_path / "meta.png"
    Image.new("RGB", (30, 10), (0, 99, 0)).save(meta_crop)
    log_error(meta_crop, META, dict(META, invoice_date="2024-03-16"), "DATE_MISMATCH", folder, region="invoice_meta")
    return folder


def test_hard_sample_log_goes_through_the_same_validation(error_dir, tmp_path):
    bad = tmp_path / "bad.png"
    Image.new("RGB", (30, 10), (7, 7, 7)).save(bad)
    with pytest.raises(ErrorLogError, match=r"no replay could train on.*'\$110.00' is not a canonical number"):
        log_error(bad, dict(TOTALS, total="$110.00"), None, "NUMERIC_MISMATCH", error_dir, region="totals_section")
    # A line written by an older version (or by hand): the read path still refuses it, by line.
    good = json.loads((error_dir / LOG_NAME).read_text().splitlines()[0])
    edited = dict(good, id="0" * 16 + ":totals_section", gt=dict(TOTALS, total="$110.00"))
    with open(error_dir / LOG_NAME, "a") as handle:
        handle.write(json.dumps(edited) + "\n")
    with pytest.raises(ErrorLogError) as info:
        build_hard_sample_dataset(error_dir)
    assert "1 invalid ground truth(s)" in str(info.value)
    assert "totals_section.total: '$110.00' is not a canonical number" in str(info.value)


def test_build_hard_sample_dataset_has_build_dataset_records(error_dir, tmp_path):
    ds = build_hard_sample_dataset(error_dir)
    assert ds.column_names == list(RECORD_KEYS) and len(ds) == 5
    row = ds[0]
    sha = file_sha256(tmp_path / "crop_0.png")
    assert row == {"image": str((error_dir / "images" / f"{sha}.png").resolve()), "prompt": "Totals to JSON:",
                   "target": serialize_target(dict(TOTALS, total="0.00")), "region": "totals_section",
                   "split": "train", "source_id": f"hard:{sha}", "layout": "modern"}
    assert len(build_hard_sample_dataset(error_dir, region_type=None)) == 6
    meta = build_hard_sample_dataset(error_dir, region_type="invoice_meta")
    assert meta["prompt"] == ["Invoice details to JSON:"] and json.loads(meta[0]["target"]) == META
    assert len(build_hard_sample_dataset(error_dir, error_types=["INVALID_JSON"])) == 2
    assert len(build_hard_sample_dataset(error_dir, region_type="vendor_block")) == 0


def test_corrupt_log_keeps_good_hard_samples(error_dir):
    with open(error_dir / LOG_NAME, "ab") as handle:
        handle.write(b"{not json\n")
    with pytest.warns(UserWarning, match=r"line 7: not valid JSON"):
        assert len(build_hard_sample_dataset(error_dir)) == 5


def test_mix_ratio_matches_the_seed_and_oversamples_deterministically(error_dir):
    normal, hard = normal_records(40), build_hard_sample_dataset(error_dir)
    mixed = mix_datasets(normal, hard, ratio=0.2, seed=0)
    assert len(mixed) == 50  # normal + len(normal)//4, as in the seed
    sources = collections.Counter(mixed["source_id"])
    assert sum(c for s, c in sources.items() if s.startswith("hard:")) == 10
    assert {c for s, c in sources.items() if s.startswith("hard:")} == {2}  # 5 hard samples, each twice
    assert all(sources[r["source_id"]] == 1 for r in normal)
    again = mix_datasets(normal, hard, ratio=0.2, seed=0)
    assert again.to_list() == mixed.to_list()
    other = mix_datasets(normal, hard, ratio=0.2, seed=1)
    assert other["source_id"] != mixed["source_id"] and sorted(other["source_id"]) == sorted(mixed["source_id"])
    assert mixed["source_id"][:40] != [r["source_id"] for r in normal]  # shuffled, not appended


def test_mix_draws_without_replacement_when_there_are_enough(error_dir):
    normal, hard = normal_records(12), build_hard_sample_dataset(error_dir)
    mixed = mix_datasets(normal, hard, ratio=0.25, seed=3)
    hard_ids = [s for s in mixed["source_id"] if s.startswith("hard:")]
    assert len(mixed) == 16 and len(hard_ids) == 4 and len(set(hard_ids)) == 4
    assert len(mix_datasets(normal, hard, ratio=0.0)) == 12


def test_mix_refuses_bad_arguments(error_dir):
    normal = normal_records(8)
    with pytest.raises(ValueError, match="no hard samples"):
        mix_datasets(normal, build_hard_sample_dataset(error_dir, region_type="vendor_block"), ratio=0.2)
    with pytest.raises(ValueError, match="ratio"):
        mix_datasets(normal, build_hard_sample_dataset(error_dir), ratio=1.0)
    with pytest.raises(ValueError, match=r"column\(s\) \['layout'\] missing"):
        mix_datasets(normal, [{k: v for k, v in r.items() if k != "layout"} for r in normal], ratio=0.2)


def test_ocr_samples_read_the_values_of_the_region():
    assert ocr_text("totals_section", TOTALS) == "100.00\n0.00\n10\n10.00\n110.00\nUSD"
    rows = [{"description": "Widget", "quantity": "2", "unit_price": "10.00", "line_total": "20.00"},
            {"description": "Cable", "quantity": "5", "unit_price": "4.00", "line_total": "20.00"}]
    assert ocr_text("line_items_table", {"line_items": rows}) == "Widget 2 10.00 20.00\nCable 5 4.00 20.00"
    normal = normal_records(10)
    ocr = ocr_records(normal, 0.3, seed=0)
    assert len(ocr) == 3 and all(r["prompt"] == OCR_PROMPT for r in ocr)
    assert all(r["source_id"].startswith("ocr:inv_") for r in ocr)
    assert ocr == ocr_records(normal, 0.3, seed=0)


def test_mix_with_ocr_fraction(error_dir):
    normal = normal_records(30)
    mixed = mix_datasets(normal, build_hard_sample_dataset(error_dir), ratio=0.2, seed=0, ocr_fraction=0.1)
    prompts = collections.Counter(mixed["prompt"])
    assert len(mixed) == round(30 / 0.7) == 43
    assert prompts[OCR_PROMPT] == round(0.1 * 30 / 0.7) == 4
    assert sum(s.startswith("hard:") for s in mixed["source_id"]) == round(0.2 * 30 / 0.7) == 9
