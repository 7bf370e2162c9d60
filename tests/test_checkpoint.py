"""finscribe.checkpoint without the real files: the template translation and the tiny model's prompt."""

from __future__ import annotations

import pytest

from finscribe.checkpoint import CheckpointLayoutError, keep_image_wrappers, load_processor, with_assistant_separator
from finscribe.prompting import render_prompt

# The image part of the pre-native template, as PaddleOCR-VL v1 ships it.
PRE_NATIVE = ('{%- if not image_token is defined -%}\n    {%- set image_token = "<|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>" -%}\n'
              '{%- endif -%}User: {{ image_token }}x\n{%- if add_generation_prompt -%}{{- "Assistant: " -}}{%- endif -%}')


def _render(template: str, **variables) -> str:
    from transformers.utils.chat_template_utils import _compile_jinja_template

    return _compile_jinja_template(template).render(add_generation_prompt=True, **variables)


def test_the_wrapped_image_survives_a_processor_that_passes_its_own_image_token():
    assert _render(PRE_NATIVE, image_token="<|IMAGE_PLACEHOLDER|>") == "User: <|IMAGE_PLACEHOLDER|>xAssistant: "  # the bug
    fixed = keep_image_wrappers(PRE_NATIVE)
    wrapped = "User: <|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>xAssistant: "
    assert _render(fixed, image_token="<|IMAGE_PLACEHOLDER|>") == _render(fixed) == wrapped


def test_assistant_separator_switches_between_v1_and_1_5():
    newline = with_assistant_separator(PRE_NATIVE, "\n")
    assert _render(newline).endswith("xAssistant:\n")
    assert with_assistant_separator(newline, " ") == PRE_NATIVE
    with pytest.raises(CheckpointLayoutError, match="no \"Assistant: \""):
        with_assistant_separator("{{ messages }}", "\n")


def test_the_tiny_model_keeps_its_wrappers_and_loads_with_the_pil_backend(tiny_model_dir):
    processor = load_processor(str(tiny_model_dir))
    assert "User: <|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>Totals" in render_prompt(processor, "Totals to JSON:")
    assert type(processor.image_processor).__name__ == "PaddleOCRVLImageProcessorPil"
