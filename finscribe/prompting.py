"""Prompts and images, the same way for training, evaluation and serving.

The prompt is the checkpoint's own chat template (image first, then the instruction, then the
generation prompt), so a model is always asked exactly what it was trained on:

    from finscribe.prompting import encode_prompt
    inputs = encode_prompt(processor, "crop.png", "Totals to JSON:")  # input_ids, pixel_values, ...
"""

from __future__ import annotations

from typing import Any

from PIL import Image, UnidentifiedImageError

from finscribe.errors import FinScribeError
from finscribe.ingest import IngestError, prepare_image


class ImageReadError(FinScribeError, ValueError):
    """An image that cannot be read or that the processor refuses; the message names it."""


def render_prompt(processor: Any, prompt: str) -> str:
    """The chat-template text for one image + `prompt`, ending with the generation prompt."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def load_image(image: Any, name: str = "image") -> Image.Image:
    """The RGB image the model is given, from a PIL image or an image file: normalised and fitted
    by `finscribe.ingest.prepare_image` (EXIF orientation, 16-bit greyscale, transparency on white,
    CMYK; downscaled to the processor's size, long strips padded), the same pixels in training,
    evaluation and serving. Unreadable or unusable images raise ImageReadError naming them."""
    try:
        if isinstance(image, Image.Image):
            return prepare_image(image, name)
        with Image.open(image) as opened:
            opened.load()
            return prepare_image(opened, name if name != "image" else str(image))
    except (OSError, UnidentifiedImageError) as err:
        raise ImageReadError(f"{name}: cannot read image {image}: {err}. Re-export the image or drop it from the data.") from None
    except IngestError as err:
        raise ImageReadError(str(err)) from None


def encode_prompt(processor: Any, image: Any, prompt: str, name: str = "image") -> dict[str, Any]:
    """Tokenise one rendered prompt with its image: input_ids (image tokens expanded),
    mm_token_type_ids, pixel_values, image_grid_thw."""
    pil = load_image(image, name)
    if min(pil.size) < 1:
        raise ImageReadError(f"{name}: image is empty ({pil.size[0]}x{pil.size[1]} pixels)")
    try:
        return processor(text=[render_prompt(processor, prompt)], images=[pil], add_special_tokens=False,
                         return_tensors="pt")
    except ValueError as err:  # e.g. the processor's aspect-ratio limit (200:1)
        raise ImageReadError(f"{name}: the image processor rejected the {pil.size[0]}x{pil.size[1]} image: {err}") from None
