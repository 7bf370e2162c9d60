"""Schema-constrained decoding (finscribe.constrained + predict(constrained=True)) on the tiny real
PaddleOCR-VL: validity on held-out crops, no invented keys, currency minor units, mixed-region
batches, EOS only on a complete object, INT8 models and the real SentencePiece tokenizer."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
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
    CURRENCIES,
    LINE_ITEM_FIELDS,
    REGION_FIELDS,
    REGIONS,
    field_type,
    format_decimal,
    format_money,
    get_currency,
)
from finscribe.inference import predict, predict_records

REAL_TOKENIZER = Path(__file__).resolve().parents[2] / "shared" / "paddleocr_vl" / "v1"
# Currencies with 0 and 3 minor units, when the contract knows them (BHD arrives with Babel's list).
THREE_DECIMALS = "BHD" if "BHD" in CURRENCIES else None


# ----------------------------------------------------------------------------- helpers


def contract_violations(region: str, fields: object) -> list[str]:
    """What in a constrained output breaks the data contract (independent of the grammar):
    unknown keys, non-canonical numbers, amounts whose decimals do not match the currency's minor
    units, impossible dates, unknown currencies, incomplete line-item rows. Every field optional."""
    if not isinstance(fields, dict):
        return [f"not an object: {fields!r}"]
    if region == PAGE:
        unknown = sorted(set(fields) - set(REGIONS))
        problems = [f"unknown regions {unknown}"] if unknown else []
        currencies = {f.get("currency") for f in fields.values() if isinstance(f, dict)} - {None}
        if len(currencies) > 1:
            problems.append(f"different currencies on one page: {sorted(currencies)}")
        currency = next(iter(currencies)) if len(currencies) == 1 else None
        return problems + [p for r, f in fields.items() if r in REGIONS for p in _region_violations(r, f, currency)]
    return _region_violations(region, fields, None)


def _region_violations(region: str, fields: object, currency: str | None) -> list[str]:
    if not isinstance(fields, dict):
        return [f"{region}: not an object"]
    problems = [f"{region}: unknown key {k!r}" for k in fields if k not in REGION_FIELDS[region]]
    currency = fields.get("currency", currency)
    if currency is not None and currency not in CURRENCIES:
        problems.append(f"{region}: unknown currency {currency!r}")
        currency = None
    values = [(k, v) for k, v in fields.items() if k != "line_items"]
    for row in fields.get("line_items", []):
        if not isinstance(row, dict) or set(row) != set(LINE_ITEM_FIELDS):
            problems.append(f"{region}: bad row {row!r}")
        else:
            values += list(row.items())
    minor_units = {len(v.split(".")[1]) if "." in v else 0 for k, v in values
                   if field_type(k) == "money" and isinstance(v, str)}
    if len(minor_units) > 1:
        problems.append(f"{region}: amounts with different numbers of decimals {sorted(minor_units)}")
    for key, value in values:
        kind = field_type(key)
        if not isinstance(value, str):
            problems.append(f"{region}.{key}: not a string")
        elif kind == "money":
            units = currency and get_currency(currency).minor_units
            number = Decimal(value)
            if currency is not None and value != format_money(number, currency):
                problems.append(f"{region}.{key}: {value!r} is not canonical {currency} ({units} decimals)")
            if value != format(number, "f"):  # no exponent, no leading zeros, no '+'
                problems.append(f"{region}.{key}: {value!r} is not a canonical amount")
        elif kind == "decimal" and value != format_decimal(Decimal(value)):
            problems.append(f"{region}.{key}: {value!r} is not a canonical decimal")
        elif kind == "date":
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                problems.append(f"{region}.{key}: {value!r} is not a date")
            if len(value) != 10:
                problems.append(f"{region}.{key}: {value!r} is not YYYY-MM-DD")
    return problems


def held_out_records(count_per_region: int = 10, seed: int = 500) -> list[dict]:
    """Rendered invoice crops of all five regions (currencies cycle through the contract's list)."""
    from finscribe.synthetic.generator import generate_invoice
    from finscribe.synthetic.renderer import render_invoice

    codes = sorted(CURRENCIES)
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
    currency, with EOS after them) and rejects unknown keys, wrong decimals, bad dates, whitespace."""
    from finscribe.synthetic.generator import generate_invoice

    model, processor = tiny_model
    tokenizer, eos = processor.tokenizer, model.generation_config.eos_token_id
    for i, code in enumerate(sorted(CURRENCIES)):
        label = generate_invoice(num_items=1 + i % 4, currency=code, seed=900 + i).to_label()
        for region in (*REGIONS, PAGE):
            target = serialize_target(label if region == PAGE else label[region])
            assert accepts(grammar_for(processor, model, region), target, tokenizer, eos), (region, target)
            assert accepts(grammar_for(processor, model, region, currency=code), target, tokenizer, eos)
    totals = grammar_for(processor, model, "totals_section")
    for bad in ['{"total":"12.00","vendor_name":"x"}', '{"total":"12.00","currency":"JPY"}',
                '{"total":"12","currency":"USD"}', '{"total":"12.0"}', '{"total":"012.00"}', '{"total":"1,200.00"}',
                '{"total": "12.00"}', '{"currency":"USD","total":"12.00"}', '{"total":12.00}']:
        assert not accepts(totals, bad, tokenizer, eos), bad
    meta = grammar_for(processor, model, "invoice_meta")
    assert accepts(meta, '{"invoice_date":"2024-02-29"}', tokenizer, eos)
    for bad in ['{"invoice_date":"2023-02-29"}', '{"invoice_date":"2024-13-01"}', '{"invoice_date":"01/02/2024"}',
                '{"currency":"XXX"}', '{"invoice_number":"1"']:
        assert not accepts(meta, bad, tokenizer, eos), bad


def test_amount_decimals_follow_the_currency(tiny_model):
    model, processor = tiny_model
    tokenizer, eos = processor.tokenizer, model.generation_config.eos_token_id
    groups = currency_groups()
    assert "JPY" in groups[0] and "USD" in groups[2]
    jpy = grammar_for(processor, model, "totals_section", currency="JPY")
    assert accepts(jpy, '{"subtotal":"1235","total":"-3","currency":"JPY"}', tokenizer, eos)
    assert not accepts(jpy, '{"total":"1235.00"}', tokenizer)
    assert not accepts(jpy, '{"total":"1235","currency":"USD"}', tokenizer)
    items = grammar_for(processor, model, "line_items_table")  # no currency field: one precision per table
    assert accepts(items, '{"line_items":[{"description":"a","quantity":"1.5","unit_price":"2","line_total":"3"}]}',
                   tokenizer, eos)
    assert not accepts(items, '{"line_items":[{"description":"a","quantity":"1","unit_price":"2.00",'
                              '"line_total":"2"}]}', tokenizer)
    if THREE_DECIMALS:
        bhd = grammar_for(processor, model, "totals_section", currency=THREE_DECIMALS)
        assert accepts(bhd, '{"total":"12.345","currency":"BHD"}', tokenizer, eos)
        assert not accepts(bhd, '{"total":"12.34"}', tokenizer)
        assert accepts(grammar_for(processor, model, "totals_section"), '{"total":"1.500","currency":"BHD"}',
                       tokenizer, eos)


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
    assert eos_allowed_after("{}")
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
        preds = predict_records(model, processor, records, max_new_tokens=64, constrained=constrained,
                                show_progress=False)
        assert all(p.constrained is constrained for p in preds)
        json_valid = [p.parsed is not None for p in preds]
        schema_valid = [p.parsed is not None and not contract_violations(r["region"], p.parsed)
                        for r, p in zip(records, preds)]
        rates[constrained] = (sum(json_valid) / len(preds), sum(schema_valid) / len(preds))
    print(f"\nJSON / schema validity on 50 held-out crops: unconstrained {rates[False]}, constrained {rates[True]}")
    assert rates[True] == (1.0, 1.0)
    assert rates[False][0] < 1.0  # the untrained model alone does not produce JSON


def test_every_constrained_object_that_ends_is_valid_on_a_random_weights_model(chaotic_model):  # noqa: F811
    """The untrained model above answers "{}" under the grammar; a model with large random weights
    writes non-trivial keys and values. Unconstrained: no valid JSON. Constrained: every output
    that ends by itself (EOS, not the token cap) is a valid object of its region's schema; an
    unbounded text value can still run into the cap (text is not length-bounded, see
    finscribe.constrained), which is reported as a parse error, never repaired."""
    model, processor = chaotic_model
    records = held_out_records()
    cap = 64
    free = predict_records(model, processor, records, max_new_tokens=cap, show_progress=False)
    held = predict_records(model, processor, records, max_new_tokens=cap, constrained=True, show_progress=False)
    assert not any(p.parsed is not None for p in free)
    ended = [(r["region"], p) for r, p in zip(records, held) if p.new_tokens < cap and not p.repetition]
    assert len(ended) >= 25 and len({p.raw_text for _, p in ended}) >= 10  # varied, not all "{}"
    for region, pred in ended:
        assert pred.parsed is not None and contract_violations(region, pred.parsed) == [], (region, pred.raw_text)
    print(f"\nrandom-weights model, 50 crops, cap {cap}: constrained {len(ended)} ended by EOS, all valid; "
          f"{sum(p.parsed is not None for p in held)} valid in all; unconstrained 0 valid")


@pytest.fixture(scope="module")
def steered_model(tmp_path_factory, tiny_model_dir):
    """The tiny model trained 150 steps (~20 s) on four region crops of one invoice, the totals
    target broken on purpose: an invented key ("signature") and JPY amounts written with 2 decimals.
    Unconstrained, it reproduces them; that is what constrained decoding must prevent. (The long
    line-items target is left out: the tiny model would need many more steps to learn it.)"""
    from deploy_helpers import overfit_tiny_model

    from finscribe.training.model import load_model

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
    assert contract_violations("totals_section", held.parsed) == [], held.raw_text
    currencies = [None, "JPY"] + ([THREE_DECIMALS] if THREE_DECIMALS else [])
    for currency in currencies[1:]:
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
    # A constrained object can still be cut by the token cap (or the loop guard); every one that
    # ended by itself is valid and follows the contract.
    complete = [(region, p) for region, p in zip(regions, batched) if p.new_tokens < cap and not p.repetition]
    assert len(complete) >= 5
    for region, pred in complete:
        assert pred.parsed is not None and contract_violations(region, pred.parsed) == [], (region, pred.raw_text)


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
        assert contract_violations(record["region"], pred.parsed) == [], pred.raw_text


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


def test_repetition_guard_stops_a_constrained_row_and_the_batch_goes_on(looping_model):  # noqa: F811
    """A model that loops "123123..." inside a constrained text value: the guard stops that row
    (marked `repetition`), the processor lets the stopped row's padding through, and the other
    rows of the batch finish under their own grammars."""
    model, processor = looping_model
    image = Image.new("RGB", (120, 40), "white")
    regions = ["vendor_block", "totals_section", "client_info"]
    preds = predict(model, processor, [image] * 3, "page", regions=regions, max_new_tokens=64, constrained=True)
    looping, finished, other = preds
    for pred in (looping, other):  # looped inside a string value, stopped well before the cap
        assert pred.repetition and "123123123" in pred.raw_text and pred.new_tokens < 64, pred.raw_text
        assert pred.parsed is None  # cut, so not JSON: the guard's stop is reported, never repaired
    assert not finished.repetition and finished.parsed is not None, finished.raw_text
    assert contract_violations("totals_section", finished.parsed) == []
