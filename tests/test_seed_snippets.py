"""Every snippet and command of the two seed documents, written as the seed writes them.

../shared/seeds/000_1c7dd7076c86638d.txt is the fine-tuning guide ("guide"), 001_973e8d98d3859cb0.txt
the package README ("readme"). The only substitutions are the ones the issue allows: smaller sizes
(`num_samples=12`) and `--model <the tiny model>` where the guide relies on the hub. Commands run
in a fresh working folder (the seed's relative paths: data/, ./finetuned_finscribe_vl), with the
repository's two scripts and examples/ copied in as a checkout would have them.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO.parent / "shared" / "seeds"
GUIDE, README = SEEDS / "000_1c7dd7076c86638d.txt", SEEDS / "001_973e8d98d3859cb0.txt"


def sh(command: str, cwd: Path, timeout: int = 600) -> str:
    """Run a seed command line (`python ...`) in `cwd` with this interpreter and this checkout."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "FINSCRIBE_TEST_THREADS": "1", "OMP_NUM_THREADS": "1"}
    argv = command.replace("\\\n", " ").split()
    assert argv[0] == "python"
    done = subprocess.run([sys.executable, *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def fresh_folder(path: Path) -> Path:
    """A working folder with what a checkout holds next to the package: the seed's scripts."""
    path.mkdir(parents=True, exist_ok=True)
    for script in ("train_finscribe_vl.py", "compare_base_vs_finetuned.py"):
        shutil.copy(REPO / script, path / script)
    shutil.copytree(REPO / "examples", path / "examples", dirs_exist_ok=True)
    return path


def test_the_seed_documents_are_there():
    assert "python train_finscribe_vl.py" in GUIDE.read_text() and "Quick Start" in README.read_text()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Readme step 1 (`python -m finscribe.synthetic.export generate_dataset ...`, 12 invoices), then the
    user's own crops + annotations in data/crops, data/annotations (guide, "Prepare Real Data"), and a
    test invoice page + label at data/test_invoice.png/.json (what the guide's evaluation commands read)."""
    folder = fresh_folder(tmp_path_factory.mktemp("seed") / "work")
    out = sh("""python -m finscribe.synthetic.export generate_dataset \\
    --num-samples 12 \\
    --output-dir data/synthetic_invoices""", folder)
    assert "wrote 12 samples" in out
    export = folder / "data" / "synthetic_invoices"
    manifest = json.loads((export / "training_manifest.json").read_text())
    test_sample = next(s for s in manifest["samples"] if s["split"] == "test")
    shutil.copy(export / test_sample["page"], folder / "data" / "test_invoice.png")
    shutil.copy(export / test_sample["label"], folder / "data" / "test_invoice.json")
    for sub in ("crops", "annotations"):  # "real" data: the totals crops of three train invoices
        (folder / "data" / sub).mkdir()
        for sample in [s for s in manifest["samples"] if s["split"] == "train"][:3]:
            region = sample["regions"]["totals_section"]
            src = export / region["crop" if sub == "crops" else "annotation"]
            shutil.copy(src, folder / "data" / sub / src.name)
    return folder


@pytest.fixture(scope="module")
def lora_model(work, tiny_model_dir):
    """Readme step 3 / guide "With LoRA" (`--model` = the tiny model instead of the hub)."""
    out = sh(f"""python train_finscribe_vl.py \\
    --data-dir data \\
    --output-dir ./finetuned_finscribe_vl \\
    --epochs 4 \\
    --batch-size 4 \\
    --use-lora \\
    --lora-r 16 \\
    --learning-rate 2e-5 --model {tiny_model_dir}""", work)
    assert "data/synthetic_invoices/training_manifest.json" in out  # says which files it uses
    return work / "finetuned_finscribe_vl"


# ----------------------------------------------------------------------------- guide: software, data


def test_guide_requirements_txt_matches_pyproject_and_is_installed():
    """`pip install -r requirements.txt`: the file lists pyproject's dependencies (all extras), each
    satisfied here (the test machine is offline, so installed versions stand in for the install)."""
    from importlib.metadata import PackageNotFoundError, version

    import tomllib
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {Requirement(r).name.lower() for r in project["dependencies"]}
    for extra in ("quant", "serve"):
        wanted |= {Requirement(r).name.lower() for r in project["optional-dependencies"][extra]}
    lines = [line.split("#")[0].strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    listed = {Requirement(line) for line in lines if line and not line.startswith("-")}
    assert {r.name.lower() for r in listed} == wanted
    for requirement in listed:
        try:
            assert version(requirement.name) in requirement.specifier or "+" in version(requirement.name), requirement
        except PackageNotFoundError:
            pytest.fail(f"{requirement} is not installed")


def test_guide_generate_training_data_script(tmp_path):
    folder = fresh_folder(tmp_path)
    sh("python examples/generate_training_data.py --num-samples 12", folder)
    assert len(json.loads((folder / "data/synthetic_invoices/training_manifest.json").read_text())["samples"]) == 12


def test_guide_generate_dataset_programmatically_and_build_from_manifest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from finscribe.synthetic.export import generate_dataset

    generate_dataset(
        num_samples=12,
        output_dir=Path("data"),  # the guide's Step 3 reads data/training_manifest.json
    )
    from finscribe.data.build_dataset import build_dataset_from_manifest

    dataset = build_dataset_from_manifest(
        manifest_path=Path("data/training_manifest.json"),
    )
    assert len(dataset) == 12 * 5 and set(dataset["region"]) >= {"totals_section", "vendor_block"}


def test_guide_annotation_format_is_the_data_contract(tmp_path):
    from finscribe.data.schema import read_region_annotation

    path = tmp_path / "vendor.json"
    path.write_text("""{
  "region": "vendor_block",
  "fields": {
    "vendor_name": "ABC Corp",
    "address": "123 Main St",
    "tax_id": "US123456789"
  }
}""")
    assert read_region_annotation(path) == ("vendor_block", {"vendor_name": "ABC Corp", "address": "123 Main St",
                                                             "tax_id": "US123456789"})


def test_guide_build_dataset_from_crops_and_annotations(work, monkeypatch):
    monkeypatch.chdir(work)
    from finscribe.data.build_dataset import build_dataset

    dataset = build_dataset(
        crops_dir=Path("data/crops"),
        annotations_dir=Path("data/annotations"),
    )
    assert len(dataset) == 3 and set(dataset["region"]) == {"totals_section"}


def test_readme_step2_build_dataset_command(work):
    sh("""python -m finscribe.data.build_dataset \\
    --crops-dir data/crops \\
    --annotations-dir data/annotations \\
    --output data/training_dataset.jsonl""", work)
    assert len((work / "data/training_dataset.jsonl").read_text().splitlines()) == 3


# ----------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def full_model(work, tiny_model_dir):
    """Guide "Basic Training" (full fine-tuning), `--model` = the tiny model."""
    out = sh(f"""python train_finscribe_vl.py \\
    --data-dir data \\
    --output-dir ./finetuned_finscribe_vl_full \\
    --epochs 4 \\
    --batch-size 4 \\
    --gradient-accumulation-steps 4 \\
    --learning-rate 2e-5 --model {tiny_model_dir}""", work)
    assert "training data found under data" in out
    return work / "finetuned_finscribe_vl_full"


def test_guide_basic_training_command_full_fine_tuning(full_model, tiny_model_dir):
    assert (full_model / "model.safetensors").is_file() and not (full_model / "adapter_config.json").exists()
    card = (full_model / "README.md").read_text()
    assert f"base_model: \"{tiny_model_dir}\"" in card and "full fine-tuning" in card and "## Limits" in card


def test_guide_lora_training_command_and_its_model_card(lora_model, tiny_model_dir):
    assert (lora_model / "adapter_config.json").is_file()
    card = (lora_model / "README.md").read_text()
    assert card.startswith("---\nbase_model:") and "library_name: peft" in card and "LoRA (r 16" in card
    assert "training records:" in card and "## Intended use" in card and "train loss" in card
    assert "fields annotated:" in card  # how many fields each region's training data carried (issue 14)


def test_guide_troubleshooting_flags_exist():
    from finscribe.config import build_parser
    from finscribe.training.train_config import TrainConfig

    args = build_parser(TrainConfig, "train_finscribe_vl.py", "").parse_args(
        "--data-dir data --batch-size 2 --use-lora --gradient-accumulation-steps 2 --lora-r 32 --epochs 5 "
        "--logging-steps 50".split())
    assert (args.batch_size, args.use_lora, args.gradient_accumulation_steps, args.lora_r, args.epochs,
            args.logging_steps) == (2, True, 2, 32, 5.0, 50)


# ----------------------------------------------------------------------------- evaluation


def test_guide_single_sample_evaluation_command(work, lora_model):
    sh("""python examples/evaluate_model.py \\
    --image data/test_invoice.png \\
    --ground-truth data/test_invoice.json \\
    --model ./finetuned_finscribe_vl \\
    --output results.json --max-new-tokens 24""", work)
    result = json.loads((work / "results.json").read_text())
    assert result["region"] == "page" and 0 <= result["metrics"]["field_accuracy"] <= 1


def test_guide_batch_evaluation():
    from finscribe.eval.field_accuracy import field_accuracy
    from finscribe.eval.validation import validate_document

    gt = {"totals_section": {"subtotal": "100.00", "discount": "0.00", "tax_rate": "10", "tax_amount": "10.00",
                             "total": "110.00", "currency": "USD"}}
    test_dataset = [{"pred": gt, "gt": gt}, {"pred": {"totals_section": dict(gt["totals_section"], total="0.00")}, "gt": gt}]
    lines = []
    # Evaluate each sample
    accuracies = []
    for sample in test_dataset:
        accuracy = field_accuracy(sample["pred"], sample["gt"])
        accuracies.append(accuracy)

    lines.append(f"Average Accuracy: {sum(accuracies) / len(accuracies):.2%}")
    assert lines == ["Average Accuracy: 91.67%"]  # (6/6 + 5/6) / 2
    assert validate_document(gt) == []


def test_guide_comparison_command_defaults_the_base_to_the_models_own_base(work, lora_model, tiny_model_dir):
    out = sh("""python compare_base_vs_finetuned.py \\
    --image data/test_invoice.png \\
    --model ./finetuned_finscribe_vl \\
    --output comparison.json --max-new-tokens 16""", work)
    comparison = json.loads((work / "comparison.json").read_text())
    assert comparison["base"]["model"] == str(tiny_model_dir)  # the adapter's base, not the hub id
    assert f"using {tiny_model_dir}" in out


# ----------------------------------------------------------------------------- mining


def _pred_gt():
    gt = {"subtotal": "100.00", "tax_rate": "10", "tax_amount": "10.00", "total": "110.00", "currency": "USD"}
    return dict(gt, total="11.00"), gt


def test_guide_automatic_error_logging(work, monkeypatch):
    monkeypatch.chdir(work)
    pred, gt = _pred_gt()
    image_path = "data/crops/" + sorted(os.listdir(work / "data/crops"))[0]
    from finscribe.mining import classify_error, log_error

    # After inference
    error_type = classify_error(pred, gt)
    if error_type != "OTHER":
        log_error(image_path, gt, pred, error_type)
    assert error_type == "NUMERIC_MISMATCH"
    assert (work / "data/hard_samples").is_dir()


def test_readme_hard_sample_mining(tmp_path, monkeypatch, work):
    shutil.copytree(work / "data" / "crops", tmp_path / "data" / "crops")
    monkeypatch.chdir(tmp_path)
    pred, gt = _pred_gt()
    image_path = "data/crops/" + sorted(os.listdir("data/crops"))[0]
    from finscribe.mining import classify_error, log_error

    error_type = classify_error(pred, gt)
    log_error(image_path, gt, pred, error_type)
    from finscribe.mining.error_logger import read_error_log

    [entry] = read_error_log("data/hard_samples")
    assert entry["error_type"] == "NUMERIC_MISMATCH" and entry["region"] == "totals_section"


def test_guide_replay_training_mix_and_train_on_it(work, monkeypatch, tiny_model_dir):
    monkeypatch.chdir(work)
    pred, gt = _pred_gt()
    from finscribe.mining import classify_error, log_error

    for crop in sorted(os.listdir("data/crops")):
        log_error("data/crops/" + crop, gt, pred, classify_error(pred, gt), error_dir=Path("data/hard_samples"))
    from finscribe.data.build_dataset import build_dataset
    from finscribe.mining.replay_dataset import build_hard_sample_dataset

    hard_samples = build_hard_sample_dataset(
        error_dir=Path("data/hard_samples"),
        region_type="totals_section",
    )

    # Mix with normal data (80% normal, 20% hard)
    normal_dataset = build_dataset(crops_dir=Path("data/synthetic_invoices/crops"),
                                   annotations_dir=Path("data/synthetic_invoices/annotations"))
    combined = normal_dataset + hard_samples[:len(normal_dataset) // 4]

    assert len(combined) == len(normal_dataset) + min(len(hard_samples), len(normal_dataset) // 4)
    assert combined[-1]["source_id"].startswith("hard:")
    from finscribe.training.train import TrainConfig, train

    out = train(TrainConfig(model=str(tiny_model_dir), output_dir=Path("replay_run"), max_steps=1, batch_size=2,
                            gradient_accumulation_steps=1, report_to=("none",), regions=("totals_section",)),
                train_dataset=combined)
    assert json.loads((out / "training_data.json").read_text())["train_records"] == len(combined)


# ----------------------------------------------------------------------------- quantization, deployment


def test_seed_quantize_then_load_then_automodelforcausallm(work, lora_model, monkeypatch):
    monkeypatch.chdir(work)
    from finscribe.deploy.quantize import quantize_model

    quantize_model(
        model_path=Path("./finetuned_finscribe_vl"),
        output_path=Path("./finetuned_finscribe_vl_int8"),
    )
    folder = work / "finetuned_finscribe_vl_int8"
    config = json.loads((folder / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "torchao"
    assert (folder / "model.safetensors").is_file()
    assert not [p for p in folder.iterdir() if p.suffix in (".pt", ".pth", ".bin", ".pkl")]  # no pickle

    from finscribe.deploy.quantize import load_quantized_model

    model = load_quantized_model(Path("./finetuned_finscribe_vl_int8"))
    assert type(model[0]).__name__ == "PaddleOCRVLForConditionalGeneration"

    from transformers import AutoModelForCausalLM

    # In app/core/models/paddleocr_vl_service.py
    model = AutoModelForCausalLM.from_pretrained(
        "./finetuned_finscribe_vl_int8",
        trust_remote_code=True,
    )
    from transformers import PaddleOCRVLForConditionalGeneration

    assert isinstance(model, PaddleOCRVLForConditionalGeneration) and not PaddleOCRVLForConditionalGeneration.is_remote_code()
    assert type(model.model.language_model.layers[0].mlp.down_proj.weight).__name__ == "Int8Tensor"


@pytest.mark.parametrize("output", ["full", "merged"])
def test_quantize_and_load_every_training_output(output, work, full_model, lora_model, tmp_path, tiny_model_dir):
    """The LoRA adapter is quantized above; a full fine-tune and a merged adapter work the same way."""
    from finscribe.deploy.quantize import load_quantized_model, quantize_model
    from finscribe.inference import predict
    from finscribe.model_card import base_model_of

    source = full_model
    if output == "merged":
        sh(f"python -m finscribe.cli export --model {lora_model} --output-dir {tmp_path / 'merged'} --merge", work)
        source = tmp_path / "merged"
        assert base_model_of(source) == str(tiny_model_dir)  # the merged folder keeps its provenance and card
        assert "full fine-tuning" not in (source / "README.md").read_text() and "LoRA (r 16" in (source / "README.md").read_text()
    folder = quantize_model(model_path=source, output_path=tmp_path / "int8")
    model, processor = load_quantized_model(folder)
    [pred] = predict(model, processor, [work / "data/test_invoice.png"], "totals_section", max_new_tokens=4)
    assert pred.new_tokens > 0 and json.loads((folder / "config.json").read_text())["quantization_config"]


# ----------------------------------------------------------------------------- README: API, files


def test_readme_synthetic_data_generation(tmp_path):
    from finscribe.synthetic import generate_invoice, render_invoice

    data = generate_invoice(num_items=5, currency="USD")
    image = render_invoice(data)
    image.save(tmp_path / "x.png")
    from PIL import Image

    assert len(data.line_items) == 5 and data.currency == "USD"
    assert Image.open(tmp_path / "x.png").size == image.image.size


def test_readme_architecture_tree_modules_exist():
    tree = README.read_text().split("```\nfinscribe/")[1].split("```")[0]
    package, modules = None, []
    for line in tree.splitlines():
        name = line.split("#")[0].strip().lstrip("│├└─ ").strip()
        if name.endswith("/"):
            package = name.rstrip("/")
        elif name.endswith(".py"):
            modules.append(f"finscribe.{package}.{name[:-3]}")
    assert len(modules) == 16
    for module in modules:
        importlib.import_module(module)


def test_next_steps_documents_exist():
    for name in ("MODEL_CARD.md", "BENCHMARK_TABLE.md", "finscribe/README.md", "requirements.txt"):
        assert (REPO / name).is_file() and (REPO / name).stat().st_size > 500, name
    table = (REPO / "BENCHMARK_TABLE.md").read_text()
    for claim in ("+17.4", "+23.5", "2.6", "60"):
        assert claim in table
    assert "not measured" in table.lower()


def test_finscribe_readme_examples_run(tmp_path):
    """finscribe/README.md's examples, all Python blocks in order, in an empty folder."""
    text = (REPO / "finscribe" / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert len(blocks) == 8
    (tmp_path / "examples.py").write_text("\n".join(blocks))
    out = sh("python examples.py", tmp_path)
    assert "ARITHMETIC_INCONSISTENT 1" in out, out[-3000:]
    assert "base_model:" in (tmp_path / "runs/ft/README.md").read_text()
    assert "quantization_config" in (tmp_path / "runs/ft-int8/config.json").read_text()


# ----------------------------------------------------------------------------- the quick start, in order


@pytest.mark.slow
def test_readme_quick_start_steps_1_to_5_in_a_fresh_folder(tmp_path, tiny_model_dir):
    folder = fresh_folder(tmp_path / "fresh")
    sh("""python -m finscribe.synthetic.export generate_dataset \\
    --num-samples 12 \\
    --output-dir data/synthetic_invoices""", folder)
    # the user's own crops and annotations (step 2 reads them): three generated totals crops
    for sub in ("crops", "annotations"):
        (folder / "data" / sub).mkdir()
        for path in sorted((folder / "data/synthetic_invoices" / sub).glob("inv_00000[1-3]__totals_section.*")):
            shutil.copy(path, folder / "data" / sub / path.name)
    sh("""python -m finscribe.data.build_dataset \\
    --crops-dir data/crops \\
    --annotations-dir data/annotations \\
    --output data/training_dataset.jsonl""", folder)
    out = sh(f"""python train_finscribe_vl.py \\
    --data-dir data \\
    --output-dir ./finetuned_finscribe_vl \\
    --epochs 4 \\
    --batch-size 4 \\
    --use-lora \\
    --learning-rate 2e-5 --model {tiny_model_dir}""", folder)
    assert "data/synthetic_invoices/training_manifest.json" in out and "data/training_dataset.jsonl" in out
    (folder / "step4.py").write_text("""from finscribe.deploy.quantize import quantize_model
from pathlib import Path

quantize_model(
    model_path=Path("./finetuned_finscribe_vl"),
    output_path=Path("./finetuned_finscribe_vl_int8"),
)
""")
    sh("python step4.py", folder)
    shutil.copy(next((folder / "data/synthetic_invoices/pages").glob("*.png")), folder / "data/test_invoice.png")
    sh("""python compare_base_vs_finetuned.py \\
    --image data/test_invoice.png \\
    --model ./finetuned_finscribe_vl \\
    --output results.json --max-new-tokens 16""", folder)
    results = json.loads((folder / "results.json").read_text())
    assert results["base"]["model"] == str(tiny_model_dir) and results["model"]["prediction"]["new_tokens"] > 0
