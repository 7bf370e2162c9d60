"""INT8 quantization: the saved folder reloads in a fresh process and answers like the model it
was made from; weights shrink; the LM head stays float and tied; adapters are merged first."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest
import torch
from deploy_helpers import cached_overfit_model, invoice_pages, region_records

from finscribe.deploy.quantize import (
    META_FILE,
    QuantizationError,
    linear_module_names,
    load_float_model,
    load_quantized_model,
    quantize_model,
    weight_bytes,
)
from finscribe.inference import predict
from finscribe.model import ModelNotAvailableError

SUBPROCESS_PREDICT = textwrap.dedent("""
    import json, sys
    from PIL import Image
    from finscribe.deploy.quantize import load_quantized_model
    from finscribe.inference import predict
    model, processor = load_quantized_model(sys.argv[1])
    assert processor.chat_template, "chat template lost"
    images = [Image.open(p) for p in sys.argv[4:]]
    out = predict(model, processor, images, sys.argv[2], max_new_tokens=int(sys.argv[3]), batch_size=2)
    print("RESULT" + json.dumps([[p.raw_text, p.parsed] for p in out]))
""")


def predict_in_fresh_process(model_dir, region, max_new_tokens, image_paths):
    done = subprocess.run([sys.executable, "-c", SUBPROCESS_PREDICT, str(model_dir), region, str(max_new_tokens),
                           *map(str, image_paths)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crops")
    records = region_records(invoice_pages(2))
    paths = []
    for i, record in enumerate(records):
        record["image"].save(folder / f"{i}.png")
        paths.append(folder / f"{i}.png")
    return paths


@pytest.fixture(scope="module")
def quantized_tiny(tiny_model_dir, tmp_path_factory):
    return quantize_model(tiny_model_dir, tmp_path_factory.mktemp("q") / "tiny-int8", method="auto", device="cpu")


def test_reload_in_a_fresh_process_gives_the_same_outputs(quantized_tiny, crops):
    meta = json.loads((quantized_tiny / META_FILE).read_text())
    assert meta["method"] == "int8_dynamic" and meta["modules"]
    model, processor = load_quantized_model(quantized_tiny)
    from PIL import Image

    images = [Image.open(p) for p in crops]
    in_process = [p.raw_text for p in predict(model, processor, images, "totals_section", max_new_tokens=12, batch_size=2)]
    reloaded = predict_in_fresh_process(quantized_tiny, "totals_section", 12, crops)
    assert [raw for raw, _ in reloaded] == in_process


def test_the_artefact_is_a_plain_transformers_checkpoint(quantized_tiny):
    """config.json + quantization_config, safetensors, no pickle; plain from_pretrained loads it,
    and so does the seed's AutoModelForCausalLM(..., trust_remote_code=True) line."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, PaddleOCRVLForConditionalGeneration

    config = json.loads((quantized_tiny / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "torchao"
    assert config["quantization_config"]["quant_type"]["default"]["_type"] == "Int8DynamicActivationInt8WeightConfig"
    names = {p.name for p in quantized_tiny.iterdir()}
    assert "model.safetensors" in names and not {n for n in names if n.endswith((".pt", ".bin", ".pkl", ".pth"))}
    plain = AutoModelForImageTextToText.from_pretrained(quantized_tiny)
    causal = AutoModelForCausalLM.from_pretrained(quantized_tiny, trust_remote_code=True)
    fast, _ = load_quantized_model(quantized_tiny)  # fbgemm kernels on CPU, same int8 weights
    layer = "model.language_model.layers.0.mlp.down_proj"
    w_plain, w_causal = plain.get_submodule(layer).weight, causal.get_submodule(layer).weight
    assert type(w_plain).__name__ == "Int8Tensor" and torch.equal(w_plain.qdata, w_causal.qdata)
    assert isinstance(causal, PaddleOCRVLForConditionalGeneration)
    # the auto_map load must not turn the library class into "remote code" for this process
    assert not PaddleOCRVLForConditionalGeneration.is_remote_code()
    q = fast.get_submodule(layer).weight()
    assert torch.equal(q.int_repr(), w_plain.qdata)
    assert torch.allclose(q.q_per_channel_scales().float(), w_plain.scale.reshape(-1))
    assert "base_model:" in (quantized_tiny / "README.md").read_text()


def test_torchao_and_fbgemm_kernels_agree(quantized_tiny, crops):
    from PIL import Image

    images = [Image.open(p) for p in crops[:2]]
    outputs = []
    for kernels in ("fbgemm", "torchao"):
        model, processor = load_quantized_model(quantized_tiny, device="cpu", cpu_kernels=kernels)
        outputs.append([p.raw_text for p in predict(model, processor, images, "totals_section", max_new_tokens=8)])
    assert outputs[0] == outputs[1]


def test_weights_shrink_and_the_lm_head_stays_float_and_tied(tiny_model_dir, quantized_tiny):
    meta = json.loads((quantized_tiny / META_FILE).read_text())
    before, after = meta["weight_bytes_float"], meta["weight_bytes_quantized"]
    assert before["quantized_layers"] / after["quantized_layers"] >= 3.5
    assert after["total"] < before["total"]
    # the safetensors file is the real size: within 10 % of the counted bytes (+ header)
    assert meta["safetensors_bytes"] < 1.1 * after["total"] + 200_000
    assert not any(name.endswith("lm_head") for name in meta["modules"])
    model, _ = load_quantized_model(quantized_tiny)
    assert model.lm_head.weight.dtype == torch.float32
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    float_model, _ = load_float_model(tiny_model_dir)
    assert torch.equal(model.get_input_embeddings().weight, float_model.get_input_embeddings().weight)


def test_an_adapter_is_merged_before_quantizing(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    base, processor = load_float_model(tiny_model_dir)
    inputs = processor(images=[invoice_pages(1)[0]["image"].crop((0, 0, 200, 80))],
                       text=[processor.apply_chat_template([{"role": "user", "content": [
                           {"type": "image"}, {"type": "text", "text": "Totals to JSON:"}]}],
                           add_generation_prompt=True, tokenize=False)], return_tensors="pt")
    with torch.inference_mode():
        base_logits = base(**inputs).logits
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=[
        "model.language_model.layers.0.mlp.down_proj", "model.language_model.layers.1.self_attn.o_proj"]))
    with torch.no_grad():  # a trained-looking adapter: B = 0 would make the merge a no-op
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    peft_model.save_pretrained(tmp_path / "adapter")
    adapter_cfg = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    adapter_cfg["base_model_name_or_path"] = str(tiny_model_dir)
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps(adapter_cfg))
    with torch.inference_mode():
        merged_logits = peft_model.merge_and_unload()(**inputs).logits

    out = quantize_model(tmp_path / "adapter", tmp_path / "int8", device="cpu")
    model, _ = load_quantized_model(out)
    with torch.inference_mode():
        logits = model(**inputs).logits
    assert (logits - merged_logits).abs().max() < (logits - base_logits).abs().max()
    assert (logits - merged_logits).abs().max() < 0.1 * merged_logits.abs().max()


def test_errors_name_the_problem(tmp_path, capsys):
    with pytest.raises(ModelNotAvailableError, match="holds no config.json"):
        load_quantized_model(tmp_path)
    with pytest.raises(ModelNotAvailableError, match="not found"):
        load_quantized_model(tmp_path / "missing")
    with pytest.raises(QuantizationError, match="unknown method"):
        quantize_model(tmp_path, tmp_path / "out", method="int4")
    from finscribe.cli import main

    assert main(["quantize", "--model", str(tmp_path), "--output-dir", str(tmp_path / "o")]) == 2
    assert re.search("error: .*(could not load|not a model folder)", capsys.readouterr().err)


@pytest.mark.slow
def test_quantized_overfit_model_gives_the_same_json_in_a_fresh_process(request, tmp_path_factory, tmp_path):
    """The overfit tiny model (confident outputs) answers its training crops with the same JSON
    after INT8 quantization, saved and reloaded in a new process."""
    model_dir = cached_overfit_model(request, tmp_path_factory)
    records = region_records(invoice_pages(4))
    paths = []
    for i, record in enumerate(records):
        record["image"].save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    model, processor = load_float_model(model_dir)
    expected = [p.parsed for p in predict(model, processor, [r["image"] for r in records], "totals_section",
                                          max_new_tokens=96, batch_size=2)]
    assert all(p is not None for p in expected), "the overfit model should answer with JSON"
    out = quantize_model(model_dir, tmp_path / "int8", device="cpu")
    got = [parsed for _, parsed in predict_in_fresh_process(out, "totals_section", 96, paths)]
    assert got == expected
    sizes = weight_bytes(load_quantized_model(out)[0], linear_module_names(model))
    assert sizes["quantized_layers"] > 0
