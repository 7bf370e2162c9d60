"""import-dataset on hand-built fixtures of SROIE, CORD v2 and Label Studio (tests/data), each with
its report of what could not be mapped; the Label Studio round trip; mixing record files."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from decimal import Decimal
from pathlib import Path

import datasets
import pytest
from PIL import Image

from finscribe.cli import main as cli_main
from finscribe.data.build_dataset import collect_from_dirs
from finscribe.data.importers.label_studio import export_tasks, import_label_studio, label_config
from finscribe.data.mixing import mix_datasets_by_share
from finscribe.data.records import RECORD_KEYS
from finscribe.data.schema import REGIONS, Invoice, LineItem, Party

DATA = Path(__file__).parent / "data"


def _import(fmt: str, source: Path, output: Path) -> dict:
    assert cli_main(["import-dataset", "--format", fmt, "--input", str(source), "--output-dir", str(output)]) == 0
    return json.loads((output / "import_report.json").read_text())


def _annotations(output: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((output / "annotations").glob("*.json"))}


def test_sroie_fixture(tmp_path):
    report = _import("sroie", DATA / "sroie", tmp_path / "out")
    found = _annotations(tmp_path / "out")
    assert found["X00016469612__vendor_block"]["fields"] == {
        "vendor_name": "OJC MARKETING SDN BHD", "address": "NO 2 & 4, JALAN BAYU 4, BANDAR SERI ALAM, 81750 MASAI, JOHOR"}
    assert found["X00016469612__invoice_meta"]["fields"] == {"invoice_date": "2019-01-15"}
    # SROIE receipts are in ringgit: the totals carry MYR (issue 27), which also fixes two decimals
    assert found["X00016469612__totals_section"]["fields"] == {"total": "193.00", "currency": "MYR"}
    assert found["X51005255805__totals_section"]["fields"] == {"total": "9.00", "currency": "MYR"}  # "RM 9.00"
    assert "X51005255805__invoice_meta" not in found  # its only field could not be read
    # the word boxes propose the crops: the vendor lines, and the last row holding the total
    with Image.open(tmp_path / "out" / "crops" / "X00016469612__vendor_block.png") as crop:
        assert crop.size == (440 + 8 - (50 - 8), 211 + 8 - (82 - 8))
    with Image.open(tmp_path / "out" / "crops" / "X00016469612__totals_section.png") as crop:
        assert crop.size == (480, 398 + 8 - (380 - 8))
    assert report["whole_image_crops"] == ["X51005255805__vendor_block", "X51005255805__totals_section"]
    assert [(u["field"], u["value"]) for u in report["unmapped"]] == [
        ("invoice_meta.invoice_date", "JAN 2018 TWENTY"), ("invoice_meta", None)]
    assert {"from": "RM 9.00", "to": "9.00"}.items() <= report["values_changed"][1].items()
    records, problems = collect_from_dirs(tmp_path / "out" / "crops", tmp_path / "out" / "annotations")
    assert problems == [] and len(records) == 5


def test_cord_fixture(tmp_path):
    report = _import("cord", DATA / "cord", tmp_path / "out")
    found = _annotations(tmp_path / "out")
    assert found["receipt_00000__line_items_table"]["fields"] == {"line_items": [
        {"description": "Nasi Campur Bali", "quantity": "1", "line_total": "75000"},
        {"description": "Es Teh Manis", "quantity": "2", "unit_price": "8000", "line_total": "16000"}]}
    assert found["receipt_00000__totals_section"]["fields"] == {"subtotal": "91000", "tax_amount": "9100", "total": "104650"}
    assert sorted(u["field"] for u in report["unmapped"]) == [
        "menu[1].sub", "sub_total.service_price", "total.cashprice", "total.changeprice"]
    with Image.open(tmp_path / "out" / "crops" / "receipt_00000__line_items_table.png") as crop:
        assert crop.size == (300 + 8 - 12, 110 + 8 - 52)  # the menu lines' quads, padded
    assert report["whole_image_crops"] == []
    records, problems = collect_from_dirs(tmp_path / "out" / "crops", tmp_path / "out" / "annotations")
    assert problems == [] and len(records) == 2


def test_label_studio_fixture(tmp_path):
    export = tmp_path / "ls" / "export.json"
    shutil.copytree(DATA / "label_studio", export.parent)
    report = _import("label-studio", export, tmp_path / "out")
    found = _annotations(tmp_path / "out")
    assert found["inv_000007__totals_section"]["fields"] == {
        "subtotal": "120.00", "tax_rate": "19", "tax_amount": "22.80", "total": "142.80", "currency": "EUR"}
    # the newest completed annotation counts; the cancelled one and the empty tax_id do not
    assert found["inv_000007__vendor_block"]["fields"] == {"vendor_name": "Acme GmbH", "address": "Hauptstr. 1, 10115 Berlin"}
    assert [(u["source"].rsplit(": ", 1)[1], u["field"]) for u in report["unmapped"]] == [
        ("task 1", "iban"), ("task 3", "annotations")]


@pytest.fixture
def labelled(tmp_path):
    """A small labelled set: crops + annotations of one invoice in BHD (three decimals)."""
    invoice = Invoice(
        vendor=Party("Acme GmbH", "Main St 1, Berlin", tax_id="DE123"), client=Party("Bob Ltd", "High St 2, London"),
        invoice_number="INV-7", invoice_date=dt.date(2024, 3, 15), due_date=dt.date(2024, 4, 14), payment_terms=None,
        currency="BHD", line_items=(LineItem("Widget", Decimal("3"), Decimal("12.500"), Decimal("37.500")),),
        subtotal=Decimal("37.500"), discount=Decimal("0"), tax_rate=Decimal("10"), tax_amount=Decimal("3.750"),
        total=Decimal("41.250"))
    crops, annotations = tmp_path / "crops", tmp_path / "annotations"
    for i, region in enumerate(REGIONS):
        crops.mkdir(exist_ok=True)
        Image.new("RGB", (80, 40), (i * 30, 255, 255)).save(crops / f"inv_1__{region}.png")
        annotations.mkdir(exist_ok=True)
        (annotations / f"inv_1__{region}.json").write_text(
            json.dumps({"region": region, "fields": invoice.region_fields(region)}), encoding="utf-8")
    return crops, annotations


def test_label_studio_round_trip_gives_the_same_dataset(labelled, tmp_path):
    crops, annotations = labelled
    records, problems = collect_from_dirs(crops, annotations)
    assert problems == []
    # the model's predictions: right for some regions, wrong or missing fields for others
    predictions = tmp_path / "predictions.jsonl"
    rows = []
    for record in records:
        parsed = json.loads(record["target"])
        if record["region"] == "totals_section":
            parsed = {**parsed, "total": "41.25"}  # wrong minor units
        if record["region"] == "vendor_block":
            parsed.pop("tax_id")
        rows.append({"image": record["image"], "region": record["region"], "source_id": record["source_id"], "parsed": parsed})
    predictions.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tasks_path = tmp_path / "ls" / "tasks.json"
    assert export_tasks(predictions, tasks_path) == 5
    assert (tmp_path / "ls" / "label_config.xml").read_text() == label_config()
    tasks = json.loads(tasks_path.read_text())
    assert tasks[0]["data"]["image"].startswith("/data/local-files/?d=/")
    by_region = {t["data"]["region"]: t for t in tasks}
    total = [r for r in by_region["totals_section"]["predictions"][0]["result"] if r["from_name"] == "total"]
    assert total[0]["value"]["text"] == ["41.25"]

    # the team corrects the two wrong regions in Label Studio; the export carries annotations
    truth = {r["region"]: json.loads(r["target"]) for r in records}
    for task in tasks:
        result = [dict(item) for item in task["predictions"][0]["result"]]
        region = task["data"]["region"]
        if region in ("totals_section", "vendor_block"):
            result = [{"from_name": k, "to_name": "image", "type": "textarea",
                       "value": {"text": [json.dumps(v) if k == "line_items" else v]}} for k, v in truth[region].items()]
        task["annotations"] = [{"id": 1, "result": result, "was_cancelled": False,
                                "created_at": "2026-11-30T10:00:00Z", "updated_at": "2026-11-30T10:00:00Z"}]
    export = tmp_path / "ls" / "export.json"
    export.write_text(json.dumps(tasks), encoding="utf-8")
    report = import_label_studio(export, tmp_path / "back")
    assert report.unmapped == []
    again, problems = collect_from_dirs(tmp_path / "back" / "crops", tmp_path / "back" / "annotations")
    assert problems == []
    key = lambda r: r["region"]  # noqa: E731
    assert [(r["region"], r["target"]) for r in sorted(again, key=key)] == \
        [(r["region"], r["target"]) for r in sorted(records, key=key)]
    for before, after in zip(sorted(records, key=key), sorted(again, key=key)):
        with Image.open(before["image"]) as a, Image.open(after["image"]) as b:
            assert a.tobytes() == b.tobytes()


# ----------------------------------------------------------------------------- mixing


def _records(n: int, name: str) -> datasets.Dataset:
    return datasets.Dataset.from_list([{"image": f"{name}{i}.png", "prompt": "Totals to JSON:",
                                        "target": '{"total":"1.00"}', "region": "totals_section", "split": "train",
                                        "source_id": f"{name}{i}", "layout": name} for i in range(n)])


def test_mix_keeps_every_record_and_oversamples_to_the_shares():
    mixed = mix_datasets_by_share([_records(70, "synth"), _records(10, "real")], [0.7, 0.3], seed=1)
    counts = {name: mixed["layout"].count(name) for name in ("synth", "real")}
    assert counts == {"synth": 70, "real": 30}
    assert set(mixed.filter(lambda r: r["layout"] == "real")["source_id"]) == {f"real{i}" for i in range(10)}
    assert mixed.column_names == list(RECORD_KEYS)
    with pytest.raises(ValueError, match="one share per --data file"):
        mix_datasets_by_share([_records(3, "a")], [0.5, 0.5])


def test_train_config_takes_several_files_and_shares(tmp_path):
    from finscribe.config import parse_config
    from finscribe.training.train import TrainConfig, load_splits

    first, second = tmp_path / "synth.jsonl", tmp_path / "real.jsonl"
    for path, n, name in ((first, 8, "synth"), (second, 2, "real")):
        Image.new("RGB", (40, 40), "white").save(tmp_path / "x.png")
        path.write_text("".join(json.dumps({**r, "image": str(tmp_path / "x.png")}) + "\n"
                                for r in _records(n, name).to_list()), encoding="utf-8")
    one = parse_config(TrainConfig, ["--data", str(first)], "t", "")
    assert one.data == (first,) and len(load_splits(one)[0]) == 8
    both = parse_config(TrainConfig, ["--data", str(first), str(second), "--mix", "0.5", "0.5"], "t", "")
    train, _ = load_splits(both)
    assert (train["layout"].count("synth"), train["layout"].count("real")) == (8, 8)
    assert TrainConfig(data=str(first)).data == (first,)  # a single path from Python still works
    with pytest.raises(SystemExit):
        parse_config(TrainConfig, ["--data", str(first), str(second), "--mix", "1"], "t", "")


def test_import_errors_are_one_line(tmp_path, capsys):
    assert cli_main(["import-dataset", "--format", "sroie", "--input", str(tmp_path / "nothing"),
                     "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "img/" in err and "\n" not in err
    assert cli_main(["import-dataset", "--format", "label-studio", "--input", str(tmp_path),
                     "--output-dir", str(tmp_path / "out")]) == 2
