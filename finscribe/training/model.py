"""Model loading for training, and the tiny PaddleOCR-VL for offline tests, demos and the quickstart.

`load_model` is the core loader (`finscribe.model`), available here under the seed's module path.
The tiny model is built from the same transformers classes as the 0.9B one, with a small config
and a byte-level BPE tokenizer trained on a corpus the caller gives, saved with `save_pretrained`
so every stage loads it by path exactly like the real checkpoint:

    finscribe init-tiny-model --output-dir models/tiny
    finscribe train --model models/tiny ...
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    PaddleOCRVLConfig,
    PaddleOCRVLForConditionalGeneration,
    PaddleOCRVLProcessor,
    PreTrainedTokenizerFast,
)
from transformers.models.paddleocr_vl.image_processing_pil_paddleocr_vl import (
    PaddleOCRVLImageProcessorPil,
)

from finscribe.checkpoint import load_config, load_processor, set_chat_template, with_assistant_separator
from finscribe.config import parse_config, save_config
from finscribe.data.formatters import OCR_PROMPT, REGION_PROMPTS, serialize_target
from finscribe.model import (  # noqa: F401  (load_model: the seed's public path finscribe.training.model)
    ASSISTANT_SEPARATORS,
    BOS,
    CLS,
    DEFAULT_MODEL_ID,
    EOS,
    IMAGE_END,
    IMAGE_START,
    IMAGE_TOKEN,
    SEP,
    SPECIAL_TOKENS,
    UNK,
    VIDEO_END,
    VIDEO_START,
    VIDEO_TOKEN,
    ModelNotAvailableError,
    chat_template,
    load_model,
    save_model_atomically,
)
from finscribe.synthetic.generator import generate_invoice, random_invoice_spec
from finscribe.training.tiny_model_config import TinyModelConfig  # noqa: F401  (the stage's config, torch-free)


def default_corpus(num_invoices: int = 200, seed: int = 0) -> list[str]:
    """A tokenizer corpus: canonical JSON region labels of generated invoices (all locales)
    + every prompt + digits and punctuation."""
    texts = list(REGION_PROMPTS.values()) + [OCR_PROMPT, "0123456789", ".,:;-+/%()[]{}\"'#@&$€£¥₹ "]
    for i in range(num_invoices):
        spec = random_invoice_spec(seed, i, layouts=("any",))
        invoice = generate_invoice(num_items=spec.num_items, currency=spec.currency, seed=spec.seed, locale=spec.locale)
        texts += [serialize_target(fields) for fields in invoice.to_label().values()]
    return texts


def _train_tokenizer(texts: list[str], vocab_size: int, split_digits: bool = False):
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
    texts: list[str],
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
    CLI: `finscribe init-tiny-model --output-dir models/tiny`.
    """
    output_dir = Path(output_dir)
    tokenizer = _train_tokenizer(texts, vocab_size, split_digits)
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


def _scaled_sections(sections: list[int], half_head_dim: int) -> list[int]:
    """M-RoPE (temporal, height, width) sections in the same ratio, summing to half the head dim."""
    scaled = [round(s * half_head_dim / sum(sections)) for s in sections[:-1]]
    return scaled + [half_head_dim - sum(scaled)]


def build_tiny_model_like(
    source: str | Path,
    output_dir: str | Path,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 1,
    vision_hidden_size: int = 64,
    vision_layers: int = 1,
    num_heads: int = 2,
    assistant_separator: str | None = None,
) -> Path:
    """A tiny random PaddleOCR-VL that sees exactly what the model at `source` sees.

    Kept from `source` (either layout, translated by `finscribe.checkpoint`): the tokenizer (the real
    one: vocab 103,424 with its ids), the chat template (images wrapped in <|IMAGE_START|>/<|IMAGE_END|>;
    `assistant_separator` " " or "\n" changes what follows "Assistant:", for a 1.5/1.6-style model),
    the image processor (min/max pixels, mean/std) and the config (token ids, tied or untied head,
    rope theta and M-RoPE ratio). Only the sizes shrink: `hidden_size` x `num_layers` text decoder,
    `vision_hidden_size` x `vision_layers` vision tower. Saved in the native layout.
    CLI: `finscribe init-tiny-model --like ../shared/paddleocr_vl/v1 --output-dir models/tiny-v1`.
    """
    source = str(source)
    processor = load_processor(source)
    if assistant_separator is not None:
        set_chat_template(processor, with_assistant_separator(processor.chat_template, assistant_separator))
    config = load_config(source)
    text, vision = config.text_config, config.vision_config
    head_dim = hidden_size // num_heads
    sections = (text.rope_parameters or {}).get("mrope_section", [16, 24, 24])
    text.hidden_size, text.intermediate_size, text.num_hidden_layers = hidden_size, hidden_size * 3, num_layers
    text.num_attention_heads, text.num_key_value_heads, text.head_dim = num_heads, max(1, num_heads // 2), head_dim
    text.rope_parameters = {**text.rope_parameters, "mrope_section": _scaled_sections(sections, head_dim // 2)}
    vision.hidden_size, vision.intermediate_size = vision_hidden_size, vision_hidden_size * 3
    vision.num_hidden_layers, vision.num_attention_heads = vision_layers, num_heads
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = PaddleOCRVLForConditionalGeneration(config)
    tokenizer = processor.tokenizer
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return save_model_atomically(model, processor, Path(output_dir))


def main(argv: list[str] | None = None, prog: str = "finscribe init-tiny-model") -> int:
    """`finscribe init-tiny-model --output-dir models/tiny`: write a tiny PaddleOCR-VL for offline use."""
    config = parse_config(TinyModelConfig, argv, prog, "Build a tiny randomly initialised PaddleOCR-VL "
                          "(same classes as the real one) with a locally trained tokenizer, or with the "
                          "tokenizer, template and processor of --like.")
    separator = ASSISTANT_SEPARATORS[config.assistant_separator] if config.assistant_separator else None
    if config.like:
        path = build_tiny_model_like(
            config.like, config.output_dir, seed=config.seed, hidden_size=config.hidden_size, num_layers=config.num_layers,
            vision_hidden_size=config.vision_hidden_size, vision_layers=config.vision_layers, num_heads=config.num_heads,
            assistant_separator=separator)
    else:
        path = build_tiny_model(
            config.output_dir, default_corpus(seed=config.seed), seed=config.seed, hidden_size=config.hidden_size,
            num_layers=config.num_layers, vision_hidden_size=config.vision_hidden_size, vision_layers=config.vision_layers,
            num_heads=config.num_heads, vocab_size=config.vocab_size, min_pixels=config.min_pixels,
            max_pixels=config.max_pixels, assistant_separator=separator or " ",
        )
    save_config(config, path, name="tiny_model_config.json")
    n = sum(p.numel() for p in load_model(path, device="cpu")[0].parameters())
    print(f"wrote tiny PaddleOCR-VL ({n / 1e6:.2f} M parameters) to {path}")
    return 0
