"""The completion-only collator (prompts come from `finscribe.prompting`).

The prompt is the checkpoint's own chat template (image first, then the instruction, then the
generation prompt); the loss sees only the answer: labels are -100 on every prompt token (the
expanded image tokens included) and on padding, and the real ids on the target JSON and the EOS.

Prompt and target are tokenised *separately* and concatenated: tokenising "prompt + target" as
one string lets BPE merge across the boundary (e.g. "Assistant: " + '{"' → one ' {"' token), which
would shift the boundary and teach the model a token sequence it never sees at inference, where
the prompt is tokenised alone and the answer is generated after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image

from finscribe.errors import FinScribeError
from finscribe.prompting import encode_prompt

IGNORE_INDEX = -100


class RecordError(FinScribeError, ValueError):
    """A training record the collator cannot use (missing key, prompt longer than max_length)."""


def _record_name(record: dict[str, Any], index: int) -> str:
    image = record.get("image")
    where = str(image) if isinstance(image, (str, Path)) else record.get("source_id", "in-memory image")
    return f"record {index} ({where})"


class CompletionCollator:
    """Collate `{"image", "prompt", "target"}` records into a right-padded training batch.

    Returns input_ids, attention_mask, labels, pixel_values, image_grid_thw, mm_token_type_ids.
    With `max_length`, an answer that does not fit is cut (and loses its EOS); a prompt that alone
    does not fit raises ValueError.
    """

    def __init__(self, processor: Any, max_length: int | None = None):
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.max_length = max_length
        self.eos_id = self.tokenizer.eos_token_id
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_id
        self.truncated = 0  # answers cut by max_length so far (the trainer logs it)

    def encode(self, record: dict[str, Any], index: int = 0) -> dict[str, Any]:
        """One record → unpadded ids/labels/mm types + its image tensors."""
        name = _record_name(record, index)
        for key in ("image", "prompt", "target"):
            if key not in record:
                raise RecordError(f"{name}: missing key {key!r}; records need image, prompt and target")
        prompt = encode_prompt(self.processor, record["image"], record["prompt"], name)
        prompt_ids = prompt["input_ids"][0].tolist()
        target_ids = self.tokenizer(record["target"], add_special_tokens=False)["input_ids"] + [self.eos_id]
        if self.max_length is not None:
            room = self.max_length - len(prompt_ids)
            if room <= 0:
                raise RecordError(f"{name}: the prompt alone is {len(prompt_ids)} tokens (image included), more than "
                                 f"max_length={self.max_length}; raise --max-length or lower the image processor's max_pixels")
            if len(target_ids) > room:
                target_ids = target_ids[:room]
                self.truncated += 1
        return {
            "input_ids": prompt_ids + target_ids,
            "labels": [IGNORE_INDEX] * len(prompt_ids) + target_ids,
            "mm_token_type_ids": prompt["mm_token_type_ids"][0].tolist() + [0] * len(target_ids),
            "pixel_values": prompt["pixel_values"],
            "image_grid_thw": prompt["image_grid_thw"],
        }

    def __call__(self, records: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        encoded = [self.encode(record, i) for i, record in enumerate(records)]
        width = max(len(e["input_ids"]) for e in encoded)
        batch = len(encoded)
        input_ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        labels = torch.full((batch, width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((batch, width), dtype=torch.long)
        mm_token_type_ids = torch.zeros((batch, width), dtype=torch.long)
        for row, e in enumerate(encoded):
            n = len(e["input_ids"])
            input_ids[row, :n] = torch.tensor(e["input_ids"])
            labels[row, :n] = torch.tensor(e["labels"])
            attention_mask[row, :n] = 1
            mm_token_type_ids[row, :n] = torch.tensor(e["mm_token_type_ids"])
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "pixel_values": torch.cat([e["pixel_values"] for e in encoded]),
            "image_grid_thw": torch.cat([e["image_grid_thw"] for e in encoded]),
            "mm_token_type_ids": mm_token_type_ids,
        }


def estimated_tokens(record: dict[str, Any], processor: Any) -> int:
    """The tokens a record takes in a batch, read from its image header (no decoding): the image's
    tokens after the processor's resize (its area clamped to the processor's pixel bounds, one token
    per (patch · merge)² pixels) plus ~2 characters of prompt and answer per token (digits are
    single tokens). Close enough to batch records of similar length together."""
    image_processor = processor.image_processor
    size = getattr(image_processor, "size", None) or {}
    low = size.get("shortest_edge") or getattr(image_processor, "min_pixels", None) or 0
    high = size.get("longest_edge") or getattr(image_processor, "max_pixels", None) or float("inf")
    pixels_per_token = (getattr(image_processor, "patch_size", 14) * getattr(image_processor, "merge_size", 2)) ** 2
    image = record["image"]
    if isinstance(image, (str, Path)):
        with Image.open(image) as opened:  # the header only
            width, height = opened.size
    else:
        width, height = image.size
    image_tokens = min(max(width * height, low), high) / pixels_per_token
    return int(image_tokens + (len(record["prompt"]) + len(record["target"])) / 2) + 1


def with_token_lengths(dataset: Any, processor: Any) -> Any:
    """The records with a `length` column (`estimated_tokens`), which the Trainer's length-grouped
    sampler reads: a batch mixing a whole line-item table (~700 tokens) with small crops (~150) pads
    every crop to the table's length."""
    return dataset.add_column("length", [estimated_tokens(record, processor) for record in dataset])
