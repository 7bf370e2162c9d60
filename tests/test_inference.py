"""predict(): fields, left padding, the max_new_tokens cap and the repetition guard, on the tiny
real PaddleOCR-VL (weights set by hand where a test needs a particular behaviour)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image, ImageDraw

from finscribe.data.formatters import prompt_for
from finscribe.inference import GenerationArgs, Prediction, predict, predict_records
from finscribe.prompting import render_prompt
from finscribe.repetition import find_loop


def _image(width: int, height: int, text: str) -> Image.Image:
    image = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(image).multiline_text((4, 4), text, fill="black")
    return image


SMALL = _image(120, 40, "Total 12.00")
BIG = _image(300, 100, "Subtotal 10.00\nTax 2.00\nTotal 12.00")


@pytest.fixture(scope="module")
def chaotic_model(tiny_model_dir):
    """A private copy of the tiny model with large random weights: its greedy output varies from
    token to token and from image to image (an untrained model with the default init repeats one
    token, which would make padding bugs invisible)."""
    from finscribe.model import load_model

    model, processor = load_model(tiny_model_dir, device="cpu", dtype="float32")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                param.normal_(0, 0.5 if ("embed" in name or "lm_head" in name) else 0.15, generator=generator)
    return model, processor


def test_prediction_fields(tiny_model, tmp_path):
    model, processor = tiny_model
    path = tmp_path / "crop.png"
    BIG.save(path)
    model.train()
    preds = predict(model, processor, [SMALL, path], "totals_section", max_new_tokens=8, batch_size=2)
    assert model.training  # predict() decodes in eval mode and restores the caller's mode
    model.eval()
    assert len(preds) == 2 and all(isinstance(p, Prediction) for p in preds)
    for p in preds:
        assert isinstance(p.raw_text, str) and isinstance(p.repetition, bool)
        assert (p.parsed is None) == (p.error is not None)
        assert 1 <= p.new_tokens <= 8 and p.seconds > 0
    # the bigger image has more image tokens; padding is not counted
    assert preds[1].prompt_tokens > preds[0].prompt_tokens > 0
    assert preds[0].seconds == preds[1].seconds  # the batch time split evenly


def test_left_padding_same_output_alone_and_batched(chaotic_model):
    model, processor = chaotic_model
    alone = predict(model, processor, [SMALL], "totals_section", max_new_tokens=12, repetition_window=0)
    batched = predict(model, processor, [BIG, SMALL], "totals_section", max_new_tokens=12, repetition_window=0)
    assert batched[0].prompt_tokens > batched[1].prompt_tokens  # SMALL really was padded
    assert batched[0].raw_text != batched[1].raw_text  # the output depends on the image
    assert batched[1].raw_text == alone[0].raw_text
    assert batched[1].new_tokens == alone[0].new_tokens
    assert processor.tokenizer.padding_side == "right"  # restored for training


def test_max_new_tokens_cap(chaotic_model):
    model, processor = chaotic_model
    [pred] = predict(model, processor, [SMALL], "totals_section", max_new_tokens=5, repetition_window=0)
    [longer] = predict(model, processor, [SMALL], "totals_section", max_new_tokens=12, repetition_window=0)
    assert longer.new_tokens > 5  # without the cap this model goes on
    assert pred.new_tokens == 5


@pytest.fixture(scope="module")
def looping_model(tiny_model_dir):
    """The tiny model with weights set so that greedy decoding emits "123123123...": the three
    digit tokens get large one-hot embeddings (they dominate the residual stream) and an untied
    lm_head maps the direction of '1' to '2', '2' to '3', '3' to '1', with a bias that starts the
    cycle at '1'."""
    from finscribe.model import load_model

    model, processor = load_model(tiny_model_dir, device="cpu", dtype="float32")
    ids = [processor.tokenizer.convert_tokens_to_ids(c) for c in "123"]
    embed = model.get_input_embeddings().weight
    hidden, vocab = embed.shape[1], embed.shape[0]
    head = torch.nn.Linear(hidden, vocab, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        for dim, token in enumerate(ids):
            embed[token].zero_()
            embed[token, dim] = 30.0
            head.weight[ids[(dim + 1) % 3], dim] = 1.0
        head.bias[ids[0]] = 5.0
    model.lm_head = head
    return model, processor


def test_repetition_guard_stops_a_real_loop(looping_model):
    model, processor = looping_model
    [unguarded] = predict(model, processor, [SMALL], "totals_section", max_new_tokens=32, repetition_window=0)
    assert unguarded.raw_text.startswith("123123123")  # the weights really loop
    assert unguarded.new_tokens == 32 and unguarded.repetition is False
    [guarded] = predict(model, processor, [SMALL], "totals_section", max_new_tokens=32)
    assert guarded.repetition is True
    assert guarded.new_tokens <= 26  # stopped once the loop was evident (24 tokens), not at the cap
    assert guarded.parsed is None and guarded.error


def test_find_loop_spares_legitimate_repeats():
    assert find_loop([5] * 24) == 1
    assert find_loop([5] * 23) is None  # shorter than the span floor
    row = list(range(40))
    assert find_loop([9] + row * 3) == 40  # a table row repeated three times
    assert find_loop([9] + row * 2) is None
    amount = [ord(c) for c in '{"total":"1000000.00","tax_rate":"19"}']
    assert find_loop(amount) is None


def test_predict_records_keeps_record_order(tiny_model):
    model, processor = tiny_model
    records = [
        {"image": BIG, "region": "totals_section", "prompt": "Totals to JSON:"},
        {"image": SMALL, "region": "invoice_meta", "prompt": "Invoice details to JSON:"},
        {"image": SMALL, "region": "totals_section", "prompt": "Totals to JSON:"},
    ]
    preds = predict_records(model, processor, records, GenerationArgs(model="tiny", batch_size=2, max_new_tokens=4),
                            show_progress=False)
    assert len(preds) == 3
    assert preds[0].prompt_tokens > preds[2].prompt_tokens  # BIG's prediction is at BIG's index


def test_bad_inputs(tiny_model, tmp_path):
    model, processor = tiny_model
    with pytest.raises(ValueError, match="unknown region"):
        predict(model, processor, [SMALL], "nowhere")
    with pytest.raises(ValueError, match="cannot read image"):
        predict(model, processor, [tmp_path / "missing.png"], "totals_section", max_new_tokens=2)
    with pytest.raises(ValueError, match="max_new_tokens"):
        predict(model, processor, [SMALL], "totals_section", max_new_tokens=0)


def test_choose_candidate_prefers_the_first_that_passes():
    from finscribe.eval.validation import passes_validation
    from finscribe.inference import choose_candidate

    wrong_total = {"subtotal": "100.00", "discount": "0.00", "tax_rate": "10", "tax_amount": "10.00",
                   "total": "170.00", "currency": "USD"}
    right_total = dict(wrong_total, total="110.00")
    # the most likely beam misreads the total; the second adds up and is answered
    assert choose_candidate([wrong_total, right_total], "totals_section", passes_validation) == (1, True)
    assert choose_candidate([right_total, wrong_total], "totals_section", passes_validation) == (0, True)
    # nothing adds up: the most likely parsed candidate, flagged as not accepted
    assert choose_candidate([None, wrong_total, wrong_total], "totals_section", passes_validation) == (1, False)
    assert choose_candidate([None, None], "totals_section", passes_validation) == (0, False)
    # without a check: the first that parses
    assert choose_candidate([None, wrong_total], "totals_section", None) == (1, None)
    calls = []
    choose_candidate([wrong_total], "invoice_meta", lambda region, fields: calls.append(region) or False)
    assert calls == ["invoice_meta"]  # the check sees the row's region


def test_beams_answer_the_top_beam_when_nothing_parses(chaotic_model):
    model, processor = chaotic_model
    greedy = predict(model, processor, [BIG, SMALL], "totals_section", max_new_tokens=10, repetition_window=0)
    beamed = predict(model, processor, [BIG, SMALL], "totals_section", max_new_tokens=10, beams=3,
                     accept=lambda region, fields: True)
    assert [p.beams for p in greedy] == [1, 1] and [p.accepted for p in greedy] == [None, None]
    assert [p.beams for p in beamed] == [3, 3]
    for pred in beamed:  # random weights emit no JSON: the most likely beam, not accepted
        assert pred.parsed is None and pred.beam == 0 and pred.accepted is False
        assert 1 <= pred.new_tokens <= 10
    # the answer is generate()'s own best beam for that image alone
    inputs = processor(text=[render_prompt(processor, prompt_for("totals_section"))], images=[SMALL],
                       add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        best = model.generate(**inputs, do_sample=False, num_beams=3, num_return_sequences=1, early_stopping=True,
                              max_new_tokens=10, pad_token_id=processor.tokenizer.pad_token_id)
    text = processor.tokenizer.decode(best[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True,
                                      clean_up_tokenization_spaces=False)
    assert beamed[1].raw_text == text


def test_beams_refuse_constrained_decoding(tiny_model):
    model, processor = tiny_model
    with pytest.raises(ValueError, match="beams"):
        predict(model, processor, [SMALL], "totals_section", beams=2, constrained=True)
    with pytest.raises(ValueError, match="beams"):
        predict(model, processor, [SMALL], "totals_section", beams=0)
    with pytest.raises(ValueError, match="--beams"):
        GenerationArgs(model="tiny", beams=2, constrained=True)
