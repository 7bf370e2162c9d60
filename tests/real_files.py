"""The real PaddleOCR-VL v1 files (no weights) in ../shared/paddleocr_vl/v1, for tests.

They are never copied into the repo. Without them (a plain clone) the tests that need them skip
with the one command that fetches the small files from the hub.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import save_file

from finscribe.checkpoint import REAL_FILES_HINT

V1 = Path(__file__).resolve().parents[1].parent / "shared" / "paddleocr_vl" / "v1"
HOW_TO_GET = f"real PaddleOCR-VL files not in ../shared/paddleocr_vl/v1; get the small files with: {REAL_FILES_HINT}"
needs_v1 = pytest.mark.skipif(not (V1 / "tokenizer.model").is_file(), reason=HOW_TO_GET)

# The small files of the pre-native layout, as PaddleOCR/PaddleX download them (weights aside).
PRE_NATIVE_FILES = ("added_tokens.json", "chat_template.jinja", "generation_config.json", "preprocessor_config.json",
                    "processor_config.json", "special_tokens_map.json", "tokenizer.model", "tokenizer_config.json")


def _pre_native_name(name: str) -> str:
    """Native parameter name -> the pre-native checkpoint's key (the reverse of transformers'
    conversion_mapping for paddleocr_vl: mlp_AR -> model.projector, visual -> model.visual,
    model -> model.language_model)."""
    for native, old in (("model.language_model.", "model."), ("model.visual.", "visual."), ("model.projector.", "mlp_AR.")):
        if name.startswith(native):
            return old + name[len(native):]
    return name


def save_pre_native(model, folder: Path) -> Path:
    """Write `model` (a native PaddleOCR-VL with the real vocabulary) as the pre-native layout: the real
    v1 small files, a flat config.json with the real keys (rope_scaling, auto_map, use_cache false...)
    holding this model's sizes, and the weights under their pre-native key names."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in PRE_NATIVE_FILES:
        shutil.copyfile(V1 / name, folder / name)
    config = json.loads((V1 / "config.json").read_text())
    text, vision = model.config.text_config, model.config.vision_config
    config.update(hidden_size=text.hidden_size, intermediate_size=text.intermediate_size, head_dim=text.head_dim,
                  num_hidden_layers=text.num_hidden_layers, num_attention_heads=text.num_attention_heads,
                  num_key_value_heads=text.num_key_value_heads, tie_word_embeddings=model.config.tie_word_embeddings,
                  torch_dtype="float32")
    config["rope_scaling"]["mrope_section"] = text.rope_parameters["mrope_section"]
    config["vision_config"].update(hidden_size=vision.hidden_size, intermediate_size=vision.intermediate_size,
                                   num_hidden_layers=vision.num_hidden_layers, num_attention_heads=vision.num_attention_heads,
                                   torch_dtype="float32")
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    state = {_pre_native_name(k): v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
