"""Smoke tests of the benchmark scripts that have no other test (tiny settings: the figures
themselves are measured by running the scripts, see benchmarks/RESULTS.md)."""

from __future__ import annotations

import json
import random
import runpy
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def probe():
    return runpy.run_path(str(REPO / "benchmarks" / "reading_probe.py"))


def test_digit_accuracy_right_aligns_answers(probe):
    digit_accuracy = probe["digit_accuracy"]
    assert digit_accuracy(["123.45"], ["123.45"]) == 1.0
    assert digit_accuracy(["23.45"], ["123.45"]) == pytest.approx(5 / 6)  # a missing leading digit
    assert digit_accuracy(["999123.45"], ["123.45"]) == 1.0  # right-aligned: extra leading digits ignored
    assert digit_accuracy([""], ["1.00"]) == 0.0


def test_rendered_strip_matches_its_target(probe):
    import matplotlib
    from PIL import ImageFont

    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"), 20)
    sample = probe["render_amount"](random.Random(3), font, 6, 20)
    assert sample["prompt"] == "OCR:" and "," not in sample["target"]
    integer, cents = sample["target"].split(".")
    assert integer.isdigit() and len(cents) == 2 and len(integer) <= 6
    assert sample["image"].size[0] % 28 == 0 and sample["image"].size[1] % 28 == 0
    assert sample["image"].getextrema()[0][0] < 128  # something dark was drawn


def test_reading_probe_runs_and_writes_its_curve(probe, tmp_path):
    out = tmp_path / "probe"
    rows = probe["run"](probe["ProbeConfig"](output_dir=out, steps=2, batch_size=2, eval_every=1, test_size=4,
                                             hidden_size=32, num_layers=1, vision_hidden_size=32, vision_layers=1,
                                             threads=1))
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert rows[0]["train_loss"] is None and all(r["train_loss"] > 0 for r in rows[1:])  # evaluated before any step
    assert all(len(r["example"]) == 2 and r["example"][1].replace(".", "").isdigit() for r in rows)
    saved = json.loads((out / "reading_probe.json").read_text())
    assert saved["points"] == json.loads(json.dumps(rows))
    assert (out / "reading_probe.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_sixteen_huge_pngs_at_once_stay_under_1_5_gb(tiny_model_dir, tmp_path):
    """Issue 13 item 4, on loopback: `finscribe serve` as its own process, 16 clients each send a
    132 KB PNG of 6300x6300 at the same moment; every answer is 200, 503 or 413 and the server's
    peak RSS (VmHWM) stays under 1.5 GB (~20 s; the figures are in benchmarks/RESULTS.md)."""
    import subprocess
    import sys

    out = tmp_path / "huge.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "service_load.py"), "--model", str(tiny_model_dir),
                           "--scenario", "huge", "--max-new-tokens", "4", "--max-seconds", "240", "--output", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    huge = report["classes"]["huge"]
    assert huge["requests"] == 16 and huge["failed"] == 0
    assert set(huge["statuses"]) <= {"200", "503", "413"} and "200" in huge["statuses"]
    assert report["peak_rss_mb"] < 1536


def test_mining_replay_scores_held_out_crops_of_the_mined_types(tiny_model_dir, tmp_path):
    """The mining-loop benchmark end to end on the tiny model: mines on val, retrains twice from the
    same model (with and without replay), scores test crops only; every count ties to the files."""
    from conftest import write_records

    totals = [f'{{"total":"{i * 11}.{i}0"}}' for i in range(12)]
    records = (write_records(tmp_path / "crops", totals[:6]) + write_records(tmp_path / "crops", totals[6:9], split="val")
               + write_records(tmp_path / "crops", totals[9:], split="test"))
    data = tmp_path / "records.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    bench = runpy.run_path(str(REPO / "benchmarks" / "mining_replay.py"))
    out = tmp_path / "replay"
    result = bench["run"](bench["MiningReplayConfig"](model=str(tiny_model_dir), data=data, output_dir=out, max_steps=1,
                                                       batch_size=2, max_new_tokens=4))
    # an untrained model gets every val crop wrong: all three are logged, and replayed in training
    assert result["mined"]["crops"] == 3 and result["mined"]["hard_samples"] == 3
    assert len((out / "hard_samples" / "errors.jsonl").read_text().splitlines()) == 3
    assert (out / "replay" / "config.json").is_file() and (out / "control" / "config.json").is_file()
    assert json.loads((out / "replay" / "train_config.json").read_text())["hard_samples"] == str(out / "hard_samples")
    assert json.loads((out / "control" / "train_config.json").read_text())["hard_samples"] is None
    # scored on the three test crops, never on the mined val crops
    assert result["test_crops"] == 3 and result["test_crops_of_mined_types"] == 3
    for scope in ("on_test_crops_of_mined_types", "on_all_test_crops"):
        assert set(result[scope]) == {"before retraining", "with replay", "without replay (control)"}
        assert all(s["crops"] == 3 for s in result[scope].values())
    assert json.loads((out / "mining_replay.json").read_text()) == json.loads(json.dumps(result))
    assert "| with replay | test crops of mined types | 3 |" in (out / "mining_replay.md").read_text()


def test_wilson_interval_brackets_the_rate_and_narrows_with_n():
    wilson = runpy.run_path(str(REPO / "benchmarks" / "reader_lines.py"))["wilson_interval"]
    low, high = wilson(45, 50)
    assert low < 0.9 < high and high < 1.0
    assert wilson(50, 50)[1] == pytest.approx(1.0) and wilson(50, 50)[0] > 0.9
    assert wilson(450, 500)[1] - wilson(450, 500)[0] < high - low
    assert str(wilson(0, 62)[0]) == "0.0" and wilson(62, 62)[1] == 1.0  # never -0.0 or above 1 at the ends


def test_reader_lines_reads_held_out_totals_of_the_committed_reader(tmp_path):
    """Two held-out invoices: every totals line and block is scored and written, CI included."""
    import subprocess
    import sys

    out = tmp_path / "reader_lines.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "reader_lines.py"), "--pages", "2", "--regions", "totals_section",
                    "--output", str(out)], check=True, cwd=REPO, capture_output=True)
    report = json.loads(out.read_text())
    assert report["line"]["n"] >= 4 and set(report["line"]["regions"]) == {"totals_section"}
    assert report["block"]["n"] >= 1 and set(report["block"]["regions"]) == {"totals_section"}
    low, high = report["line"]["exact_95ci"]
    assert low <= report["line"]["exact"] <= high
    assert report["line"]["cer"] < 0.5  # the committed reader reads; a model that cannot scores near 1


def test_reader_lines_reports_every_region_with_its_interval(tmp_path):
    """By default every region is read, lines and blocks, each with its own Wilson interval, and
    the printed table has a row per region."""
    import subprocess
    import sys

    out = tmp_path / "reader_lines.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "reader_lines.py"), "--pages", "1", "--output", str(out)],
                          check=True, cwd=REPO, capture_output=True, text=True)
    report = json.loads(out.read_text())
    regions = {"vendor_block", "client_info", "invoice_meta", "line_items_table", "totals_section"}
    assert regions <= set(report["line"]["regions"])
    for scored in report["line"]["regions"].values():
        low, high = scored["exact_95ci"]
        assert low <= scored["exact"] <= high
    assert "line_items_table" in report["block"]["regions"]  # whole tables are read as blocks too
    assert all(f"| line | {region} |" in done.stdout for region in regions)


def test_reader_lines_names_a_missing_model_in_one_line(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "reader_lines.py"), "--model", str(tmp_path / "nope")],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"model folder {tmp_path / 'nope'} not found" in done.stderr


@pytest.mark.slow
def test_service_pages_sends_pages_and_bad_pages_through_serve(tiny_detector_dir, tmp_path):
    """benchmarks/service_pages.py end to end (~1 min): `finscribe serve` with the tiny reader and a
    random tiny detector at threshold 0 (it keeps its best box); the bad pages get a 4xx or a 200."""
    import subprocess
    import sys

    out = tmp_path / "pages.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "service_pages.py"), "--model",
                    str(REPO / "finscribe" / "assets" / "tiny_reader"), "--layout-model", str(tiny_detector_dir),
                    "--detect-threshold", "0", "--pages", "2", "--max-new-tokens", "4", "--output", str(out)],
                   check=True, cwd=REPO, capture_output=True, text=True, timeout=600)
    report = json.loads(out.read_text())
    assert report["layout_model"] == tiny_detector_dir.name and report["pages"]["pages"] == 2
    assert report["pages"]["regions_found_mean"] >= 1  # threshold 0: the best box is always kept
    bad = report["bad_pages"]
    assert bad["1px-tall"]["status"] == 422 and bad["white"]["status"] == 200
    assert bad["40mp-scan"]["status"] == 200 and bad["40mp-scan"]["size"] == [5300, 7500]
    assert max(bad["40mp-scan"]["detected_on"]) <= 1024


def test_scoring_speed_rescores_a_run_alike_at_every_process_count(tmp_path):
    from finscribe.data.formatters import serialize_target
    from finscribe.eval.scoring import score_record
    from finscribe.inference import Prediction

    rows = []
    for i in range(6):
        target = {"line_items": [{"description": f"Item {j}", "quantity": "1", "unit_price": f"{j}.00",
                                  "line_total": f"{j}.00"} for j in range(1 + i)]}
        answer = dict(target, line_items=target["line_items"][:-1] if i % 2 else target["line_items"])
        record = {"region": "line_items_table", "target": serialize_target(target), "source_id": f"d{i}",
                  "layout": "classic", "image": f"d{i}.png", "split": "test"}
        rows.append(score_record(record, Prediction(parsed=answer, raw_text=json.dumps(answer), error=None,
                                                    repetition=False, prompt_tokens=5, new_tokens=9, seconds=0.1)))
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "benchmarks" / "scoring_speed.py"), *args],
                              cwd=REPO, capture_output=True, text=True)

    output = tmp_path / "speed.json"
    done = run("--predictions", str(predictions), "--processes", "1", "2", "--output", str(output))
    assert done.returncode == 0, done.stderr
    result = json.loads(output.read_text())
    assert result["records"] == 6 and [r["processes"] for r in result["results"]] == [1, 2]
    assert all(r["same_rows_as_first"] for r in result["results"])
    assert len({row["teds"] for row in rows}) > 1  # some tables read wrong, so equal rows are not all alike
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"source_id": "x"}\n', encoding="utf-8")
    done = run("--predictions", str(broken))
    assert done.returncode == 2 and "Traceback" not in done.stderr and "not a predictions.jsonl" in done.stderr


def test_paired_runs_pairs_rows_by_record_and_reports_b_minus_a(tmp_path):
    from finscribe.data.formatters import serialize_target
    from finscribe.eval.scoring import score_record
    from finscribe.inference import Prediction

    def scored(source: str, right: bool) -> dict:
        target = {"total": "10.00", "currency": "USD"}
        answer = target if right else dict(target, total="11.00")
        record = {"region": "totals_section", "target": serialize_target(target), "source_id": source,
                  "layout": "classic", "image": f"{source}.png", "split": "test"}
        return score_record(record, Prediction(parsed=answer, raw_text=json.dumps(answer), error=None,
                                               repetition=False, prompt_tokens=5, new_tokens=9, seconds=0.1))

    # A gets 2 of 4 totals right, B all 4: B − A = +0.25 in field accuracy (2 of 8 fields); B's rows come in another order
    a = [scored(f"d{i}", right=i < 2) for i in range(4)]
    b = [scored(f"d{i}", right=True) for i in reversed(range(4))]
    paths = {}
    for name, rows in (("a", a), ("b", b), ("other", a[:3])):
        paths[name] = tmp_path / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "benchmarks" / "paired_runs.py"), *args],
                              cwd=REPO, capture_output=True, text=True)

    output = tmp_path / "paired.json"
    done = run("--a", str(paths["a"]), "--b", str(paths["b"]), "--metrics", "field_accuracy", "exact_match",
               "--output", str(output))
    assert done.returncode == 0, done.stderr
    result = json.loads(output.read_text())
    cell = result["overall"]["field_accuracy"]
    assert (cell["base"], cell["model"]) == (0.75, 1.0) and cell["delta"] == pytest.approx(0.25)
    assert cell["ci_low"] <= 0.25 <= cell["ci_high"] and result["totals_section"]["exact_match"]["delta"] == 0.5
    assert "overall" in done.stdout and "+0.250" in done.stdout
    done = run("--a", str(paths["a"]), "--b", str(paths["other"]))
    assert done.returncode == 2 and "Traceback" not in done.stderr and "different records" in done.stderr


def test_table_breaks_finds_the_first_wrong_row_and_the_tokens_before_it(tmp_path):
    from PIL import Image

    from finscribe.data.formatters import serialize_target
    from finscribe.eval.scoring import score_record
    from finscribe.inference import Prediction
    from finscribe.quickstart_config import TINY_READER

    rows = [{"description": f"Item {k}", "quantity": "1", "unit_price": "2.00", "line_total": "2.00"} for k in range(6)]
    answer = {"line_items": rows[:3] + [dict(rows[3], description="Invented")] + rows[4:] + rows[:2]}
    image = tmp_path / "table.png"
    Image.new("RGB", (300, 120), "white").save(image)
    record = {"region": "line_items_table", "target": serialize_target({"line_items": rows}), "source_id": "d0",
              "layout": "classic", "image": str(image), "split": "test"}
    scored = score_record(record, Prediction(parsed=answer, raw_text=json.dumps(answer), error=None,
                                             repetition=False, prompt_tokens=5, new_tokens=9, seconds=0.1))
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text(json.dumps(scored) + "\n", encoding="utf-8")
    import subprocess
    import sys

    output = tmp_path / "breaks.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "table_breaks.py"), "--predictions", str(predictions),
                           "--model", str(TINY_READER), "--pretrain-pages", "2", "--output", str(output)],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads(output.read_text())
    (table,) = result["tables"]
    assert (table["rows"], table["predicted_rows"], table["first_wrong_row"], table["crop"]) == (6, 8, 3, [300, 120])
    assert table["answer_tokens_before_it"] > 3 * len("Item 0")  # three whole rows of JSON, one token per digit
    blocks = result["pretraining_table_blocks"]
    assert blocks["all"]["tables"] == 2 and blocks["kept_under_cap"]["tables"] <= 2
    assert blocks["all"]["max"] >= blocks["all"]["median"] > 0
