"""Loading PaddleOCR-VL and the tiny test model."""

from __future__ import annotations

import json

import pytest
import torch

from finscribe.training.model import (
    IMAGE_TOKEN,
    ModelNotAvailableError,
    build_tiny_model,
    load_model,
    main,
)


def test_tiny_model_is_a_real_paddleocr_vl(tiny_model, tiny_model_dir):
    model, processor = tiny_model
    from transformers import PaddleOCRVLForConditionalGeneration, PaddleOCRVLProcessor

    assert type(model) is PaddleOCRVLForConditionalGeneration
    assert isinstance(processor, PaddleOCRVLProcessor)
    text = model.config.text_config
    assert sum(text.rope_parameters["mrope_section"]) == text.head_dim // 2
    assert text.vocab_size == len(processor.tokenizer)
    tok = processor.tokenizer
    assert model.config.image_token_id == tok.convert_tokens_to_ids(IMAGE_TOKEN) == processor.image_token_id
    assert model.config.vision_start_token_id == tok.convert_tokens_to_ids("<|IMAGE_START|>")
    assert model.generation_config.eos_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("</s>")
    assert tok.pad_token == "<unk>" and tok.cls_token == "<|begin_of_sentence|>"
    assert model.dtype == torch.float32
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
    saved = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json", "chat_template.jinja"} <= saved
    # the tokenizer was trained on generated labels: a money field costs few tokens
    assert len(tok('"total":"1469.06"')["input_ids"]) <= 12  # vs 17 bytes


def test_small_min_pixels_keeps_crops_small(tiny_model):
    from PIL import Image

    _, processor = tiny_model
    out = processor.image_processor(images=[Image.new("RGB", (300, 100), "white")])
    tokens = int(out["image_grid_thw"][0].prod()) // 4
    assert tokens < 60


def test_build_is_deterministic(tmp_path):
    texts = ['{"total":"1.00"}'] * 4
    a = build_tiny_model(tmp_path / "a", texts=texts, seed=3, hidden_size=64, vision_hidden_size=64, num_layers=1, vision_layers=1)
    b = build_tiny_model(tmp_path / "b", texts=texts, seed=3, hidden_size=64, vision_hidden_size=64, num_layers=1, vision_layers=1)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert json.loads((a / "tokenizer.json").read_text()) == json.loads((b / "tokenizer.json").read_text())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_unreachable_hub_id_gives_clear_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotAvailableError, match="no access to the Hugging Face Hub.*init-tiny-model"):
        load_model("finscribe-test/no-such-model", device="cpu")


def test_folder_that_is_not_a_model_is_rejected(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="no config.json"):
        load_model(tmp_path, device="cpu")


def test_cli_writes_loadable_model(tmp_path, capsys):
    out = tmp_path / "tiny"
    assert main(["--output-dir", str(out), "--hidden-size", "64", "--vision-hidden-size", "64", "--num-layers", "1",
                 "--vision-layers", "1", "--assistant-separator", "newline"]) == 0
    assert "wrote tiny PaddleOCR-VL" in capsys.readouterr().out
    model, processor = load_model(out, device="cpu")
    assert model.config.text_config.hidden_size == 64
    assert json.loads((out / "tiny_model_config.json").read_text())["assistant_separator"] == "newline"
