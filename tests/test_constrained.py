"""Schema-constrained decoding (finscribe.constrained + predict(constrained=True)) on the tiny real
PaddleOCR-VL: validity on held-out crops, no invented keys, currency minor units, mixed-region
batches, EOS only on a complete object, INT8 models and the real SentencePiece tokenizer."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from test_inference import chaotic_model, looping_model  # noqa: F401 (fixtures: random large weights; a "123" loop)

from finscribe.constrained import (
    RegionConstraint,
    compiled_grammar,
    currency_groups,
    region_schema,
)
from finscribe.data.formatters import PAGE, prompt_for, serialize_target
from finscribe.data.schema import (
    CURRENCY_CODES,
    REGIONS,
    field_type,
    get_currency,
    label_problems,
    region_problems,
)
from finscribe.inference import GenerationArgs, predict, predict_records
from finscribe.synthetic.generator import SYNTHETIC_CURRENCIES

REAL_TOKENIZER = Path(__file__).resolve().parents[2] / "shared" / "paddleocr_vl" / "v1"



# ----------------------------------------------------------------------------- helpers


def contract_problems(region: str, fields: object) -> list[str]:
    """The data contract's own check of an output (finscribe.data.schema, independent of the
    grammar): known keys, canonical numbers, minor units of the stated currency, real ISO dates,
    known currencies, non-empty rows. `{}` passes: it is the constrained answer "nothing readable"
    (the contract asks annotations, not predictions, for a non-empty subset)."""
    if fields == {}:
        return []
    return label_problems(fields) if region == PAGE else region_problems(region, fields)


def amount_decimals(fields: dict) -> set[int]:
    """The numbers of decimals of every amount in a region's fields (rows included)."""
    values = list(fields.items()) + [kv for row in fields.get("line_items", []) for kv in row.items()]
    return {len(v.partition(".")[2]) for k, v in values if field_type(k) == "money"}


def held_out_records(count_per_region: int = 10, seed: int = 500) -> list[dict]:
    """Rendered invoice crops of all five regions (currencies cycle through the generator's)."""
    from finscribe.synthetic.generator import generate_invoice
    from finscribe.synthetic.renderer import render_invoice

    codes = SYNTHETIC_CURRENCIES
    records = []
    for i in range(count_per_region):
        invoice = generate_invoice(num_items=1 + i % 3, currency=codes[i % len(codes)], seed=seed + i)
        page = render_invoice(invoice, "classic", dpi=60, seed=i)
        label = invoice.to_label()
        for region in REGIONS:
            records.append({"image": page.image.crop(tuple(page.boxes[region])), "region": region,
                            "prompt": prompt_for(region), "target": serialize_target(label[region]),
                            "source_id": f"held_out_{i}_{region}"})
    return records


def grammar_for(processor, model, region, currency=None):
    return compiled_grammar(processor.tokenizer, region, vocab_size=model.config.get_text_config().vocab_size,
                            eos_token_ids=[model.generation_config.eos_token_id], currency=currency)


def accepts(grammar, text: str, tokenizer, eos: int | None = None) -> bool:
    """Whether the grammar accepts the tokens of `text` (then `eos` when given)."""
    import xgrammar as xgr

    matcher = xgr.GrammarMatcher(grammar)
    tokens = tokenizer.encode(text, add_special_tokens=False) + ([eos] if eos is not None else [])
    return all(matcher.accept_token(t) for t in tokens)


# ----------------------------------------------------------------------------- the grammar


def test_every_canonical_label_is_accepted_and_schema_breaks_are_not(tiny_model):
    """The grammar admits the canonical labels of generated invoices (every region, the page, every
    synthetic currency, with EOS after them), partial objects and `{}`, and rejects unknown keys,
    empty rows, wrong decimals, bad dates, whitespace."""
    from finscribe.synthetic.generator import generate_invoice

    model, processor = tiny_model
    tokenizer, eos = processor.tokenizer, model.generation_config.eos_token_id
    for i, code in enumerate(SYNTHETIC_CURRENCIES):
        label = generate_invoice(num_items=1 + i % 4, currency=code, seed=900 + i).to_label()
        for region in (*REGIONS, PAGE):
            target = serialize_target(label if region == PAGE else label[region])
            assert accepts(grammar_for(processor, model, region), target, tokenizer, eos), (region, target)
            assert accepts(grammar_for(processor, model, region, currency=code), target, tokenizer, eos)
    totals = grammar_for(processor, model, "totals_section")
    assert accepts(totals, "{}", tokenizer, eos)
    for bad in ['{"total":"12.00","vendor_name":"x"}', '{"total":"12.00","currency":"JPY"}',
                '{"total":"12","currency":"USD"}', '{"total":"12.0"}', '{"total":"012.00"}', '{"total":"1,200.00"}',
                '{"total": "12.00"}', '{"currency":"USD","total":"12.00"}', '{"total":12.00}']:
        assert not accepts(totals, bad, tokenizer, eos), bad
    items = grammar_for(processor, model, "line_items_table")
    assert accepts(items, '{"line_items":[{"description":"Support"},{"quantity":"2","line_total":"4.00"}]}',
                   tokenizer, eos)
    for bad in ['{"line_items":[{}]}', '{"line_items":[{"sku":"1"}]}', '{"line_items":[{"quantity":"1.50"}]}']:
        assert not accepts(items, bad, tokenizer, eos), bad
    page = grammar_for(processor, model, PAGE)
    assert accepts(page, '{"totals_section":{"total":"5"}}', tokenizer, eos)
    assert not accepts(page, '{"totals_section":{}}', tokenizer, eos)
    assert not accepts(page, '{"invoice_meta":{"currency":"USD"},"totals_section":{"total":"5"}}', tokenizer, eos)
    meta = grammar_for(processor, model, "invoice_meta")
    assert accepts(meta, '{"invoice_date":"2024-02-29"}', tokenizer, eos)
    for bad in ['{"invoice_date":"2023-02-29"}', '{"invoice_date":"2024-13-01"}', '{"invoice_date":"01/02/2024"}',
                '{"currency":"ABC"}', '{"currency":"usd"}', '{"invoice_number":"1"']:
        assert not accepts(meta, bad, tokenizer, eos), bad


def test_amount_decimals_follow_the_currency(tiny_model):
    model, processor = tiny_model
    tokenizer, eos = processor.tokenizer, model.generation_config.eos_token_id
    groups = currency_groups()
    assert "JPY" in groups[0] and "USD" in groups[2] and "BHD" in groups[3]
    assert sum(len(codes) for codes in groups.values()) == len(CURRENCY_CODES)
    assert all(get_currency(code).minor_units == units for units, codes in groups.items() for code in codes)
    jpy = grammar_for(processor, model, "totals_section", currency="JPY")
    assert accepts(jpy, '{"subtotal":"1235","total":"-3","currency":"JPY"}', tokenizer, eos)
    assert not accepts(jpy, '{"total":"1235.00"}', tokenizer)
    assert not accepts(jpy, '{"total":"1235","currency":"USD"}', tokenizer)
    items = grammar_for(processor, model, "line_items_table")  # no currency field: one precision per table
    assert accepts(items, '{"line_items":[{"description":"a","quantity":"1.5","unit_price":"2","line_total":"3"}]}',
                   tokenizer, eos)
    assert not accepts(items, '{"line_items":[{"description":"a","quantity":"1","unit_price":"2.00",'
                              '"line_total":"2"}]}', tokenizer)
    bhd = grammar_for(processor, model, "totals_section", currency="BHD")
    assert accepts(bhd, '{"total":"12.345","currency":"BHD"}', tokenizer, eos)
    assert not accepts(bhd, '{"total":"12.34"}', tokenizer)
    free = grammar_for(processor, model, "totals_section")  # no known currency: the anyOf over groups
    assert accepts(free, '{"total":"1.500","currency":"BHD"}', tokenizer, eos)
    assert not accepts(free, '{"total":"1.500","currency":"USD"}', tokenizer)
    assert not accepts(free, '{"total":"1.50","currency":"BHD"}', tokenizer)


def test_eos_is_masked_until_the_object_is_complete(tiny_model):
    model, processor = tiny_model
    tokenizer, eos = processor.tokenizer, model.generation_config.eos_token_id
    grammar = grammar_for(processor, model, "totals_section")
    vocab = model.config.get_text_config().vocab_size

    def eos_allowed_after(text: str) -> bool:
        tokens = tokenizer.encode(text, add_special_tokens=False)
        constraint = RegionConstraint([grammar], prompt_length=1)
        for n in range(len(tokens) + 1):
            scores = constraint(torch.tensor([[0] + tokens[:n]]), torch.zeros(1, vocab))
        return bool(torch.isfinite(scores[0, eos]))

    assert not eos_allowed_after('{"total":"12.0')
    assert not eos_allowed_after('{"total":"12.00"')
    assert eos_allowed_after('{"total":"12.00"}')
    assert eos_allowed_after("{}")  # nothing readable: every field optional
    with pytest.raises(ValueError, match="unknown region"):
        region_schema("footer")


# ----------------------------------------------------------------------------- decoding


def test_untrained_model_valid_json_only_when_constrained(tiny_model):
    """Issue 15: untrained tiny base model, 50 held-out crops over the five regions."""
    model, processor = tiny_model
    records = held_out_records()
    assert len(records) == 50 and {r["region"] for r in records} == set(REGIONS)
    rates = {}
    for constrained in (False, True):
        generation = GenerationArgs(model="tiny", max_new_tokens=64, constrained=constrained)
        preds = predict_records(model, processor, records, generation, show_progress=False)
        assert all(p.constrained is constrained for p in preds)
        json_valid = [p.parsed is not None for p in preds]
        schema_valid = [p.parsed is not None and not contract_problems(r["region"], p.parsed)
                        for r, p in zip(records, preds)]
        rates[constrained] = (sum(json_valid) / len(preds), sum(schema_valid) / len(preds))
    print(f"\nJSON / schema validity on 50 held-out crops: unconstrained {rates[False]}, constrained {rates[True]}")
    assert rates[True] == (1.0, 1.0)
    assert rates[False][0] < 1.0  # the untrained model alone does not produce JSON


def test_every_constrained_object_that_ends_is_valid_on_a_random_weights_model(chaotic_model):  # noqa: F811
    """The untrained model above answers "{}" under the grammar (48 of the 50 crops; two
    '{"currency":"EUR"}'); a model with large random weights writes non-trivial keys and values.
    Unconstrained: no valid JSON. Constrained: every output is a valid object of its region's
    schema, those that ran into the token cap or the loop guard included (issue 27: they are
    closed through the grammar inside the cap)."""
    model, processor = chaotic_model
    records = held_out_records()
    cap = 64
    generation = GenerationArgs(model="random", max_new_tokens=cap)
    free = predict_records(model, processor, records, generation, show_progress=False)
    held = predict_records(model, processor, records, dataclasses.replace(generation, constrained=True),
                           show_progress=False)
    assert not any(p.parsed is not None for p in free)
    ended = [(r["region"], p) for r, p in zip(records, held) if p.new_tokens < cap and not p.repetition]
    assert len(ended) >= 25 and len({p.raw_text for _, p in ended}) >= 10  # varied, not all "{}"
    closed = [p for p in held if p.new_tokens == cap or p.repetition]
    assert closed  # some did run into the cap or the guard: the closing was exercised
    for record, pred in zip(records, held):
        assert pred.new_tokens <= cap, pred
        assert pred.parsed is not None and contract_problems(record["region"], pred.parsed) == [], pred.raw_text
    print(f"\nrandom-weights model, 50 crops, cap {cap}: constrained {len(ended)} ended by EOS, {len(closed)} closed "
          f"at the cap or the guard, all valid; unconstrained 0 valid")


@pytest.fixture(scope="module")
def steered_model(tmp_path_factory, tiny_model_dir):
    """The tiny model trained 150 steps (~20 s) on four region crops of one invoice, the totals
    target broken on purpose: an invented key ("signature") and JPY amounts written with 2 decimals.
    Unconstrained, it reproduces them; that is what constrained decoding must prevent. (The long
    line-items target is left out: the tiny model would need many more steps to learn it.)"""
    from deploy_helpers import overfit_tiny_model

    from finscribe.model import load_model

    records = [r for r in held_out_records(count_per_region=1, seed=800) if r["region"] != "line_items_table"]
    for record in records:
        if record["region"] == "totals_section":
            record["target"] = '{"subtotal":"1234.50","total":"1234.50","currency":"JPY","signature":"ACME"}'
    train = records + [r for r in records if r["region"] == "totals_section"]  # the broken target twice
    folder = overfit_tiny_model(tiny_model_dir, tmp_path_factory.mktemp("steered") / "model", train, steps=150)
    model, processor = load_model(folder, device="cpu", dtype="float32")
    return model, processor, records


def test_constrained_model_cannot_invent_a_key_or_break_minor_units(steered_model):
    model, processor, records = steered_model
    [totals] = [r for r in records if r["region"] == "totals_section"]
    [free] = predict(model, processor, [totals["image"]], "totals_section", max_new_tokens=64)
    assert free.parsed is not None and "signature" in free.parsed, free.raw_text  # it does hallucinate
    assert free.parsed["currency"] == "JPY" and "." in free.parsed["total"]  # and breaks JPY's 0 decimals
    [held] = predict(model, processor, [totals["image"]], "totals_section", max_new_tokens=64, constrained=True)
    assert held.constrained and held.parsed is not None, held.raw_text
    assert "signature" not in held.parsed
    assert contract_problems("totals_section", held.parsed) == [], held.raw_text
    for currency in ("JPY", "BHD"):
        [pinned] = predict(model, processor, [totals["image"]], "totals_section", max_new_tokens=64,
                           constrained=True, currency=currency)
        assert pinned.parsed is not None, pinned.raw_text
        units = get_currency(currency).minor_units
        amounts = [v for k, v in pinned.parsed.items() if field_type(k) == "money"]
        assert amounts, pinned.raw_text  # the model still writes its amounts, now in the currency's form
        assert all(len(v.partition(".")[2]) == units and ("." in v) == (units > 0) for v in amounts), pinned.raw_text
        assert pinned.parsed.get("currency", currency) == currency


def test_mixed_region_batch_equals_one_crop_at_a_time(steered_model):
    model, processor, records = steered_model
    images = [r["image"] for r in records] * 2
    # The same crops again under other regions' prompts (the line-items table and the page included).
    regions = [r["region"] for r in records] + ["line_items_table", "page", "vendor_block", "client_info"]
    cap = 160
    batched = predict(model, processor, images, "page", regions=regions, batch_size=8, max_new_tokens=cap,
                      constrained=True)
    alone = [predict(model, processor, [image], region, max_new_tokens=cap, constrained=True)[0]
             for image, region in zip(images, regions)]
    assert len({p.raw_text for p in batched}) >= 6  # real, varied outputs, not all "{}"
    assert [p.raw_text for p in batched] == [p.raw_text for p in alone]
    # Every constrained object, ended by EOS, the token cap or the loop guard, is valid.
    for region, pred in zip(regions, batched):
        assert pred.parsed is not None and contract_problems(region, pred.parsed) == [], (region, pred.raw_text)


def test_constrained_int8_model(steered_model):
    """The processor only touches logits: an INT8 (dynamic) quantized model decodes under it too."""
    import copy

    from finscribe.deploy.quantize import apply_quantization, linear_module_names

    model, processor, records = steered_model
    quantized = apply_quantization(copy.deepcopy(model), "int8_dynamic", linear_module_names(model), "torch.ao")
    preds = predict(quantized, processor, [r["image"] for r in records], "page",
                    regions=[r["region"] for r in records], max_new_tokens=160, constrained=True)
    for record, pred in zip(records, preds):
        assert pred.constrained and pred.parsed is not None, pred.raw_text
        assert contract_problems(record["region"], pred.parsed) == [], pred.raw_text


def test_real_sentencepiece_tokenizer_grammars():
    """The real PaddleOCR-VL tokenizer (../shared/paddleocr_vl/v1, SentencePiece, one token per digit):
    its token table builds, every region's grammar compiles and admits the canonical labels."""
    if not (REAL_TOKENIZER / "tokenizer.model").is_file():
        pytest.skip(f"{REAL_TOKENIZER} not present")
    pytest.importorskip("sentencepiece")
    from transformers import AutoConfig, LlamaTokenizer

    from finscribe.synthetic.generator import generate_invoice

    tokenizer = LlamaTokenizer.from_pretrained(REAL_TOKENIZER)
    vocab_size = AutoConfig.from_pretrained(REAL_TOKENIZER).get_text_config().vocab_size
    assert tokenizer.tokenize("1234.50") == ["1", "2", "3", "4", ".", "5", "0"]
    label = generate_invoice(num_items=2, currency="JPY", seed=3).to_label()
    for region in (*REGIONS, PAGE):
        grammar = compiled_grammar(tokenizer, region, vocab_size=vocab_size, eos_token_ids=[tokenizer.eos_token_id])
        assert grammar is compiled_grammar(tokenizer, region, vocab_size=vocab_size,
                                           eos_token_ids=[tokenizer.eos_token_id])  # cached
        target = serialize_target(label if region == PAGE else label[region])
        assert accepts(grammar, target, tokenizer, tokenizer.eos_token_id), (region, target)
    grammar = compiled_grammar(tokenizer, "totals_section", vocab_size=vocab_size, eos_token_ids=[tokenizer.eos_token_id])
    assert not accepts(grammar, '{"total":"12.00","currency":"JPY"}', tokenizer)
    # The mask covers the model's 103,424 logits (more than the tokenizer's entries) without error.
    scores = RegionConstraint([grammar], prompt_length=1)(torch.tensor([[1]]), torch.zeros(1, vocab_size))
    allowed = torch.isfinite(scores[0]).nonzero().flatten().tolist()
    assert allowed and all(tokenizer.decode([t]).startswith("{") for t in allowed)  # "{", "{\"", "{}", <0x7B>
    assert json.dumps(region_schema("page"))  # the page schema is plain JSON


def test_repetition_guard_closes_a_constrained_row_and_the_batch_goes_on(looping_model):  # noqa: F811
    """Issue 27, a model that repeats: it loops "123123..." inside a constrained text value. The
    guard hands the row to the grammar, which closes it ('"}'): valid JSON of the region's schema,
    marked `repetition`, well before the cap; the other rows finish under their own grammars."""
    model, processor = looping_model
    image = Image.new("RGB", (120, 40), "white")
    regions = ["vendor_block", "totals_section", "client_info"]
    preds = predict(model, processor, [image] * 3, "page", regions=regions, max_new_tokens=64, constrained=True)
    looping, finished, other = preds
    for pred, region in ((looping, "vendor_block"), (other, "client_info")):
        assert pred.repetition and "123123123" in pred.raw_text and pred.new_tokens < 64, pred.raw_text
        assert pred.raw_text.endswith('"}'), pred.raw_text  # closed right after the loop was found
        assert pred.parsed is not None and contract_problems(region, pred.parsed) == [], pred.raw_text
    assert not finished.repetition and finished.parsed is not None, finished.raw_text
    assert contract_problems("totals_section", finished.parsed) == []
    # Without the guard the same loop runs into the cap, and is closed inside it.
    [capped] = predict(model, processor, [image], "vendor_block", max_new_tokens=40, constrained=True,
                       repetition_window=0)
    assert capped.new_tokens <= 40 and not capped.repetition and "123123" in capped.raw_text
    assert capped.parsed is not None and contract_problems("vendor_block", capped.parsed) == [], capped.raw_text


@pytest.mark.parametrize("cap", [2, 3, 5, 8, 13])
def test_a_tiny_token_cap_still_gives_a_valid_answer(chaotic_model, cap):  # noqa: F811
    """Issue 27, a tiny --max-new-tokens: every region's answer (keys, amounts, dates, rows cut
    anywhere) is closed inside the cap and valid. (So small a cap mostly gives '{}': the model's
    first key would not fit with its closing, so the grammar closes at once.)"""
    model, processor = chaotic_model
    records = held_out_records(count_per_region=2, seed=900)
    preds = predict(model, processor, [r["image"] for r in records], "page", regions=[r["region"] for r in records],
                    max_new_tokens=cap, constrained=True)
    for record, pred in zip(records, preds):
        assert pred.new_tokens <= cap, pred
        assert pred.parsed is not None and contract_problems(record["region"], pred.parsed) == [], pred.raw_text


def test_closing_tokens_complete_any_cut(tiny_model):
    """The closing found from a cut anywhere in a canonical label (inside keys, amounts, dates,
    text, rows) completes it to an object the grammar accepts, and the contract too."""
    import xgrammar as xgr

    from finscribe.constrained import _lex, closing_tokens
    from finscribe.synthetic.generator import generate_invoice

    model, processor = tiny_model
    tokenizer = processor.tokenizer
    label = generate_invoice(num_items=2, currency="EUR", seed=11).to_label()
    for region in (*REGIONS, PAGE):
        grammar = grammar_for(processor, model, region)
        target = serialize_target(label if region == PAGE else label[region])
        for cut in range(0, len(target), 3):
            matcher = xgr.GrammarMatcher(grammar)
            assert matcher.accept_string(target[:cut]), (region, target[:cut])
            closing = closing_tokens(matcher, grammar.tokenizer_info, _lex((False, False), target[:cut].encode()))
            assert closing is not None, (region, target[:cut])
            text = target[:cut] + tokenizer.decode(closing, clean_up_tokenization_spaces=False)
            assert accepts(grammar, text, tokenizer), (region, text)
            parsed = json.loads(text)  # a page is checked region by region: the grammar cannot tie the
            for name, fields in (parsed.items() if region == PAGE else [(region, parsed)]):  # currencies of two regions
                assert contract_problems(name, fields) == [], (region, text)


def test_a_token_cap_below_the_shortest_answer_fails_before_generating(tiny_model):
    from finscribe.errors import ConfigError

    model, processor = tiny_model
    image = Image.new("RGB", (120, 40), "white")
    with pytest.raises(ConfigError, match=r"--max-new-tokens 1 is too small for --constrained: .*'\{\}'.* 2 tokens"):
        predict(model, processor, [image], "totals_section", max_new_tokens=1, constrained=True)
    [pred] = predict(model, processor, [image], "totals_section", max_new_tokens=2, constrained=True)
    assert pred.parsed == {} and pred.raw_text == "{}"


def test_the_services_default_constrained_path_is_always_valid(chaotic_model, tmp_path):  # noqa: F811
    """The service decodes constrained by default (`serve`'s ServeGenerationArgs): with a small
    cap every region of a page comes back as valid JSON, and a cap too small for '{}' is refused
    when the service starts, not on the first request."""
    from finscribe.deploy.server_config import ServeGenerationArgs
    from finscribe.deploy.service import PaddleOCRVLService
    from finscribe.errors import ConfigError

    model, processor = chaotic_model
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    generation = ServeGenerationArgs(model=str(tmp_path / "model"), max_new_tokens=12, device="cpu")
    assert generation.constrained is True
    service = PaddleOCRVLService(generation, detector=None)
    page = held_out_records(count_per_region=1, seed=950)[0]["image"].resize((400, 300))
    boxes = {region: [0, 0, 400, 300] for region in REGIONS}
    result = service.extract(page, boxes=boxes)
    for region in REGIONS:
        info = result["regions"][region]
        assert info["error"] is None and info["new_tokens"] <= 12, info
    with pytest.raises(ConfigError, match="--max-new-tokens 1 is too small"):
        PaddleOCRVLService(ServeGenerationArgs(model=str(tmp_path / "model"), max_new_tokens=1, device="cpu"))
