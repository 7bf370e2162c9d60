"""The shared core of every stage: load and save PaddleOCR-VL, its special tokens and chat template.

Real use loads the native transformers class `PaddleOCRVLForConditionalGeneration` and its
processor (no `trust_remote_code`) from a hub id, a local folder, or a LoRA adapter folder:

    from finscribe.model import load_model
    model, processor = load_model("models/tiny", device="cpu")

Both file layouts load: the native one and the pre-native one of PaddleOCR/PaddleX downloads
(translated by `finscribe/checkpoint.py`: tokenizer, image token, processor settings, template,
untied head). Offline, tests and CPU demos use a tiny PaddleOCR-VL (`finscribe init-tiny-model`, built in
`finscribe/training/model.py`) saved with `save_pretrained`, so it loads here exactly like the
real checkpoint. A missing local folder fails at once, never as a hub id.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.errors import HFValidationError
from peft import PeftModel
from safetensors import SafetensorError
from transformers import PaddleOCRVLForConditionalGeneration

from finscribe.checkpoint import (  # noqa: F401  (ASSISTANT_SEPARATORS, IMAGE_*: re-exported)
    ASSISTANT_SEPARATORS,
    IMAGE_END,
    IMAGE_START,
    IMAGE_TOKEN,
    CheckpointLayoutError,
    ModelNotAvailableError,
    check_token_ids,
    load_config,
    load_processor,
)
from finscribe.errors import ConfigError
from finscribe.fileio import atomic_directory

DEFAULT_MODEL_ID = "PaddlePaddle/PaddleOCR-VL"

# The real checkpoint's special tokens (ERNIE-4.5 tokenizer as converted for transformers):
# <unk>=0 doubles as padding, <s>=1, </s>=2 ends every answer; the chat starts with
# <|begin_of_sentence|>; an image is <|IMAGE_START|><|IMAGE_PLACEHOLDER|>...<|IMAGE_END|>.
UNK, BOS, EOS = "<unk>", "<s>", "</s>"
CLS, SEP = "<|begin_of_sentence|>", "<|end_of_sentence|>"
VIDEO_TOKEN, VIDEO_START, VIDEO_END = "<|VIDEO_PLACEHOLDER|>", "<|VIDEO_START|>", "<|VIDEO_END|>"
SPECIAL_TOKENS = [UNK, BOS, EOS, CLS, SEP, IMAGE_TOKEN, VIDEO_TOKEN, IMAGE_START, IMAGE_END,
                  VIDEO_START, VIDEO_END]


def chat_template(assistant_separator: str = " ") -> str:
    """A Jinja chat template producing the real checkpoint's prompt format.

    `<|begin_of_sentence|>User: <|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>{text}\\n
    Assistant:{sep}{answer}</s>`: images first, then the text, whatever their order in the message.
    """
    sep = json.dumps("Assistant:" + assistant_separator)
    return (
        "{{- '" + CLS + "' -}}"
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'user' -%}"
        "{{- 'User: ' -}}"
        "{%- for item in message['content'] if item['type'] == 'image' -%}"
        "{{- '" + IMAGE_START + IMAGE_TOKEN + IMAGE_END + "' -}}"
        "{%- endfor -%}"
        "{%- for item in message['content'] if item['type'] == 'text' -%}{{- item['text'] -}}{%- endfor -%}"
        "{{- '\\n' -}}"
        "{%- elif message['role'] == 'assistant' -%}"
        "{{- " + sep + " -}}"
        "{%- for item in message['content'] if item['type'] == 'text' -%}{{- item['text'] -}}{%- endfor -%}"
        "{{- '" + EOS + "' -}}"
        "{%- elif message['role'] == 'system' -%}"
        "{%- for item in message['content'] if item['type'] == 'text' -%}{{- item['text'] + '\\n' -}}{%- endfor -%}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- " + sep + " -}}{%- endif -%}"
    )


def default_dtype(device: str | torch.device | None = None) -> torch.dtype:
    """bf16 on a CUDA device that supports it, float32 elsewhere (CPU bf16 matmuls are slow)."""
    on_cuda = torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))
    if on_cuda and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def default_attn_implementation(device: str | torch.device | None = None) -> str:
    """flash_attention_2 when installed and on CUDA, else PyTorch SDPA."""
    on_cuda = torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))
    if on_cuda and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def _not_available(model_id_or_path: str, err: Exception) -> ModelNotAvailableError:
    first_line = str(err).splitlines()[0] if str(err) else ""
    if Path(model_id_or_path).expanduser().is_dir():  # a local folder: its files are the problem, not the hub
        hint = ("its files are incomplete or corrupt (e.g. a truncated model.safetensors): copy, download or "
                "re-save the model again")
    else:
        hint = ("if it is a hub id, this machine may have no access to the Hugging Face Hub: pass a local folder "
                "instead (a download of PaddleOCR-VL, a `finscribe train` output, or `finscribe init-tiny-model "
                "--output-dir models/tiny`)")
    return ModelNotAvailableError(f"could not load model {model_id_or_path!r}: {type(err).__name__}: {first_line}; {hint}")


def looks_like_local_path(source: str) -> bool:
    """True for what can only be a folder ("./m", "/abs/m", "~/m", "runs/a/b", "models\\m"); hub ids are
    "name" or "org/name". A folder that does not exist must fail at once, not after minutes of hub retries."""
    return (source.startswith((".", "/", "~")) or source.count("/") > 1 or "\\" in source
            or Path(source).exists() or (source.count("/") == 1 and Path(source.split("/")[0]).is_dir()))


def check_model_folder(folder: Path) -> None:
    """Fail with one clear line when a local model folder is missing or incomplete."""
    if not folder.exists():
        raise ModelNotAvailableError(f"model folder {folder} not found; check the path (a model folder holds "
                                     "config.json and model.safetensors, an adapter folder adapter_config.json)")
    if not folder.is_dir():
        raise ModelNotAvailableError(f"{folder} is a file, not a model folder; pass the folder that holds config.json")
    if not (folder / "config.json").is_file():
        raise ModelNotAvailableError(
            f"{folder} holds no config.json (nor adapter_config.json): not a model folder. "
            "Pass a folder written by save_pretrained, `finscribe init-tiny-model`, or `finscribe train`.")
    tokenizer_files = ("tokenizer.json", "tokenizer.model")  # the vocabulary itself; tokenizer_config.json is not enough
    if not any((folder / name).is_file() for name in tokenizer_files):
        raise ModelNotAvailableError(f"{folder} has no tokenizer (neither {' nor '.join(tokenizer_files)}); copy the "
                                     "tokenizer files of its base model into it or re-save it with its processor")


def load_model(
    model_id_or_path: str | Path = DEFAULT_MODEL_ID,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device | None = None,
    attn_implementation: str | None = None,
) -> tuple[Any, Any]:
    """Load `(model, processor)` from a hub id, a local checkpoint folder or a LoRA adapter folder.

    An adapter folder (one holding `adapter_config.json`, as `finscribe train --use-lora` writes)
    loads its base model from the adapter config and wraps it with `PeftModel.from_pretrained`.
    `device=None` puts the model on CUDA when available, else CPU. Every failure (missing folder,
    truncated weights, missing tokenizer, unreachable hub) is a `ModelNotAvailableError`.
    """
    source = str(model_id_or_path)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = default_dtype(device) if dtype is None else dtype
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    attn_implementation = attn_implementation or default_attn_implementation(device)

    adapter_config = Path(source) / "adapter_config.json"
    if adapter_config.is_file():
        try:
            base_id = json.loads(adapter_config.read_text(encoding="utf-8")).get("base_model_name_or_path")
        except (json.JSONDecodeError, AttributeError) as err:
            raise ModelNotAvailableError(f"{adapter_config} is not a valid adapter config ({err}); re-save the adapter") from None
        if not base_id:
            raise ModelNotAvailableError(f"{adapter_config} names no base_model_name_or_path; cannot load the adapter")
        model, processor = load_model(base_id, dtype=dtype, device=device, attn_implementation=attn_implementation)
        try:
            model = PeftModel.from_pretrained(model, source)
        except (OSError, ValueError, SafetensorError) as err:
            raise _not_available(source, err) from None
        if (Path(source) / "processor_config.json").is_file() or (Path(source) / "tokenizer_config.json").is_file():
            processor = load_processor(source)
        return model, processor

    if looks_like_local_path(source):
        check_model_folder(Path(source).expanduser())
        source = str(Path(source).expanduser())
    try:
        # Both layouts (native and pre-native, see finscribe/checkpoint.py): the config as the file
        # means it (an untied head stays untied), pre-native weight names are renamed by transformers.
        processor = load_processor(source)
        config = load_config(source)
        model = PaddleOCRVLForConditionalGeneration.from_pretrained(
            source, config=config, dtype=dtype, attn_implementation=attn_implementation
        )
    except CheckpointLayoutError:
        raise
    except (OSError, ValueError, HFValidationError, SafetensorError) as err:
        # SafetensorError: a truncated or corrupt model.safetensors; ValueError: unreadable config.
        raise _not_available(source, err) from None
    check_token_ids(source, model.config, processor)
    # The pre-native generation_config.json says use_cache=false (a training setting): decoding
    # without the KV cache recomputes the whole prefix at every token.
    model.generation_config.use_cache = True
    return model.to(device), processor


def set_max_pixels(processor: Any, max_pixels: int) -> None:
    """Make `processor` downscale only images above `max_pixels` (in place; saved with it, so
    evaluation and serving then see images as training did). A larger cap keeps large crops, such
    as tall line-item tables, at their printed size, for more image tokens per crop."""
    image_processor = processor.image_processor
    size = dict(image_processor.size)
    smallest = size.get("shortest_edge") or 0
    if max_pixels < smallest:
        raise ConfigError(f"--max-pixels {max_pixels:,} is below the processor's smallest image area ({smallest:,} "
                         f"pixels); pass at least that")
    image_processor.size = {**size, "longest_edge": max_pixels}
    if hasattr(image_processor, "max_pixels"):
        image_processor.max_pixels = max_pixels


def save_model_atomically(model: Any, processor: Any, output_dir: Path) -> Path:
    """`save_pretrained` of model + processor (chat template included) into `output_dir`, all or nothing."""
    with atomic_directory(output_dir) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    return Path(output_dir)


