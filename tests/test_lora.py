"""LoRA: native-name presets, adapter-only training, adapter loading, merge + export."""

from __future__ import annotations

import json
import re

import pytest
import torch
from conftest import write_records
from safetensors.torch import load_file

from finscribe.errors import ConfigError
from finscribe.model import load_model
from finscribe.training.collate import CompletionCollator
from finscribe.training.lora import LORA_PRESETS, apply_lora, merge_and_export
from finscribe.training.lora import main as export_main
from finscribe.training.train import TrainConfig, train


def _adapted(model):
    return sorted(n.removesuffix(".lora_A.default") for n, _ in model.named_modules() if n.endswith(".lora_A.default"))


def test_presets_hit_exactly_the_named_towers(tiny_model_dir):
    base, _ = load_model(tiny_model_dir, device="cpu")
    linear = [n for n, m in base.named_modules() if isinstance(m, torch.nn.Linear)]
    decoder = [n for n in linear if n.startswith("model.language_model.layers.")]
    projector = [n for n in linear if n.startswith("model.projector.")]
    vision = [n for n in linear if n.startswith("model.visual.")]
    assert vision and any(n.endswith("q_proj") for n in vision)  # why a bare "q_proj" list would be wrong
    expected = {"decoder": decoder, "decoder_projector": decoder + projector, "all": decoder + projector + vision}
    for preset, names in expected.items():
        model = apply_lora(load_model(tiny_model_dir, device="cpu")[0], preset, r=4)
        assert _adapted(model) == sorted(f"base_model.model.{n}" for n in names), preset
    assert not any(re.fullmatch(LORA_PRESETS["decoder"], n) for n in ["lm_head", "model.language_model.embed_tokens"])
    with pytest.raises(ValueError, match="unknown LoRA preset"):
        apply_lora(base, "everything")


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lora")
    records = write_records(tmp / "crops", ['{"total":"12.50"}', '{"total":"7.00"}', '{"total":"390.25"}'])
    data = tmp / "r.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = train(TrainConfig(data=data, model=str(tiny_model_dir), output_dir=tmp / "run", use_lora=True, lora_r=4,
                            lora_dropout=0.0, lora_preset="decoder_projector", max_steps=3, batch_size=3,
                            gradient_accumulation_steps=1, learning_rate=5e-3, save_steps=1000, report_to=("none",),
                            eval_generate_samples=0))
    return out, records


def test_lora_trains_only_the_adapter(lora_run, tiny_model_dir):
    out, _ = lora_run
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    adapter = load_file(str(out / "adapter_model.safetensors"))
    assert adapter and all("lora_" in k for k in adapter)
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in adapter.items())  # B starts at 0
    model, processor = load_model(out, device="cpu")  # adapter folder → base + PeftModel
    from peft import PeftModel

    assert isinstance(model, PeftModel)
    base = load_model(tiny_model_dir, device="cpu")[0].state_dict()
    loaded = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
              for k, v in model.state_dict().items() if "lora_" not in k}
    for key, value in base.items():  # the base weights are untouched by training
        assert torch.equal(loaded[key], value), key
    assert processor.tokenizer.eos_token == "</s>"


def test_merged_model_matches_adapter_logits(lora_run, tmp_path):
    out, records = lora_run
    with_adapter, processor = load_model(out, device="cpu")
    merged_dir = merge_and_export(out, tmp_path / "merged")
    from transformers import PaddleOCRVLForConditionalGeneration

    merged = PaddleOCRVLForConditionalGeneration.from_pretrained(merged_dir)
    batch = CompletionCollator(processor)(records)
    with torch.no_grad():
        a = with_adapter(**batch).logits
        b = merged(**batch).logits
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert (merged_dir / "chat_template.jinja").is_file() and (merged_dir / "tokenizer.json").is_file()
    assert not (merged_dir / "adapter_config.json").exists()


def test_export_cli(lora_run, tmp_path, capsys):
    out, _ = lora_run
    assert export_main(["--model", str(out), "--output-dir", str(tmp_path / "m"), "--merge"]) == 0
    assert "exported merged model" in capsys.readouterr().out
    assert json.loads((tmp_path / "m" / "export_config.json").read_text())["merge"] is True
    with pytest.raises(ConfigError, match="needs --merge"):
        export_main(["--model", str(out), "--output-dir", str(tmp_path / "n"), "--no-merge"])


def test_lora_resume_is_exact(lora_run, tiny_model_dir, tmp_path):
    _, records = lora_run
    data = tmp_path / "r.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    common = dict(data=data, model=str(tiny_model_dir), use_lora=True, lora_r=4, lora_dropout=0.0, max_steps=4,
                  batch_size=1, gradient_accumulation_steps=1, learning_rate=5e-3, save_steps=2,
                  report_to=("none",), eval_generate_samples=0)
    straight = train(TrainConfig(output_dir=tmp_path / "a", **common))
    resumed = train(TrainConfig(output_dir=tmp_path / "b", resume_from_checkpoint=str(straight / "checkpoint-2"), **common))
    a = load_file(str(straight / "adapter_model.safetensors"))
    b = load_file(str(resumed / "adapter_model.safetensors"))
    half = load_file(str(straight / "checkpoint-2" / "adapter_model.safetensors"))
    assert any(not torch.equal(a[k], half[k]) for k in a)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
