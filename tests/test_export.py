"""Dataset export: folder/manifest contract, determinism, boxes and ink, resume, CLI, errors."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from finscribe.data.schema import REGIONS, read_label, read_region_annotation
from finscribe.synthetic import export
from finscribe.synthetic.export import GenerateError, generate_dataset, main
from finscribe.synthetic.generator import generate_invoice, random_invoice_spec

FAST = {"dpi": 60, "workers": 1, "degrade": 0.5}
ROOT = Path(__file__).resolve().parents[1]


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "set"
    generate_dataset(3, out, seed=0, **FAST)
    return out


def test_folder_and_manifest_follow_the_contract(dataset: Path) -> None:
    manifest = json.loads((dataset / "training_manifest.json").read_text())
    assert manifest["version"] == 1 and manifest["config"]["num_samples"] == 3
    assert json.loads((dataset / "config.json").read_text())["stage"] == "GenerateConfig"
    assert [s["id"] for s in manifest["samples"]] == ["inv_000000", "inv_000001", "inv_000002"]
    for sample in manifest["samples"]:
        assert sample["split"] in ("train", "val", "test")
        assert sample["page"] == f"pages/{sample['id']}.png"
        label = read_label(dataset / sample["label"])
        assert sample["currency"] == label["invoice_meta"]["currency"]
        assert set(sample["regions"]) == set(REGIONS)
        for region, entry in sample["regions"].items():
            assert entry["crop"] == f"crops/{sample['id']}__{region}.png"
            name, fields = read_region_annotation(dataset / entry["annotation"])
            assert name == region and fields == label[region]
            with Image.open(dataset / entry["crop"]) as crop:
                x0, y0, x1, y1 = entry["box"]
                assert crop.size == (x1 - x0, y1 - y0)
    assert not list(dataset.rglob("*.tmp"))


def test_boxes_lie_inside_the_page_and_crops_hold_ink(dataset: Path) -> None:
    manifest = json.loads((dataset / "training_manifest.json").read_text())
    for sample in manifest["samples"]:
        with Image.open(dataset / sample["page"]) as page:
            width, height = page.size
            gray = np.asarray(page.convert("L"))
        for region, entry in sample["regions"].items():
            x0, y0, x1, y1 = entry["box"]
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, (sample["id"], region)
            dark = (gray[y0:y1, x0:x1] < 110).sum()
            assert dark > 20, f"{sample['id']} {region}: crop has no text ink"


def test_same_seed_gives_byte_identical_files_and_other_seed_differs(dataset: Path, tmp_path: Path) -> None:
    before = _hashes(dataset)
    samples = json.loads((dataset / "training_manifest.json").read_text())["samples"]
    generate_dataset(3, dataset, seed=0, resume=False, **FAST)  # regenerate everything in place
    after = _hashes(dataset)
    # config.json and the manifest's config record resume=False; everything else must match.
    assert {k: v for k, v in after.items() if "/" in k} == {k: v for k, v in before.items() if "/" in k}
    assert len([k for k in after if "/" in k]) == 3 * (2 + 2 * len(REGIONS))
    assert json.loads((dataset / "training_manifest.json").read_text())["samples"] == samples
    other = tmp_path / "other"
    generate_dataset(3, other, seed=1, **FAST)
    assert _hashes(other)["pages/inv_000000.png"] != before["pages/inv_000000.png"]
    assert _hashes(other)["labels/inv_000000.json"] != before["labels/inv_000000.json"]


def test_parallel_workers_write_the_same_bytes(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "parallel"
    generate_dataset(3, out, seed=0, **{**FAST, "workers": 2})
    ours, theirs = _hashes(out), _hashes(dataset)
    assert {k: v for k, v in ours.items() if k.startswith(("pages", "crops", "labels", "annotations"))} == \
           {k: v for k, v in theirs.items() if k.startswith(("pages", "crops", "labels", "annotations"))}


def test_resume_regenerates_only_missing_samples(tmp_path: Path) -> None:
    out = tmp_path / "resume"
    generate_dataset(3, out, seed=0, **FAST)
    before = _hashes(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("inv_000000*")}
    for path in out.rglob("inv_000001*"):
        path.unlink()
    (out / "labels" / "inv_000002.json").unlink()  # an interrupted sample: commit marker missing
    (out / "pages" / ".inv_000001.png.tmp").write_bytes(b"half-written")
    generate_dataset(3, out, seed=0, **FAST)
    assert _hashes(out) == before
    assert {p: p.stat().st_mtime_ns for p in out.rglob("inv_000000*")} == mtimes  # untouched
    assert not list(out.rglob("*.tmp"))


def test_resume_refuses_different_content_settings(tmp_path: Path) -> None:
    out = tmp_path / "mixed"
    generate_dataset(1, out, seed=0, **FAST)
    with pytest.raises(GenerateError, match="seed"):
        generate_dataset(1, out, seed=5, **FAST)


def test_held_out_layouts_go_to_test_and_splits_are_seeded() -> None:
    config = export.GenerateConfig(num_samples=1, held_out_layouts=("minimal",), val_fraction=0.1, test_fraction=0.1)
    splits = {"train": 0, "val": 0, "test": 0}
    for i in range(1000):
        layout = random_invoice_spec(0, i).layout
        split = export._split(config, i, layout)
        splits[split] += 1
        if layout == "minimal":
            assert split == "test"
    assert splits["train"] > splits["val"] > 40 and splits["test"] > splits["val"]


def _span_text(invoice, layout: str = "classic") -> str:
    from finscribe.synthetic.renderer import render_invoice

    return "\n".join(span.text for span in render_invoice(invoice, layout, dpi=60, seed=1).spans)


def test_jpy_prints_without_decimals_and_german_with_comma_decimals() -> None:
    jpy = generate_invoice(4, "JPY", seed=3, locale="ja_JP")
    text = _span_text(jpy)
    assert f"{int(jpy.total):,}" in text
    assert not re.search(re.escape(f"{int(jpy.total):,}") + r"[.,]\d", text)
    assert jpy.to_label()["totals_section"]["total"] == str(int(jpy.total))

    de = generate_invoice(4, "EUR", seed=3, locale="de_DE")
    whole, cents = f"{de.total:.2f}".split(".")
    printed = f"{int(whole):,}".replace(",", ".") + "," + cents
    assert printed in _span_text(de)
    assert de.to_label()["totals_section"]["total"] == f"{de.total:.2f}"
    assert Decimal(de.to_label()["totals_section"]["total"]) == de.total


def test_cli_main_writes_a_small_set(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    rc = main(["generate_dataset", "--num-samples", "2", "--output-dir", str(out), "--dpi", "60",
               "--workers", "1", "--pdf"])
    assert rc == 0
    manifest = json.loads((out / "training_manifest.json").read_text())
    assert len(manifest["samples"]) == 2 and manifest["config"]["pdf"] is True
    pdf = out / manifest["samples"][0]["pdf"]
    assert pdf.read_bytes().startswith(b"%PDF")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--num-samples", "-3"], "num_samples must be at least 1"),
        (["--currency", "XYZ"], "unknown currency 'XYZ'"),
        (["--locales", "en_US", "xx_XX"], "unsupported locale"),
        (["--held-out-layouts", "nope"], "unknown held-out layout"),
    ],
)
def test_bad_arguments_get_a_clear_error(flags: list[str], message: str, tmp_path: Path, capsys) -> None:
    try:
        rc = main(["--output-dir", str(tmp_path / "x"), "--num-samples", "1", *flags])
    except SystemExit as exit_:  # argparse-level errors exit through parser.error
        rc = exit_.code
    assert rc == 2
    assert message in capsys.readouterr().err


def test_unwritable_output_dir_fails_cleanly_from_the_command_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "finscribe.synthetic.export", "generate_dataset", "--num-samples", "1",
         "--output-dir", str(blocker / "out")],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )
    assert result.returncode == 2
    assert "error: cannot write to output folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_contact_sheet_shows_every_layout(tmp_path: Path) -> None:
    from finscribe.synthetic.contact_sheet import main as sheet_main
    from finscribe.synthetic.renderer import LAYOUTS

    out = tmp_path / "sheet.png"
    assert sheet_main(["--output", str(out), "--dpi", "40", "--thumb-width", "120", "--columns", "4"]) == 0
    with Image.open(out) as sheet:
        width, height = sheet.size
    rows = -(-(len(LAYOUTS) + 1) // 4)  # every layout plus the degraded example
    assert width == 4 * (120 + 12) + 12
    assert height > rows * 120  # each tile is taller than wide (portrait page + caption)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_png_writer_round_trips_pixels_and_text(mode: str, tmp_path: Path) -> None:
    from finscribe.synthetic.pngwrite import write_png

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(37, 53, 4), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGBA").convert(mode)
    path = write_png(image, tmp_path / "x.png", text={"finscribe": '{"a":[1,2]}'})
    with Image.open(path) as back:
        assert back.info["finscribe"] == '{"a":[1,2]}'
        expected = image.convert("RGB") if mode == "RGBA" else image
        assert back.mode == expected.mode
        assert np.array_equal(np.asarray(back), np.asarray(expected))
    assert write_png(image, tmp_path / "y.png", text={"finscribe": '{"a":[1,2]}'}).read_bytes() == path.read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))
