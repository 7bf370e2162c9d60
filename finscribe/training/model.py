"""Load PaddleOCR-VL (hub id, local folder or LoRA adapter folder) and build the tiny test model.

Real use loads the native transformers class `PaddleOCRVLForConditionalGeneration` and its
processor; no `trust_remote_code`. Offline, tests and CPU demos use a *tiny* PaddleOCR-VL built
from the same classes with a small config and a byte-level BPE tokenizer trained here, saved with
`save_pretrained` so every stage loads it by path exactly like the real checkpoint:

    finscribe init-tiny-model --output models/tiny
    finscribe train --model models/tiny ...
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from finscribe.config import arg, parse_config, save_config
from finscribe.fileio import atomic_directory

logger = logging.getLogger(__name__)

DEFAULT_MODEL_ID = "PaddlePaddle/PaddleOCR-VL"

# The real checkpoint's special tokens (ERNIE-4.5 tokenizer as converted for transformers):
# <unk>=0 doubles as padding, <s>=1, </s>=2 ends every answer; the chat starts with
# <|begin_of_sentence|>; an image is <|IMAGE_START|><|IMAGE_PLACEHOLDER|>...<|IMAGE_END|>.
UNK, BOS, EOS = "<unk>", "<s>", "</s>"
CLS, SEP = "<|begin_of_sentence|>", "<|end_of_sentence|>"
IMAGE_TOKEN, IMAGE_START, IMAGE_END = "<|IMAGE_PLACEHOLDER|>", "<|IMAGE_START|>", "<|IMAGE_END|>"
VIDEO_TOKEN, VIDEO_START, VIDEO_END = "<|VIDEO_PLACEHOLDER|>", "<|VIDEO_START|>", "<|VIDEO_END|>"
SPECIAL_TOKENS = [UNK, BOS, EOS, CLS, SEP, IMAGE_TOKEN, VIDEO_TOKEN, IMAGE_START, IMAGE_END,
                  VIDEO_START, VIDEO_END]

# Released PaddleOCR-VL checkpoints differ in what follows "Assistant:" in the generation prompt.
ASSISTANT_SEPARATORS = {"space": " ", "newline": "\n"}


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


class ModelNotAvailableError(OSError):
    """The model id/path could not be loaded (no network, wrong path); the message says what to do."""


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
    return ModelNotAvailableError(
        f"could not load model {model_id_or_path!r}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}\n"
        "Weights can't be downloaded here (no network access to the Hugging Face Hub). Pass a local path "
        "instead: e.g. `--model models/tiny` after `finscribe init-tiny-model --output models/tiny`, or a "
        "folder where PaddleOCR-VL was downloaded (huggingface-cli download PaddlePaddle/PaddleOCR-VL "
        "--local-dir models/paddleocr-vl) or a training output folder."
    )


def load_model(
    model_id_or_path: str | Path = DEFAULT_MODEL_ID,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device | None = None,
    attn_implementation: str | None = None,
) -> tuple[Any, Any]:
    """Load `(model, processor)` from a hub id, a local checkpoint folder or a LoRA adapter folder.

    An adapter folder (one holding `adapter_config.json`, as `finscribe train --use-lora` writes)
    loads its base model from the adapter config and wraps it with `PeftModel.from_pretrained`.
    `device=None` puts the model on CUDA when available, else CPU.
    """
    from huggingface_hub.errors import HFValidationError
    from transformers import AutoProcessor, PaddleOCRVLForConditionalGeneration

    source = str(model_id_or_path)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = default_dtype(device) if dtype is None else dtype
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    attn_implementation = attn_implementation or default_attn_implementation(device)

    adapter_config = Path(source) / "adapter_config.json"
    if adapter_config.is_file():
        from peft import PeftModel

        base_id = json.loads(adapter_config.read_text(encoding="utf-8")).get("base_model_name_or_path")
        if not base_id:
            raise ModelNotAvailableError(f"{adapter_config} names no base_model_name_or_path; cannot load the adapter")
        model, processor = load_model(base_id, dtype=dtype, device=device, attn_implementation=attn_implementation)
        model = PeftModel.from_pretrained(model, source)
        if (Path(source) / "processor_config.json").is_file() or (Path(source) / "tokenizer_config.json").is_file():
            processor = AutoProcessor.from_pretrained(source)
        return model, processor

    if Path(source).exists() and not Path(source, "config.json").is_file():
        raise ModelNotAvailableError(
            f"{source} exists but holds no config.json (nor adapter_config.json): not a model folder. "
            "Pass a folder written by save_pretrained, `finscribe init-tiny-model`, or `finscribe train`."
        )
    try:
        model = PaddleOCRVLForConditionalGeneration.from_pretrained(
            source, dtype=dtype, attn_implementation=attn_implementation
        )
        processor = AutoProcessor.from_pretrained(source)
    except (OSError, HFValidationError) as err:
        raise _not_available(source, err) from None
    return model.to(device), processor


# ----------------------------------------------------------------------------- tiny model


def _default_texts(num_invoices: int = 200, seed: int = 0) -> list[str]:
    """The tokenizer's corpus: canonical JSON region labels of generated invoices (all locales)
    + every prompt + digits and punctuation."""
    from finscribe.data.formatters import OCR_PROMPT, REGION_PROMPTS, serialize_target
    from finscribe.synthetic.generator import generate_invoice, random_invoice_spec

    texts = list(REGION_PROMPTS.values()) + [OCR_PROMPT, "0123456789", ".,:;-+/%()[]{}\"'#@&$€£¥₹ "]
    for i in range(num_invoices):
        spec = random_invoice_spec(seed, i, layouts=("any",))
        invoice = generate_invoice(num_items=spec.num_items, currency=spec.currency, seed=spec.seed, locale=spec.locale)
        texts += [serialize_target(fields) for fields in invoice.to_label().values()]
    return texts


def _train_tokenizer(texts: list[str], vocab_size: int, split_digits: bool = False):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    # Byte-level: every string (any script) is representable, decoding is exact.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if split_digits:  # one token per digit: amounts are read glyph by glyph, not as learnt multi-digit merges
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), tok.pre_tokenizer])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, unk_token=UNK, pad_token=UNK, cls_token=CLS,
        sep_token=SEP, extra_special_tokens={
            "image_token": IMAGE_TOKEN, "image_start_token": IMAGE_START, "image_end_token": IMAGE_END,
            "video_token": VIDEO_TOKEN, "video_start_token": VIDEO_START, "video_end_token": VIDEO_END,
        },
        padding_side="right", clean_up_tokenization_spaces=False, model_max_length=8192,
    )


def tiny_config(vocab_size: int, token_ids: dict[str, int], hidden_size: int = 128, num_layers: int = 4,
                vision_hidden_size: int = 128, vision_layers: int = 4, num_heads: int = 4,
                vision_num_heads: int | None = None, rope_theta: float = 500000.0):
    """A small `PaddleOCRVLConfig` (same classes as the 0.9B model)."""
    from transformers import PaddleOCRVLConfig

    head_dim = hidden_size // num_heads
    # M-RoPE splits head_dim/2 frequencies into (temporal, height, width): about the 2:3:3 ratio
    # of the real [16, 24, 24]; the sections must sum to head_dim/2.
    half = head_dim // 2
    temporal = round(half / 4)
    height = (half - temporal) // 2
    mrope = [temporal, height, half - temporal - height]
    text = dict(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=hidden_size * 3, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, num_key_value_heads=max(1, num_heads // 2), head_dim=head_dim,
        max_position_embeddings=8192, pad_token_id=token_ids[UNK], bos_token_id=token_ids[BOS],
        eos_token_id=token_ids[EOS], tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta, "mrope_section": mrope},
    )
    vision = dict(hidden_size=vision_hidden_size, intermediate_size=vision_hidden_size * 3,
                  num_hidden_layers=vision_layers, num_attention_heads=vision_num_heads or num_heads, patch_size=14,
                  spatial_merge_size=2, image_size=224)
    return PaddleOCRVLConfig(
        text_config=text, vision_config=vision, image_token_id=token_ids[IMAGE_TOKEN],
        video_token_id=token_ids[VIDEO_TOKEN], vision_start_token_id=token_ids[IMAGE_START],
        vision_end_token_id=token_ids[IMAGE_END], tie_word_embeddings=True,
    )


def build_tiny_model(
    output_dir: str | Path,
    texts: list[str] | None = None,
    seed: int = 0,
    hidden_size: int = 128,
    num_layers: int = 4,
    vision_hidden_size: int = 128,
    vision_layers: int = 4,
    num_heads: int = 4,
    vocab_size: int = 512,
    min_pixels: int = 28 * 28 * 4,
    max_pixels: int = 28 * 28 * 256,
    assistant_separator: str = " ",
    split_digits: bool = False,
    vision_num_heads: int | None = None,
    rope_theta: float = 500000.0,
) -> Path:
    """Build and save a tiny, randomly initialised PaddleOCR-VL + processor into `output_dir`.

    `min_pixels`/`max_pixels` bound the resized image area (the real default 384*384 minimum would
    turn a 300x100 crop into ~190 image tokens; here it stays ~40). Returns `output_dir`.
    `split_digits=True` makes every digit its own token (the quickstart's from-scratch training uses it).
    CLI: `finscribe init-tiny-model --output models/tiny`.
    """
    from transformers import PaddleOCRVLForConditionalGeneration, PaddleOCRVLProcessor
    from transformers.models.paddleocr_vl.image_processing_pil_paddleocr_vl import PaddleOCRVLImageProcessorPil

    output_dir = Path(output_dir)
    tokenizer = _train_tokenizer(texts if texts is not None else _default_texts(seed=seed), vocab_size, split_digits)
    token_ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = tiny_config(len(tokenizer), token_ids, hidden_size, num_layers, vision_hidden_size, vision_layers, num_heads,
                         vision_num_heads, rope_theta)
    with torch.random.fork_rng(devices=[]):  # deterministic init without touching the caller's RNG
        torch.manual_seed(seed)
        model = PaddleOCRVLForConditionalGeneration(config)
    model.generation_config.eos_token_id = token_ids[EOS]
    model.generation_config.pad_token_id = token_ids[UNK]
    model.generation_config.bos_token_id = token_ids[BOS]
    # Normalisation as in the real checkpoint's preprocessor_config (mean = std = 0.5).
    image_processor = PaddleOCRVLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels,
                                                   image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    processor = PaddleOCRVLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                     chat_template=chat_template(assistant_separator))
    return save_model_atomically(model, processor, output_dir)


def save_model_atomically(model: Any, processor: Any, output_dir: Path) -> Path:
    """`save_pretrained` of model + processor (chat template included) into `output_dir`, all or nothing."""
    with atomic_directory(output_dir) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    return Path(output_dir)


@dataclass
class TinyModelConfig:
    output: Path = arg(Path("models/tiny"), "folder to write the tiny model + processor into")
    seed: int = arg(0, "seed for the weight init and the tokenizer corpus")
    hidden_size: int = arg(128, "text decoder hidden size")
    num_layers: int = arg(4, "text decoder layers")
    vision_hidden_size: int = arg(128, "vision encoder hidden size")
    vision_layers: int = arg(4, "vision encoder layers")
    num_heads: int = arg(4, "attention heads (text and vision)")
    vocab_size: int = arg(512, "byte-level BPE vocabulary size")
    min_pixels: int = arg(28 * 28 * 4, "image processor: smallest resized area in pixels")
    max_pixels: int = arg(28 * 28 * 256, "image processor: largest resized area in pixels")
    assistant_separator: Literal["space", "newline"] = arg("space", "what follows 'Assistant:' in the chat template")


def main(argv: list[str] | None = None, prog: str = "finscribe init-tiny-model") -> int:
    """`finscribe init-tiny-model --output models/tiny`: write a tiny PaddleOCR-VL for offline use."""
    config = parse_config(TinyModelConfig, argv, prog, "Build a tiny randomly initialised PaddleOCR-VL "
                          "(same classes as the real one) with a locally trained tokenizer.")
    path = build_tiny_model(
        config.output, seed=config.seed, hidden_size=config.hidden_size, num_layers=config.num_layers,
        vision_hidden_size=config.vision_hidden_size, vision_layers=config.vision_layers,
        num_heads=config.num_heads, vocab_size=config.vocab_size, min_pixels=config.min_pixels,
        max_pixels=config.max_pixels, assistant_separator=ASSISTANT_SEPARATORS[config.assistant_separator],
    )
    save_config(config, path, name="tiny_model_config.json")
    n = sum(p.numel() for p in load_model(path, device="cpu")[0].parameters())
    print(f"wrote tiny PaddleOCR-VL ({n / 1e6:.2f} M parameters) to {path}")
    return 0
