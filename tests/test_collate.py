"""The completion-only collator: exact answer labels, masking, and a finite loss."""

from __future__ import annotations

import pytest
import torch
from PIL import Image, ImageDraw

from finscribe.prompting import render_prompt
from finscribe.training.collate import IGNORE_INDEX, CompletionCollator
from finscribe.training.model import build_tiny_model, load_model


def _crop(width: int, height: int, text: str) -> Image.Image:
    image = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(image).text((5, 5), text, fill="black")
    return image


RECORDS = [
    {"image": _crop(300, 100, "Total 12.50"), "prompt": "Totals to JSON:",
     "target": '{"currency":"EUR","total":"12.50"}'},
    {"image": _crop(420, 60, "Müller GmbH"), "prompt": "Vendor to JSON:",
     "target": '{"vendor_name":"Müller GmbH","address":"Hauptstraße 5, 10115 Berlin"}'},
    {"image": _crop(120, 200, "株式会社"), "prompt": "Client to JSON:", "target": '{"client_name":"株式会社 テスト"}'},
]


def _answer_text(processor, batch, row):
    ids = batch["input_ids"][row][batch["labels"][row] != IGNORE_INDEX]
    return processor.tokenizer.decode(ids.tolist(), skip_special_tokens=False)


def test_unmasked_labels_decode_to_exactly_target_plus_eos(tiny_model):
    _, processor = tiny_model
    batch = CompletionCollator(processor)(RECORDS)
    eos = processor.tokenizer.eos_token
    for row, record in enumerate(RECORDS):
        assert _answer_text(processor, batch, row) == record["target"] + eos
        # labels equal input_ids wherever they are not masked (the model shifts internally)
        keep = batch["labels"][row] != IGNORE_INDEX
        assert torch.equal(batch["labels"][row][keep], batch["input_ids"][row][keep])
    assert set(batch) == {"input_ids", "attention_mask", "labels", "pixel_values", "image_grid_thw", "mm_token_type_ids"}
    assert batch["image_grid_thw"].shape == (3, 3)
    # different image sizes → different numbers of image tokens per row
    image_tokens = (batch["input_ids"] == processor.image_token_id).sum(1)
    assert len(set(image_tokens.tolist())) == 3
    expected = (batch["image_grid_thw"].prod(1) // 4)
    assert image_tokens.tolist() == expected.tolist()


def test_prompt_image_and_padding_are_masked(tiny_model):
    _, processor = tiny_model
    batch = CompletionCollator(processor)(RECORDS)
    image_positions = batch["input_ids"] == processor.image_token_id
    assert (batch["labels"][image_positions] == IGNORE_INDEX).all()
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()
    assert (batch["mm_token_type_ids"][image_positions] == 1).all()
    assert (batch["mm_token_type_ids"][~image_positions] == 0).all()
    for row in range(len(RECORDS)):
        n = int(batch["attention_mask"][row].sum())
        assert batch["attention_mask"][row, :n].all()  # right padding
        first_answer = int((batch["labels"][row] != IGNORE_INDEX).nonzero()[0])
        prompt_text = processor.tokenizer.decode(batch["input_ids"][row, :first_answer], skip_special_tokens=False)
        rendered = render_prompt(processor, RECORDS[row]["prompt"])
        # the prompt part is the rendered chat template with the image placeholder expanded
        assert prompt_text.replace(processor.image_token, "") == rendered.replace(processor.image_token, "")
        assert prompt_text.endswith("Assistant: ")


def test_masking_with_newline_assistant_template(tmp_path):
    path = build_tiny_model(tmp_path / "nl", texts=[r["target"] for r in RECORDS] * 3, assistant_separator="\n")
    _, processor = load_model(path, device="cpu")
    rendered = render_prompt(processor, "Totals to JSON:")
    assert rendered.endswith("Totals to JSON:\nAssistant:\n")
    assert rendered.index(processor.image_token) < rendered.index("Totals to JSON:")
    batch = CompletionCollator(processor)(RECORDS)
    for row, record in enumerate(RECORDS):
        assert _answer_text(processor, batch, row) == record["target"] + processor.tokenizer.eos_token
        first_answer = int((batch["labels"][row] != IGNORE_INDEX).nonzero()[0])
        prompt_text = processor.tokenizer.decode(batch["input_ids"][row, :first_answer], skip_special_tokens=False)
        assert prompt_text.endswith("Assistant:\n")


def test_forward_backward_gives_finite_loss(tiny_model_dir):
    model, processor = load_model(tiny_model_dir, device="cpu", dtype="float32")
    batch = CompletionCollator(processor)(RECORDS)
    out = model(**batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.model.visual.vision_model.embeddings.patch_embedding.weight.grad.abs().sum() > 0  # the image reaches the loss


def test_max_length_cuts_answer_and_rejects_overlong_prompt(tiny_model):
    _, processor = tiny_model
    full = CompletionCollator(processor).encode(RECORDS[1])
    n_prompt = full["labels"].count(IGNORE_INDEX)
    collator = CompletionCollator(processor, max_length=n_prompt + 3)
    cut = collator.encode(RECORDS[1])
    assert len(cut["input_ids"]) == n_prompt + 3 and collator.truncated == 1
    with pytest.raises(ValueError, match="prompt alone"):
        CompletionCollator(processor, max_length=5)([RECORDS[0]])


def test_unreadable_or_degenerate_image_names_the_record(tiny_model, tmp_path):
    _, processor = tiny_model
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="record 1 .*broken.png"):
        CompletionCollator(processor)([RECORDS[0], {"image": str(bad), "prompt": "x", "target": "{}"}])
    with pytest.raises(ValueError, match="record 0 .*rejected"):
        CompletionCollator(processor)([{"image": Image.new("RGB", (3000, 5)), "prompt": "x", "target": "{}"}])
    with pytest.raises(ValueError, match="missing key 'target'"):
        CompletionCollator(processor)([{"image": RECORDS[0]["image"], "prompt": "x"}])


def test_estimated_tokens_track_the_collated_length_for_length_grouping(tmp_path):
    """The length-grouped sampler batches records by `estimated_tokens`, read from image headers:
    it must follow the real collated length (a table crop far longer than a totals crop)."""
    from finscribe.model import load_model as load_reader
    from finscribe.quickstart_config import TINY_READER
    from finscribe.training.collate import estimated_tokens, with_token_lengths

    _, processor = load_reader(str(TINY_READER), device="cpu", dtype="float32")
    collator = CompletionCollator(processor)
    records = []
    for name, size, target in (("totals", (420, 120), '{"total":"12.50"}'),
                               ("table", (1100, 300), '{"line_items":[' + ",".join(['{"description":"Bolt"}'] * 12) + "]}"),
                               ("huge", (3000, 2000), '{"total":"1.00"}')):
        path = tmp_path / f"{name}.png"
        Image.new("RGB", size, "white").save(path)
        records.append({"image": str(path), "prompt": "Extract the totals.", "target": target})
    true = [len(collator.encode(r)["input_ids"]) for r in records]
    estimated = [estimated_tokens(r, processor) for r in records]
    assert estimated[1] > 2 * estimated[0] and true[1] > 2 * true[0]
    for got, want in zip(estimated, true):
        assert abs(got - want) <= 0.3 * want, (estimated, true)  # the processor's max_pixels caps the huge one too
    import datasets
    with_lengths = with_token_lengths(datasets.Dataset.from_list(records), processor)
    assert with_lengths["length"] == estimated
