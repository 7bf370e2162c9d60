"""Read a PaddleOCR-VL folder in either layout, without remote code: its config and its processor.

Two layouts exist for the same weights:
- the **native** one (transformers >= 5, what `save_pretrained` writes): `text_config`,
  `rope_parameters`, a `tokenizer.json` whose config names the `image_token`, a
  `processor_config.json` holding the image processor;
- the **pre-native** one that PaddleOCR/PaddleX and older hub snapshots hand users
  (`../shared/paddleocr_vl/v1`): a flat config with `rope_scaling` and `auto_map` entries pointing
  at absent remote code, a SentencePiece `tokenizer.model` (`LlamaTokenizer`) with no image token,
  a `SiglipImageProcessor` preprocessor config, a template that defaults its own `image_token`.

    from finscribe.checkpoint import load_config, load_processor
    config = load_config("../shared/paddleocr_vl/v1")        # tie_word_embeddings=False, as the file says
    processor = load_processor("../shared/paddleocr_vl/v1")  # real tokenizer, template, 147,384..2,822,400 px

What is translated and why is said where it is done. Everything `save_pretrained` writes from the
result is the native layout, so a fine-tune of a pre-native download loads anywhere afterwards.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoProcessor,
    AutoTokenizer,
    PaddleOCRVLConfig,
    PaddleOCRVLForConditionalGeneration,
    PaddleOCRVLProcessor,
)
from transformers.models.paddleocr_vl.image_processing_pil_paddleocr_vl import (
    PaddleOCRVLImageProcessorPil,
)
from transformers.utils import cached_file

from finscribe.errors import FinScribeError

IMAGE_TOKEN, IMAGE_START, IMAGE_END = "<|IMAGE_PLACEHOLDER|>", "<|IMAGE_START|>", "<|IMAGE_END|>"
# The pre-native vocabulary has no <|VIDEO_PLACEHOLDER|>: its config's video_token_id (101307) is <|video_pad|>.
PRE_NATIVE_VIDEO_TOKEN = "<|video_pad|>"
ASSISTANT_SEPARATORS = {"space": " ", "newline": "\n"}  # v1: "Assistant: "; 1.5 and 1.6: "Assistant:\n"

# The pre-native template defaults `image_token` to the wrapped form, but the processor passes its
# own `image_token` (the bare placeholder) into every template, which drops the wrappers the model
# was trained with. Setting the variable unconditionally keeps them whoever renders the template.
_DEFAULT_IMAGE_TOKEN = re.compile(
    r"\{%-?\s*if not image_token is defined\s*-?%\}\s*"
    r"\{%-?\s*set image_token = (?P<value>\"[^\"]*\"|'[^']*')\s*-?%\}\s*"
    r"\{%-?\s*endif\s*-?%\}")
_GENERATION_PROMPT = re.compile(r"""(["'])Assistant:(?: |\\n)\1""")


# The real v1 small files (no weights) next to the repository; FINSCRIBE_REAL_FILES overrides it.
REAL_FILES_HINT = ('huggingface-cli download PaddlePaddle/PaddleOCR-VL --include "*.json" "*.model" "*.jinja" '
                   '--local-dir ../shared/paddleocr_vl/v1')


def real_files_folder() -> Path:
    """The folder of the real PaddleOCR-VL v1 small files: $FINSCRIBE_REAL_FILES, else
    ../shared/paddleocr_vl/v1 next to the repository. Raises CheckpointLayoutError when absent."""
    default = Path(__file__).resolve().parents[1].parent / "shared" / "paddleocr_vl" / "v1"
    folder = Path(os.environ.get("FINSCRIBE_REAL_FILES", default))
    if not (folder / "config.json").is_file():
        raise CheckpointLayoutError(f"the real PaddleOCR-VL files are not in {folder}; get them with: {REAL_FILES_HINT} "
                                    "(or point FINSCRIBE_REAL_FILES at a download)")
    return folder


class ModelNotAvailableError(FinScribeError, OSError):
    """The model id/path could not be loaded (no network, wrong path); the message says what to do."""


class CheckpointLayoutError(ModelNotAvailableError):
    """A model folder whose files cannot be translated (the message names the file and the fix)."""


def _read_json(source: str, name: str) -> dict[str, Any] | None:
    """A JSON file of a local folder or hub repo, or None when the repo has no such file."""
    path = cached_file(source, name, _raise_exceptions_for_missing_entries=False)
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointLayoutError(f"{source}/{name} is not valid JSON ({err}); download the file again") from None


def is_pre_native(source: str) -> bool:
    """True for the pre-native layout: a tokenizer config that names no image token."""
    tokenizer_config = _read_json(source, "tokenizer_config.json") or {}
    extra = tokenizer_config.get("extra_special_tokens")
    return "image_token" not in tokenizer_config and not (isinstance(extra, dict) and "image_token" in extra)


def load_config(source: str) -> PaddleOCRVLConfig:
    """The folder's `PaddleOCRVLConfig`, with what transformers 5 misreads in a pre-native config fixed.

    - `tie_word_embeddings`: a flat (pre-native) config has no `text_config`, so transformers builds
      one with the class default True and then forwards that True to the root, over the file's
      `false`. `from_pretrained` still loads the checkpoint's own `lm_head.weight` (it warns and
      leaves the two apart because both are present with different values), but a model built from
      that config has a tied head (105.9 M parameters fewer: the full-size benchmarks measured the
      wrong model), and the next `tie_weights()` (`load_quantized_model` calls it,
      `resize_token_embeddings` too) silently overwrites the trained head with the input
      embeddings (tests/test_real_files.py shows both). The file's value is what the weights are.
    - `use_cache`: the pre-native files say false (a training setting); decoding without the KV
      cache is quadratic, so it is turned back on (training switches it off itself).
    - `auto_map` and the duplicate rope `type`: dropped, so a saved fine-tune points at no absent
      remote code (vLLM refuses a model whose `auto_map` names missing files).
    """
    config = PaddleOCRVLConfig.from_pretrained(source)
    raw, _ = PaddleOCRVLConfig.get_config_dict(source)
    if "text_config" not in raw and "tie_word_embeddings" in raw:
        config.tie_word_embeddings = bool(raw["tie_word_embeddings"])
        config.text_config.tie_word_embeddings = config.tie_word_embeddings
    if "text_config" not in raw:
        config.text_config.use_cache = True
        (config.text_config.rope_parameters or {}).pop("type", None)
    for part in (config, config.vision_config):
        if hasattr(part, "auto_map"):
            del part.auto_map
    return config


def keep_image_wrappers(template: str) -> str:
    """The template with its image always rendered as <|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>."""
    return _DEFAULT_IMAGE_TOKEN.sub(lambda m: "{%- set image_token = " + m.group("value") + " -%}", template)


def set_chat_template(processor: Any, template: str) -> None:
    """Give processor and tokenizer the same template (both are saved; neither may keep a stale one)."""
    processor.chat_template = template
    processor.tokenizer.chat_template = template


def with_assistant_separator(template: str, separator: str) -> str:
    """The template with `Assistant:` followed by `separator` (" " for v1, "\\n" for 1.5/1.6), in the
    generation prompt and in assistant turns alike."""
    literal = json.dumps("Assistant:" + separator)
    changed, count = _GENERATION_PROMPT.subn(lambda m: literal, template)
    if not count:
        raise CheckpointLayoutError("the chat template has no \"Assistant: \" or \"Assistant:\\n\" literal to change")
    return changed


def _pre_native_processor(source: str) -> PaddleOCRVLProcessor:
    """Build the native processor from the pre-native files.

    Tokenizer: `tokenizer.model` is converted by transformers (needs `sentencepiece` and `protobuf`;
    the conversion equals SentencePiece's own ids, see tests/test_real_files.py), with the image and
    video tokens named so the processor can expand them. Image processor: the values of
    `preprocessor_config.json` (the native class defaults differ: 384²..1536² px, CLIP mean/std).
    """
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, extra_special_tokens={
            "image_token": IMAGE_TOKEN, "image_start_token": IMAGE_START, "image_end_token": IMAGE_END,
            "video_token": PRE_NATIVE_VIDEO_TOKEN})
    except ValueError as err:
        if "tiktoken" in str(err) or "sentencepiece" in str(err).lower() or "protobuf" in str(err).lower():
            raise CheckpointLayoutError(f"{source}: reading its SentencePiece tokenizer.model needs the `sentencepiece` "
                                        "and `protobuf` packages: pip install sentencepiece protobuf") from None
        raise
    # The remote-code processor classes these name do not exist here; left in, a re-saved folder would
    # send AutoProcessor looking for them.
    for key in ("auto_map", "processor_class"):
        tokenizer.init_kwargs.pop(key, None)
    if tokenizer.convert_tokens_to_ids(IMAGE_TOKEN) == tokenizer.unk_token_id:
        raise CheckpointLayoutError(f"{source}: the tokenizer has no {IMAGE_TOKEN} token; this is not a PaddleOCR-VL tokenizer")
    pre = _read_json(source, "preprocessor_config.json") or {}
    size = pre.get("size") or {}
    settings = {key: pre[key] for key in ("image_mean", "image_std", "patch_size", "merge_size", "temporal_patch_size",
                                          "resample", "rescale_factor", "do_rescale", "do_normalize", "do_resize",
                                          "do_convert_rgb") if key in pre}
    for key in ("min_pixels", "max_pixels"):
        if key in pre or key in size:
            settings[key] = pre.get(key, size.get(key))
    image_processor = PaddleOCRVLImageProcessorPil(**settings)
    template = tokenizer.chat_template
    if not template:
        raise CheckpointLayoutError(f"{source} has no chat template (chat_template.jinja); copy it from its base model")
    return PaddleOCRVLProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)


def load_processor(source: str) -> PaddleOCRVLProcessor:
    """The folder's processor (either layout), its template rendering the image with its wrappers.

    Raises CheckpointLayoutError when the rendered prompt still lacks the wrappers.
    """
    # backend="pil": AutoProcessor would switch to the torchvision backend wherever torchvision happens to be
    # installed; its pixels differ by up to one 8-bit level, so training and serving could see different
    # inputs. It is faster, but preprocessing is not where the time goes (benchmarks/RESULTS.md).
    processor = (_pre_native_processor(source) if is_pre_native(source)
                 else AutoProcessor.from_pretrained(source, backend="pil"))
    if processor.chat_template:
        set_chat_template(processor, keep_image_wrappers(processor.chat_template))
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x"}]}]
        rendered = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        if IMAGE_START + processor.image_token + IMAGE_END not in rendered:
            raise CheckpointLayoutError(
                f"{source}: its chat template renders an image as {rendered!r}, without {IMAGE_START}...{IMAGE_END} "
                "around the image token; use the base model's chat_template.jinja")
    return processor


def check_token_ids(source: str, config: PaddleOCRVLConfig, processor: Any) -> None:
    """The ids the model embeds images at must be the ones the processor writes, or every forward
    with an image fails with "Image features and image tokens do not match"."""
    tokenizer = processor.tokenizer
    expected = {"image_token_id": processor.image_token_id,
                "vision_start_token_id": tokenizer.convert_tokens_to_ids(IMAGE_START),
                "vision_end_token_id": tokenizer.convert_tokens_to_ids(IMAGE_END)}
    if getattr(tokenizer, "video_token", None):
        expected["video_token_id"] = tokenizer.convert_tokens_to_ids(tokenizer.video_token)
    for field, token_id in expected.items():
        if getattr(config, field) != token_id:
            raise CheckpointLayoutError(
                f"{source}/config.json: {field} is {getattr(config, field)} but its tokenizer gives {token_id}; "
                "the config and the tokenizer come from different models (copy the base model's tokenizer files)")


def use_token_ids_of(config: PaddleOCRVLConfig, processor: Any) -> PaddleOCRVLConfig:
    """`config` with its special-token ids set to those of `processor` (a full-size architecture
    driven by another tokenizer, e.g. the tiny one, in benchmarks)."""
    tokenizer = processor.tokenizer
    if len(tokenizer) > config.text_config.vocab_size:
        raise CheckpointLayoutError(f"the tokenizer has {len(tokenizer)} tokens, more than the config's vocab_size "
                                    f"{config.text_config.vocab_size}")
    config.image_token_id = processor.image_token_id
    config.vision_start_token_id = tokenizer.convert_tokens_to_ids(IMAGE_START)
    config.vision_end_token_id = tokenizer.convert_tokens_to_ids(IMAGE_END)
    if getattr(tokenizer, "video_token", None):
        config.video_token_id = tokenizer.convert_tokens_to_ids(tokenizer.video_token)
    text = config.text_config
    text.pad_token_id, text.bos_token_id, text.eos_token_id = tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id
    return config


def describe(model: Any) -> dict[str, Any]:
    """Parameter count and head kind of a PaddleOCR-VL, for benchmark reports."""
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight  # one Parameter when tied
    return {"parameters": sum(p.numel() for p in model.parameters()), "lm_head": "tied" if tied else "untied"}


def random_model_like(source: str, seed: int = 0) -> tuple[Any, PaddleOCRVLProcessor]:
    """`(model, processor)`: the architecture of the folder's config (e.g. the real 0.9B v1) with random
    weights, and its processor. For full-size benchmarks, where the real weights cannot be had."""
    config = load_config(source)
    processor = load_processor(source)
    check_token_ids(source, config, processor)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = PaddleOCRVLForConditionalGeneration(config)
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    return model.eval(), processor
