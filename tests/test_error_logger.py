"""The hard-sample log: content-addressed images, dedupe, concurrent writers, bad folders."""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest
from PIL import Image

from finscribe.mining.error_logger import (
    LOG_NAME,
    ErrorLogError,
    compact_error_log,
    file_sha256,
    load_error_log,
    log_error,
    read_error_log,
)

GT = {"subtotal": "100.00", "discount": "0.00", "tax_rate": "10", "tax_amount": "10.00",
      "total": "110.00", "currency": "USD"}


def make_images(folder, n):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"crop_{i}.png"
        Image.new("RGB", (40, 20), (i * 20 % 256, 255 - i, 7)).save(path)
        paths.append(path)
    return paths


def test_log_error_writes_an_auditable_record_and_stores_the_image_once(tmp_path):
    (image,) = make_images(tmp_path / "src", 1)
    error_dir = tmp_path / "hard"
    pred = dict(GT, total="111.00")
    record_id = log_error(image, GT, pred, "ARITHMETIC_INCONSISTENT", error_dir, region="totals_section",
                          model="models/tiny", raw_text=json.dumps(pred))
    sha = file_sha256(image)
    assert record_id == f"{sha[:16]}:totals_section"
    assert (error_dir / "images" / f"{sha}.png").read_bytes() == image.read_bytes()
    (line,) = (error_dir / LOG_NAME).read_text().splitlines()
    record = json.loads(line)
    assert record["image"] == f"images/{sha}.png" and record["image_sha256"] == sha
    assert record["gt"] == GT and record["pred"] == pred and record["raw_text"] == json.dumps(pred)
    assert record["error_type"] == "ARITHMETIC_INCONSISTENT" and record["model"] == "models/tiny"
    assert record["prompt"] == "Totals to JSON:" and record["count"] == 1
    assert record["time"].endswith("+00:00")
    # Same crop copied elsewhere: stored once, logged under the same key.
    copy = tmp_path / "elsewhere.png"
    copy.write_bytes(image.read_bytes())
    assert log_error(copy, GT, None, "INVALID_JSON", error_dir) == record_id
    assert len(list((error_dir / "images").iterdir())) == 1


def test_relogging_increments_the_count_and_keeps_the_latest(tmp_path):
    a, b = make_images(tmp_path / "src", 2)
    error_dir = tmp_path / "hard"
    log_error(a, GT, None, "INVALID_JSON", error_dir, model="m1")
    log_error(b, GT, dict(GT, total="1"), "ARITHMETIC_INCONSISTENT", error_dir)
    log_error(a, GT, dict(GT, currency="EUR"), "TEXT_MISMATCH", error_dir, model="m2")
    # another region: another key (a page's ground truth is its document label)
    log_error(a, {"totals_section": GT}, None, "INVALID_JSON", error_dir, region="page")
    records = read_error_log(error_dir)
    assert [(r["region"], r["count"]) for r in records] == [("totals_section", 2), ("totals_section", 1), ("page", 1)]
    first = records[0]
    assert first["error_type"] == "TEXT_MISMATCH" and first["pred"]["currency"] == "EUR"
    assert first["error_types"] == ["INVALID_JSON", "TEXT_MISMATCH"] and first["models"] == ["m1", "m2"]
    assert first["first_time"] <= first["time"]
    # Compaction folds the history into one line per key, same collapsed view.
    assert compact_error_log(error_dir) == []
    assert len((error_dir / LOG_NAME).read_text().splitlines()) == 3
    assert read_error_log(error_dir) == records
    log_error(a, GT, None, "INVALID_JSON", error_dir)
    assert read_error_log(error_dir)[0]["count"] == 3


def test_bad_input_is_refused_clearly(tmp_path):
    (image,) = make_images(tmp_path / "src", 1)
    with pytest.raises(ErrorLogError, match="nothing to log"):
        log_error(image, GT, GT, "OTHER", tmp_path / "hard")
    with pytest.raises(ErrorLogError, match="unknown error type 'TYPO'"):
        log_error(image, GT, None, "TYPO", tmp_path / "hard")
    with pytest.raises(ErrorLogError, match="missing.png: image not found"):
        log_error(tmp_path / "missing.png", GT, None, "INVALID_JSON", tmp_path / "hard")
    with pytest.raises(ErrorLogError, match="error folder not found"):
        read_error_log(tmp_path / "nowhere")


def test_corrupt_lines_and_missing_images_are_reported_and_good_records_kept(tmp_path):
    images = make_images(tmp_path / "src", 3)
    error_dir = tmp_path / "hard"
    for image in images:
        log_error(image, GT, None, "INVALID_JSON", error_dir)
    with open(error_dir / LOG_NAME, "ab") as handle:
        handle.write(b'{"id": "torn", "image": "images/x.png", "gt": {"subt')  # a writer died mid-line
    log_error(images[0], GT, None, "INVALID_JSON", error_dir)  # must land on its own line
    with open(error_dir / LOG_NAME, "ab") as handle:
        handle.write(b'{"valid json": "but not a record"}\n')
    (error_dir / "images" / f"{file_sha256(images[1])}.png").unlink()

    log = load_error_log(error_dir)
    assert [r["source_image"] for r in log.records] == [str(images[0]), str(images[2])]
    assert log.records[0]["count"] == 2
    messages = [str(p) for p in log.problems]
    assert len(messages) == 3
    assert messages[0].startswith(f"{LOG_NAME} line 2: image ") and "missing" in messages[0]
    assert messages[1].startswith(f"{LOG_NAME} line 4: not valid JSON")
    assert messages[2].startswith(f"{LOG_NAME} line 6: record lacks")
    with pytest.warns(UserWarning, match="3 problem"):
        assert len(read_error_log(error_dir)) == 2
    with pytest.raises(ErrorLogError, match="line 4: not valid JSON"):
        read_error_log(error_dir, strict=True)


def _writer(args):
    worker, images, error_dir, per_worker = args
    for i in range(per_worker):
        image = images[(worker + i) % len(images)]
        log_error(image, GT, {"total": f"{worker}.{i:02d}" + "0" * 500}, "ARITHMETIC_INCONSISTENT",
                  error_dir, model=f"worker{worker}", raw_text="x" * 3000)
    return os.getpid()


def test_concurrent_writers_never_tear_or_interleave_lines(tmp_path):
    images = make_images(tmp_path / "src", 10)
    error_dir = tmp_path / "hard"
    workers, per_worker = 4, 50
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pids = pool.map(_writer, [(w, images, error_dir, per_worker) for w in range(workers)])
    assert len(set(pids)) == workers  # really several processes
    lines = (error_dir / LOG_NAME).read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) - 1 == workers * per_worker
    parsed = [json.loads(line) for line in lines[:-1]]  # every line is whole JSON
    assert len({(p["model"], p["pred"]["total"]) for p in parsed}) == workers * per_worker
    log = load_error_log(error_dir)
    assert log.problems == []
    assert len(log.records) == 10 and len({r["id"] for r in log.records}) == 10
    assert sum(r["count"] for r in log.records) == workers * per_worker
    assert all(r["count"] == workers * per_worker // 10 for r in log.records)
    assert sorted(p.name for p in (error_dir / "images").iterdir()) == sorted(
        f"{file_sha256(i)}.png" for i in images)  # no temp files left behind
