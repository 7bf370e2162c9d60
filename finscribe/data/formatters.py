"""The fixed prompts, the target serialisation and the tolerant output parser.

Training, evaluation, mining and serving all take their prompts from here, so a model is always
asked the same question it was trained on. The prompt text is only the user's instruction: it is
wrapped into the checkpoint's own chat template by `finscribe.prompting.render_prompt`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from finscribe.data.schema import REGIONS, canonical_json
from finscribe.errors import FinScribeError

PAGE = "page"  # the "region" name used for whole-page extraction

# Short prompts in the style of PaddleOCR-VL's own task prompts ("OCR:", "Table Recognition:").
REGION_PROMPTS: dict[str, str] = {
    "vendor_block": "Vendor to JSON:",
    "client_info": "Client to JSON:",
    "invoice_meta": "Invoice details to JSON:",
    "line_items_table": "Line items to JSON:",
    "totals_section": "Totals to JSON:",
    PAGE: "Invoice to JSON:",
}
# The model's base task; used to mix plain reading back into fine-tuning (see mining.replay_dataset).
OCR_PROMPT = "OCR:"


class OutputParseError(FinScribeError, ValueError):
    """The model's text is not a JSON object. The message says where parsing failed."""


def prompt_for(region: str) -> str:
    """The instruction for a region name (one of REGIONS) or "page"."""
    try:
        return REGION_PROMPTS[region]
    except KeyError:
        raise ValueError(f"unknown region {region!r}; expected one of {', '.join((*REGIONS, PAGE))}") from None


def serialize_target(fields: dict[str, Any]) -> str:
    """The training target: canonical compact JSON (the EOS token is appended by the collator)."""
    return canonical_json(fields)


_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)


def parse_output(text: str) -> dict[str, Any]:
    """Parse generated text into a JSON object.

    Tolerates surrounding whitespace and a Markdown code fence; never repairs or guesses:
    anything else that is not a JSON object raises `OutputParseError` saying where it failed.
    """
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    if not stripped:
        raise OutputParseError("empty output: the model generated no JSON")
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError as err:
        excerpt = stripped[max(0, err.pos - 20): err.pos + 20]
        raise OutputParseError(f"not valid JSON ({err.msg} at character {err.pos}, near {excerpt!r})") from None
    if not isinstance(value, dict):
        raise OutputParseError(f"expected a JSON object, got a JSON {type(value).__name__}")
    return value
