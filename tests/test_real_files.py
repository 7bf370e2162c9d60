"""FinScribe on the real PaddleOCR-VL v1 files (../shared/paddleocr_vl/v1: tokenizer, template,
processor and model configs, no weights), in their pre-native layout.

Ids are checked against the README's measured reference prompt and against SentencePiece itself;
the stages run on `init-tiny-model --like v1` (real tokenizer/template/processor, tiny random weights).
"""

from __future__ import annotations

import json
import re

import pytest
import sentencepiece
import torch
from PIL import Image, ImageDraw
from real_files import V1, needs_v1, save_pre_native
from transformers import PaddleOCRVLConfig, PaddleOCRVLForConditionalGeneration

from finscribe.checkpoint import (
    CheckpointLayoutError,
    describe,
    is_pre_native,
    load_config,
    load_processor,
    with_assistant_separator,
)
from finscribe.data.formatters import prompt_for
from finscribe.model import load_model
from finscribe.prompting import encode_prompt
from finscribe.training.collate import IGNORE_INDEX, CompletionCollator
from finscribe.training.model import build_tiny_model_like, default_corpus
from finscribe.training.model import main as init_tiny_main

pytestmark = needs_v1

# The reference prompt of the real checkpoint (../shared/paddleocr_vl/README.md): begin, "User", ":", "▁",
# <|IMAGE_START|> ... <|IMAGE_END|>, the text, "\n", "Assistant", ":", "▁" (v1) or "\n" (1.5 / 1.6).
BEGIN = [100273, 2969, 93963, 93919, 101305]
IMAGE_PLACEHOLDER, IMAGE_END, NEWLINE, ASSISTANT, COLON, SPACE = 100295, 101306, 23, 92267, 93963, 93919


@pytest.fixture(scope="module")
def processor():
    return load_processor(str(V1))


@pytest.fixture(scope="module")
def sp():
    return sentencepiece.SentencePieceProcessor(model_file=str(V1 / "tokenizer.model"))


@pytest.fixture(scope="module")
def tiny_v1(tmp_path_factory):
    """A tiny random model with the real v1 tokenizer, template, processor and config shape."""
    return build_tiny_model_like(V1, tmp_path_factory.mktemp("tiny-v1") / "model", hidden_size=64, num_layers=1,
                                 vision_hidden_size=64, vision_layers=1, num_heads=2)


def _crop(size=(300, 100), text="Total 1,469.06 EUR"):
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((6, 6), text, fill="black")
    return image


def _expected_prompt(sp, n_image_tokens: int, text: str, separator_ids: list[int]) -> list[int]:
    return BEGIN + [IMAGE_PLACEHOLDER] * n_image_tokens + [IMAGE_END] + sp.encode(text) + [NEWLINE, ASSISTANT, COLON] + separator_ids


def test_the_files_are_the_pre_native_layout_that_native_transformers_cannot_read():
    assert is_pre_native(str(V1))
    from transformers import AutoProcessor

    with pytest.raises(AttributeError, match="image_token"):
        AutoProcessor.from_pretrained(V1)  # what a user gets without finscribe.checkpoint


def test_v1_prompt_ids_are_exactly_the_real_ones(processor, sp):
    prompt = prompt_for("totals_section")
    out = encode_prompt(processor, _crop(), prompt)
    ids = out["input_ids"][0].tolist()
    _, h, w = out["image_grid_thw"][0].tolist()
    assert ids == _expected_prompt(sp, h * w // 4, prompt, [SPACE])
    tokens = processor.tokenizer.convert_ids_to_tokens(ids[-3:])
    assert tokens == ["Assistant", ":", "▁"]
    # The README's measured OCR prompt, token for token after the image.
    ocr = encode_prompt(processor, _crop(), "OCR:")["input_ids"][0].tolist()
    assert ocr[:5] == BEGIN and ocr[-8:] == [101306, 93972, 2497, 93963, 23, 92267, 93963, 93919]


def test_1_5_and_1_6_generation_prompt_ends_with_a_newline(processor, sp):
    template = with_assistant_separator(processor.chat_template, "\n")
    assert template.count('"Assistant:\\n"') == 2 and '"Assistant: "' not in template  # turn and generation prompt
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "OCR:"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, chat_template=template)
    assert text.endswith("OCR:\nAssistant:\n")
    ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids == _expected_prompt(sp, 1, "OCR:", [NEWLINE])


def test_the_template_keeps_the_image_wrappers_although_the_processor_passes_its_image_token(processor):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "OCR:"}]}]
    # The processor passes image_token="<|IMAGE_PLACEHOLDER|>" to every template; the wrappers must stay.
    assert processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) == (
        "<|begin_of_sentence|>User: <|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>OCR:\nAssistant: ")
    bare = (V1 / "chat_template.jinja").read_text()
    dropped = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, chat_template=bare)
    assert "<|IMAGE_START|>" not in dropped  # the untranslated file loses them: why the translation exists


def test_the_converted_tokenizer_equals_sentencepiece_and_reads_digits_one_by_one(processor, sp):
    tokenizer = processor.tokenizer
    texts = default_corpus(num_invoices=30) + ["Subtotal 1,234.50 München 東京 ¥ € 😀", " lead", "a\n\n  b"]
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert ids == sp.encode(text), text
        for token in tokenizer.convert_ids_to_tokens(ids):
            if any(c.isdigit() for c in token) and not re.fullmatch(r"<0x[0-9A-F]{2}>", token):  # byte fallback
                assert len(token) == 1, (token, text)  # one digit per token, never "19" or "▁1"
    assert tokenizer.convert_ids_to_tokens(tokenizer("1469.06", add_special_tokens=False)["input_ids"]) == \
        ["1", "4", "6", "9", ".", "0", "6"]


def test_pad_is_0_eos_is_2_and_the_config_ids_match_the_tokenizer(processor):
    tokenizer = processor.tokenizer
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("<unk>", 0)
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("</s>", 2)
    assert processor.image_token_id == 100295
    config = load_config(str(V1))
    assert config.image_token_id == 100295 and config.vision_start_token_id == 101305
    assert config.video_token_id == tokenizer.convert_tokens_to_ids("<|video_pad|>") == 101307
    assert config.text_config.pad_token_id == 0 and config.text_config.eos_token_id == 2


def test_image_processor_settings_are_the_files_not_the_class_defaults(processor):
    settings = json.loads((V1 / "preprocessor_config.json").read_text())
    image_processor = processor.image_processor
    assert (image_processor.size.shortest_edge, image_processor.size.longest_edge) == (147384, 2822400)
    assert list(image_processor.image_mean) == list(image_processor.image_std) == settings["image_mean"] == [0.5] * 3
    assert image_processor.patch_size == 14 and image_processor.merge_size == 2


def test_collator_labels_decode_to_exactly_target_and_eos_for_mixed_image_sizes(processor):
    collator = CompletionCollator(processor)
    targets = ['{"total":"1469.06","currency":"EUR"}', '{"subtotal":"0.50"}', '{"line_items":[]}']
    sizes = [(300, 100), (900, 1200), (1400, 40)]
    records = [{"image": _crop(size), "prompt": prompt_for("totals_section"), "target": t} for size, t in zip(sizes, targets)]
    batch = collator(records)
    grids = batch["image_grid_thw"].tolist()
    assert len({tuple(g) for g in grids}) == 3  # three different image token grids
    assert batch["pixel_values"].shape[0] == sum(t * h * w for t, h, w in grids)
    for row, (target, (_, h, w)) in enumerate(zip(targets, grids)):
        answer = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX].tolist()
        assert processor.tokenizer.decode(answer, skip_special_tokens=False) == target + "</s>"
        assert answer[-1] == 2
        assert int((batch["input_ids"][row] == IMAGE_PLACEHOLDER).sum()) == h * w // 4
        assert batch["mm_token_type_ids"][row].sum() == h * w // 4


def test_untied_head_tie_word_embeddings_is_read_from_the_file():
    """transformers 5.24 reads the flat v1 config with tie_word_embeddings=True (the file says false):
    a model built from it has a tied head, 103,424 x 1,024 parameters short of the real 0.9B."""
    native = PaddleOCRVLConfig.from_pretrained(V1)
    ours = load_config(str(V1))
    assert json.loads((V1 / "config.json").read_text())["tie_word_embeddings"] is False
    assert native.tie_word_embeddings is True and ours.tie_word_embeddings is False  # the transformers misreading
    with torch.device("meta"):
        tied = describe(PaddleOCRVLForConditionalGeneration(native))
        untied = describe(PaddleOCRVLForConditionalGeneration(ours))
    assert tied["lm_head"] == "tied" and untied["lm_head"] == "untied"
    assert untied["parameters"] - tied["parameters"] == 103424 * 1024
    assert ours.text_config.use_cache is True and not hasattr(ours, "auto_map")
    assert ours.text_config.rope_parameters["mrope_section"] == [16, 24, 24]


def test_pre_native_weights_load_with_their_own_lm_head(tiny_v1, tmp_path):
    """Real weights in the pre-native layout (mlp_AR / visual / model.* keys, untied lm_head.weight):
    load_model keeps the trained head; plain from_pretrained keeps it only until the next
    tie_weights() (quantize.load_quantized_model, resizing, ...) silently replaces it with the embeddings."""
    model, _ = load_model(tiny_v1, device="cpu", dtype="float32")
    head = model.lm_head.weight.detach().clone()
    embeddings = model.model.language_model.embed_tokens.weight.detach().clone()
    folder = save_pre_native(model, tmp_path / "pre-native")
    loaded, processor = load_model(folder, device="cpu", dtype="float32")
    assert loaded.config.tie_word_embeddings is False
    loaded.tie_weights()
    assert torch.equal(loaded.lm_head.weight, head)
    state = {k: v for k, v in model.state_dict().items()}
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in state.items())  # every weight, renamed back
    plain = PaddleOCRVLForConditionalGeneration.from_pretrained(folder, dtype=torch.float32)
    assert plain.config.tie_word_embeddings is True
    plain.tie_weights()
    assert torch.equal(plain.lm_head.weight, embeddings) and not torch.equal(plain.lm_head.weight, head)
    assert loaded.generation_config.use_cache is True  # the file says false: decoding would drop the KV cache


def test_a_config_whose_image_token_is_not_the_tokenizers_fails_at_load_not_at_the_first_forward(tiny_v1, tmp_path):
    """Regression for "Image features and image tokens do not match": the processor expands one token,
    the model looks for another. Caught when loading, naming the field."""
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(tiny_v1, folder)
    config = json.loads((folder / "config.json").read_text())
    config["image_token_id"] = 101304  # <|image_pad|>: also in the v1 special tokens, but not the one expanded
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointLayoutError, match="image_token_id is 101304 but its tokenizer gives 100295"):
        load_model(folder, device="cpu")


def test_tiny_like_model_sees_what_the_real_one_sees(tiny_v1, processor, tmp_path, capsys):
    model, tiny_processor = load_model(tiny_v1, device="cpu", dtype="float32")
    assert not is_pre_native(str(tiny_v1))  # saved in the native layout
    assert model.config.text_config.vocab_size == 103424 and model.config.text_config.hidden_size == 64
    assert describe(model)["lm_head"] == "untied" and model.config.video_token_id == 101307
    # the PIL backend, pinned: AutoProcessor would take torchvision's (pixels up to one 8-bit level off) where installed
    assert type(tiny_processor.image_processor).__name__ == "PaddleOCRVLImageProcessorPil"
    image = _crop((700, 300))
    a, b = encode_prompt(processor, image, "Totals to JSON:"), encode_prompt(tiny_processor, image, "Totals to JSON:")
    assert a["input_ids"].tolist() == b["input_ids"].tolist()
    assert torch.equal(a["pixel_values"], b["pixel_values"]) and torch.equal(a["image_grid_thw"], b["image_grid_thw"])
    batch = CompletionCollator(tiny_processor)([{"image": _crop(s), "prompt": "Totals to JSON:", "target": '{"total":"1.00"}'}
                                                for s in [(300, 100), (600, 300)]])
    with torch.no_grad():
        assert torch.isfinite(model(**batch).loss)  # image features and image tokens match, mixed sizes
    # native layout, no auto_map to absent remote code anywhere (vLLM refuses those): stock transformers reads it
    for name in ("config.json", "tokenizer_config.json", "processor_config.json"):
        assert "auto_map" not in (tiny_v1 / name).read_text(), name
    from transformers import AutoProcessor

    assert AutoProcessor.from_pretrained(tiny_v1).image_token_id == 100295
    assert init_tiny_main(["--like", str(V1), "--output-dir", str(tmp_path / "cli"), "--hidden-size", "32", "--num-layers", "1",
                           "--vision-hidden-size", "32", "--vision-layers", "1", "--num-heads", "2",
                           "--assistant-separator", "newline"]) == 0
    assert "wrote tiny PaddleOCR-VL" in capsys.readouterr().out
    assert (tmp_path / "cli" / "chat_template.jinja").read_text().count('"Assistant:\\n"') == 2


@pytest.fixture(scope="module")
def tiny_v1_newline(tmp_path_factory):
    """A 1.5 / 1.6-style tiny model: the v1 files with `Assistant:\\n` as its generation prompt."""
    return build_tiny_model_like(V1, tmp_path_factory.mktemp("tiny-v15") / "model", hidden_size=64, num_layers=1,
                                 vision_hidden_size=64, vision_layers=1, num_heads=2, assistant_separator="\n")


def _records(folder, split="train", n=2):
    from conftest import write_records

    return write_records(folder, [f'{{"total":"{i + 1}9.50"}}' for i in range(n)], split=split)


def _train(model_dir, data, out, **overrides):
    from finscribe.training.train import TrainConfig, train

    values = dict(data=data, model=str(model_dir), output_dir=out, max_steps=2, batch_size=2, gradient_accumulation_steps=1,
                  learning_rate=1e-3, logging_steps=1, save_steps=1000, report_to=("none",), eval_generate_samples=0)
    return train(TrainConfig(**{**values, **overrides}))


def _generation_prompt(folder) -> str:
    _, processor = load_model(folder, device="cpu")
    return encode_prompt(processor, _crop(), "x")["input_ids"][0].tolist()[-3:]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("real-data")
    records = _records(folder / "crops") + _records(folder / "crops", split="val", n=2)
    path = folder / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_full_sft_of_a_pre_native_download_and_predict(tiny_v1, data_file, tmp_path):
    """Train straight from the pre-native layout (as PaddleOCR/PaddleX download it): the run folder is
    the native layout, keeps the v1 template and its own, trained, untied head."""
    from finscribe.inference import predict

    base, _ = load_model(tiny_v1, device="cpu", dtype="float32")
    pre_native = save_pre_native(base, tmp_path / "download")
    out = _train(pre_native, data_file, tmp_path / "run")
    model, processor = load_model(out, device="cpu", dtype="float32")
    assert describe(model)["lm_head"] == "untied" and not is_pre_native(str(out))
    assert not torch.equal(model.lm_head.weight, base.lm_head.weight)  # trained, not replaced by the embeddings
    assert not torch.equal(model.lm_head.weight, model.model.language_model.embed_tokens.weight)
    assert _generation_prompt(out) == [ASSISTANT, COLON, SPACE]  # the fine-tune keeps its base's v1 template
    [pred] = predict(model, processor, [_crop()], "totals_section", max_new_tokens=4, min_new_tokens=4, repetition_window=0)
    assert pred.new_tokens == 4 and pred.prompt_tokens == len(encode_prompt(processor, _crop(), prompt_for("totals_section"))["input_ids"][0])


@pytest.mark.slow
def test_lora_merge_evaluate_quantize_and_serve_on_a_1_5_style_tiny_model(tiny_v1_newline, data_file, tmp_path):
    """Every stage on the real tokenizer with the 1.5/1.6 template: each output folder carries it."""
    import httpx
    from deploy_helpers import RunningServer

    from finscribe.data.selection import RecordSelection
    from finscribe.deploy.quantize import load_quantized_model, quantize_model
    from finscribe.deploy.server import create_app
    from finscribe.deploy.service import PaddleOCRVLService
    from finscribe.deploy.uploads import UploadLimits
    from finscribe.eval.report import EvaluateConfig, evaluate
    from finscribe.inference import GenerationArgs
    from finscribe.training.lora import merge_and_export

    newline = [ASSISTANT, COLON, NEWLINE]
    adapter = _train(tiny_v1_newline, data_file, tmp_path / "lora", use_lora=True, lora_r=4, lora_dropout=0.0)
    assert (adapter / "adapter_config.json").is_file() and _generation_prompt(adapter) == newline
    merged = merge_and_export(adapter, tmp_path / "merged")
    assert _generation_prompt(merged) == newline
    report = evaluate(EvaluateConfig(generation=GenerationArgs(model=str(merged), batch_size=2, max_new_tokens=6),
                                     records=RecordSelection(data_file, "val"), output_dir=tmp_path / "eval", resamples=10),
                      show_progress=False)
    assert report["records"] == 2
    quantized = quantize_model(merged, tmp_path / "int8", device="cpu")
    model, processor = load_quantized_model(quantized, device="cpu")
    float_model, _ = load_model(merged, device="cpu", dtype="float32")
    assert describe(model)["lm_head"] == "untied"
    assert torch.equal(model.lm_head.weight, float_model.lm_head.weight)  # the trained head survives tie_weights()
    assert encode_prompt(processor, _crop(), "x")["input_ids"][0].tolist()[-3:] == newline
    service = PaddleOCRVLService(quantized, max_new_tokens=4, batch_size=2, device="cpu")
    limits = UploadLimits(max_upload_bytes=2_000_000, max_pages=1, max_pixels=4_000_000, pdf_dpi=72)
    import io

    buffer = io.BytesIO()
    _crop((600, 400)).save(buffer, format="PNG")
    with RunningServer(create_app(service, limits)) as url, httpx.Client(base_url=url, timeout=300) as client:
        response = client.post("/v1/extract", files={"file": ("page.png", buffer.getvalue(), "image/png")})
    assert response.status_code == 200, response.text
