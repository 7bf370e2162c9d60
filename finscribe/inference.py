"""`predict()`: the ONE generation path (evaluation, mining, compare and serving all call it).

Batched greedy decoding of PaddleOCR-VL on crops or pages:

    from finscribe.model import load_model
    from finscribe.inference import predict
    model, processor = load_model("models/tiny")
    [pred] = predict(model, processor, ["crop.png"], "totals_section", max_new_tokens=256)
    pred.parsed, pred.raw_text, pred.error, pred.repetition

Each batch is LEFT-padded (a decoder-only model continues from the last position of every row,
so padding must sit before the prompt; M-RoPE positions skip it through the attention mask), the
prompt is the fixed one of `formatters.prompt_for(region)` in the checkpoint's chat template
(`collate.render_prompt`, tokenised exactly as in training), every sequence is capped at
`max_new_tokens`, and a repetition guard stops a sequence caught in a loop (PaddleOCR-VL is known
to loop on long tables; `finscribe.repetition`) and marks it `repetition=True` instead of burning the whole budget.

`constrained=True` adds schema-constrained decoding (`finscribe.constrained`): every row may only
emit a JSON object of its own region's schema (rows of one batch may differ), EOS only once the
object is complete; `Prediction.constrained` records the mode. Whatever stops a constrained row
(EOS, the token cap, the repetition guard), its answer is a complete object of its schema: the
guard hands a looping row to the grammar to be closed instead of cutting it, and the last tokens of
the budget are kept for the closing (`finscribe.constrained`, "closed through the grammar"); a cap
too small for even `{}` is refused before generating (`ConfigError`).

`beams=k` (k > 1) decodes k beam candidates per image and answers the most likely one that parses
and that `accept(region, fields)` accepts (else the most likely that parses, else the most likely);
`Prediction.beam` says which.
The stages pass `finscribe.eval.validation.passes_validation`, so a candidate whose amounts break
the invoice arithmetic (total = subtotal - discount + tax, ...) gives way to the next beam that adds
up: a misread digit of one amount is usually caught by the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from tqdm.auto import tqdm
from transformers import LogitsProcessorList, StoppingCriteriaList

from finscribe.data.formatters import OCR_PROMPT, OutputParseError, parse_output, prompt_for
from finscribe.errors import ConfigError
from finscribe.generation_args import REPETITION_WINDOW, GenerationArgs  # noqa: F401  (re-exported: stages import it here)
from finscribe.prompting import load_image, render_prompt
from finscribe.repetition import RepetitionGuard


@dataclass
class Prediction:
    """One image's output.

    `parsed`: the JSON object (None when the text is not one; `error` says why).
    `prompt_tokens`: input tokens of this image (expanded image tokens + prompt, no padding).
    `new_tokens`: generated tokens up to and including EOS (or to the stop by the guard/cap).
    `seconds`: the wall time of the image's batch divided by the batch size: batched decoding
    has no per-image time, this is each image's share of the throughput.
    `constrained`: whether schema-constrained decoding produced it.
    `beam`: with `beams` > 1, the rank (0 = most likely) of the beam candidate answered; `beams`:
    how many candidates there were; `accepted`: whether that candidate passed `accept` (None when
    no check ran).
    """

    parsed: dict[str, Any] | None
    raw_text: str
    error: str | None
    repetition: bool
    prompt_tokens: int
    new_tokens: int
    seconds: float
    constrained: bool = False
    beam: int = 0
    beams: int = 1
    accepted: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _eos_ids(model: Any, processor: Any) -> list[int]:
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = processor.tokenizer.eos_token_id
    return [eos] if isinstance(eos, int) else list(eos)


def _grammars(model: Any, processor: Any, regions: list[str], currency: str | None) -> list[Any]:
    """One compiled grammar per row (cached per tokenizer and region by `finscribe.constrained`)."""
    # Imported when asked for: the grammar engine (xgrammar) takes seconds to import, which every
    # unconstrained command would otherwise pay.
    from finscribe.constrained import compiled_grammar

    vocab_size = model.config.get_text_config().vocab_size  # logits columns, may exceed len(tokenizer)
    eos_ids = _eos_ids(model, processor)
    return [compiled_grammar(processor.tokenizer, region, vocab_size=vocab_size, eos_token_ids=eos_ids,
                             currency=currency) for region in regions]


def check_constrained_budget(model: Any, processor: Any, regions: Sequence[str], max_new_tokens: int) -> None:
    """`check_closing_budget` for `regions` of this model (a service checks every region at start)."""
    check_closing_budget(_grammars(model, processor, list(regions), None), regions, max_new_tokens, processor.tokenizer)


def check_closing_budget(grammars: Sequence[Any], regions: Sequence[str], max_new_tokens: int, tokenizer: Any) -> None:
    """Refuse, before generating, a token cap that cannot hold even the shortest valid constrained
    answer of a region (a constrained answer is always closed inside the cap)."""
    from finscribe.constrained import shortest_answer_tokens

    for grammar, region in {id(g): (g, r) for g, r in zip(grammars, regions)}.values():
        shortest = shortest_answer_tokens(grammar)
        if max_new_tokens < len(shortest):
            text = tokenizer.decode(shortest, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            raise ConfigError(f"--max-new-tokens {max_new_tokens} is too small for --constrained: the shortest valid "
                              f"{region} answer, {text!r}, takes {len(shortest)} tokens; use --max-new-tokens "
                              f"{len(shortest)} or more")


def choose_candidate(parsed: Sequence[dict[str, Any] | None], region: str,
                     accept: Callable[[str, dict[str, Any]], bool] | None) -> tuple[int, bool | None]:
    """(rank, accepted) of the beam candidate to answer, given each candidate's parsed JSON (None
    when it did not parse), most likely first: the first that parses and passes `accept`, else the
    first that parses, else the first. `accepted` is None when there is no `accept` check."""
    passing = [rank for rank, fields in enumerate(parsed)
               if fields is not None and (accept is None or accept(region, fields))]
    if passing:
        return passing[0], True if accept is not None else None
    first_parsed = next((rank for rank, fields in enumerate(parsed) if fields is not None), 0)
    return first_parsed, False if accept is not None else None


def _generate_batch(model: Any, processor: Any, images: list[Any], prompts: list[str], names: list[str],
                    max_new_tokens: int, repetition_window: int, min_new_tokens: int,
                    grammars: list[Any] | None = None, beams: int = 1,
                    accept: Callable[[str, dict[str, Any]], bool] | None = None,
                    regions: list[str] | None = None) -> list[Prediction]:
    tokenizer = processor.tokenizer
    pil = [load_image(image, name) for image, name in zip(images, names)]
    texts = [render_prompt(processor, prompt) for prompt in prompts]
    start = time.perf_counter()
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        # add_special_tokens=False: the chat template already holds the begin token, as in training.
        inputs = processor(text=texts, images=pil, padding=True, add_special_tokens=False, return_tensors="pt")
    finally:
        tokenizer.padding_side = previous_side
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in inputs.items()}
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(next(model.parameters()).dtype)
    prompt_length = inputs["input_ids"].shape[1]
    eos_ids = _eos_ids(model, processor)
    pad_id = model.generation_config.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    # Beam search reorders its rows every step, which the guard's per-row state cannot follow; the
    # token cap bounds a looping beam instead.
    processors = LogitsProcessorList()
    closer = None
    if grammars is not None:
        from finscribe.constrained import RegionConstraint

        closer = RegionConstraint(grammars, prompt_length, max_new_tokens)
        processors.append(closer)
    guard = RepetitionGuard(prompt_length, len(pil), eos_ids, max_period=repetition_window, closer=closer)
    criteria = StoppingCriteriaList([guard] if repetition_window > 0 and beams == 1 else [])
    output = model.generate(
        # early_stopping: an image is done once it has `beams` finished candidates (the default would
        # keep searching for a better-scoring longer one, up to the token cap).
        **inputs, do_sample=False, num_beams=beams, num_return_sequences=beams, early_stopping=beams > 1,
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens, eos_token_id=eos_ids, pad_token_id=pad_id, stopping_criteria=criteria,
        logits_processor=processors,
    )
    seconds = (time.perf_counter() - start) / len(pil)
    generated = output[:, prompt_length:].cpu()

    def decoded(row: int, stopped_at: int | None) -> tuple[str, dict[str, Any] | None, str | None, int]:
        ids = generated[row].tolist()
        n = len(ids)
        eos_at = next((i for i, t in enumerate(ids) if t in eos_ids), None)
        if eos_at is not None:
            n = eos_at + 1
        if stopped_at is not None:
            n = min(n, stopped_at)
        raw = tokenizer.decode(ids[:n], skip_special_tokens=True, clean_up_tokenization_spaces=False)
        try:
            return raw, parse_output(raw), None, n
        except OutputParseError as err:
            return raw, None, str(err), n

    predictions = []
    for image_index in range(len(pil)):
        # generate() returns an image's `beams` candidates as consecutive rows, most likely first.
        candidates = [decoded(image_index * beams + rank, guard.stopped_at[image_index] if beams == 1 else None)
                      for rank in range(beams)]
        chosen, accepted = 0, None
        if beams > 1:
            region = regions[image_index] if regions is not None else ""
            chosen, accepted = choose_candidate([c[1] for c in candidates], region, accept)
        raw, parsed, error, n = candidates[chosen]
        predictions.append(Prediction(
            parsed=parsed, raw_text=raw, error=error, repetition=beams == 1 and guard.looped_at[image_index] is not None,
            prompt_tokens=int(inputs["attention_mask"][image_index].sum()), new_tokens=n, seconds=seconds,
            constrained=grammars is not None, beam=chosen, beams=beams, accepted=accepted,
        ))
    return predictions


def predict(
    model: Any,
    processor: Any,
    images: Sequence[Any],
    region: str,
    *,
    max_new_tokens: int = 512,
    batch_size: int = 8,
    repetition_window: int = REPETITION_WINDOW,
    prompts: Sequence[str] | None = None,
    min_new_tokens: int = 0,
    progress: Any = None,
    constrained: bool = False,
    regions: Sequence[str] | None = None,
    currency: str | None = None,
    beams: int = 1,
    accept: Callable[[str, dict[str, Any]], bool] | None = None,
) -> list[Prediction]:
    """Decode every image (PIL image or path; greedy, or beam search with `beams` > 1) with the
    prompt of `region` (a schema region or "page"); returns one `Prediction` per image, in order.

    `prompts` overrides the region prompt per image (e.g. the OCR prompt). `repetition_window=0`
    turns the loop guard off. `min_new_tokens` exists for fixed-length latency benchmarks.
    `progress`: an optional tqdm bar advanced by the number of images done.
    `constrained=True`: each row may only emit its region's JSON schema (`finscribe.constrained`).
    `regions` overrides `region` per image (a batch may mix regions; the prompts follow unless
    `prompts` is given). `currency` (an ISO code, when the caller knows it) pins the constrained
    amounts to its minor units.
    `beams` > 1: beam search with that many candidates per image; the answer is the most likely
    candidate that parses and passes `accept(region, fields)` (any parsed object when `accept` is
    None), else the most likely that parses, else the most likely (module docstring). The
    repetition guard is off then (the token cap bounds a loop), and it cannot be combined with
    `constrained`.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if beams < 1:
        raise ValueError(f"beams must be >= 1, got {beams}")
    if beams > 1 and constrained:
        raise ValueError("constrained decoding follows one sequence per row; it cannot be combined with beams > 1")
    images = list(images)
    if regions is None:
        regions = [region] * len(images)
    elif len(regions) != len(images):
        raise ValueError(f"got {len(regions)} regions for {len(images)} images")
    if prompts is None:
        prompts = [prompt_for(r) for r in regions]
    elif len(prompts) != len(images):
        raise ValueError(f"got {len(prompts)} prompts for {len(images)} images")
    grammars = _grammars(model, processor, list(regions), currency) if constrained else None
    if grammars is not None:
        check_closing_budget(grammars, list(regions), max_new_tokens, processor.tokenizer)
    names = [str(image) if isinstance(image, (str, Path)) else f"image {i}" for i, image in enumerate(images)]
    was_training = model.training
    model.eval()
    predictions: list[Prediction] = []
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                stop = start + batch_size
                predictions += _generate_batch(model, processor, images[start:stop], list(prompts[start:stop]),
                                               names[start:stop], max_new_tokens, repetition_window, min_new_tokens,
                                               None if grammars is None else grammars[start:stop], beams, accept,
                                               list(regions[start:stop]))
                if progress is not None:
                    progress.update(len(images[start:stop]))
    finally:
        model.train(was_training)
    return predictions


def _image_area(image: Any) -> int:
    """Pixel area (reads only the header of a file) to batch similar sizes together."""
    if hasattr(image, "size"):
        return image.size[0] * image.size[1]

    try:
        with Image.open(image) as opened:
            return opened.size[0] * opened.size[1]
    except OSError:
        return 0  # unreadable: predict() raises the clear error when it loads it


def predict_records(
    model: Any,
    processor: Any,
    records: Sequence[dict[str, Any]],
    generation: GenerationArgs,
    *,
    show_progress: bool = True,
    accept: Callable[[str, dict[str, Any]], bool] | None = None,
) -> list[Prediction]:
    """Predict dataset records (`{"image", "prompt", "region", ...}`), one Prediction per record
    in record order, as `generation` says (batch size, token cap, repetition guard, constrained
    decoding, beams; `accept` as in `predict`). Records are grouped by (region, prompt) and,
    inside a group, sorted by image area so that a batch pads as little as possible. Plain-text
    "OCR:" records are never constrained and always greedy (their answer is no JSON to check)."""

    groups: dict[tuple[str, str], list[int]] = {}
    for i, record in enumerate(records):
        for key in ("image", "region"):
            if key not in record:
                raise ValueError(f"record {i} ({record.get('source_id', '?')}): missing key {key!r}")
        region = record["region"]
        prompt = record.get("prompt") or prompt_for(region)
        groups.setdefault((region, prompt), []).append(i)
    results: list[Prediction | None] = [None] * len(records)
    with tqdm(total=len(records), desc="predict", unit="img", disable=not show_progress) as bar:
        for (region, prompt), indices in groups.items():
            indices = sorted(indices, key=lambda i: _image_area(records[i]["image"]))
            preds = predict(model, processor, [records[i]["image"] for i in indices], region,
                            max_new_tokens=generation.max_new_tokens, batch_size=generation.batch_size,
                            repetition_window=generation.repetition_window, prompts=[prompt] * len(indices),
                            progress=bar, constrained=generation.constrained and prompt != OCR_PROMPT,
                            beams=generation.beams if prompt != OCR_PROMPT else 1, accept=accept)
            for i, pred in zip(indices, preds):
                results[i] = pred
    return results  # type: ignore[return-value]
