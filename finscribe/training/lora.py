"""LoRA presets on PaddleOCR-VL's native module names, and merging an adapter into its base.

The presets are regular expressions over full module paths because the vision tower also has
`q_proj`/`k_proj`/`v_proj` layers: a bare `["q_proj", ...]` list would put adapters on both towers.

    finscribe train --model models/tiny --use-lora --lora-preset decoder ...
    finscribe export --model finetuned_finscribe_vl --output-dir finetuned_merged --merge
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model

from finscribe.config import parse_config, save_config
from finscribe.errors import ConfigError
from finscribe.model import load_model, save_model_atomically
from finscribe.model_card import write_model_card
from finscribe.training.export_config import ExportConfig  # noqa: F401  (the stage's config, torch-free)

_DECODER = r"model\.language_model\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj))"
_PROJECTOR = r"model\.projector\.(linear_1|linear_2)"
_VISION = r"model\.visual\.vision_model\.encoder\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|out_proj)|mlp\.(fc1|fc2))"

# preset -> regex matched (re.fullmatch, by peft) against module names of PaddleOCRVLForConditionalGeneration
LORA_PRESETS: dict[str, str] = {
    "decoder": _DECODER,
    "decoder_projector": f"({_DECODER})|({_PROJECTOR})",
    "all": f"({_DECODER})|({_PROJECTOR})|({_VISION})",
}


def apply_lora(model: Any, preset: str = "decoder", r: int = 16, alpha: int | None = None, dropout: float = 0.05) -> Any:
    """Wrap `model` in a peft `PeftModel` with LoRA adapters on the preset's modules (base frozen).

    `alpha=None` uses 2·r.
    """
    if preset not in LORA_PRESETS:
        raise ValueError(f"unknown LoRA preset {preset!r}; expected one of {', '.join(LORA_PRESETS)}")
    config = LoraConfig(
        r=r, lora_alpha=alpha if alpha is not None else 2 * r, lora_dropout=dropout,
        target_modules=LORA_PRESETS[preset], bias="none", task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def merge_and_export(adapter_dir: str | Path, output_dir: str | Path, dtype: torch.dtype = torch.float32) -> Path:
    """Merge a LoRA adapter folder into its base model and save a plain checkpoint (model +
    processor + chat template) that loads with `from_pretrained` / `load_model`. Returns output_dir."""
    if not (Path(adapter_dir) / "adapter_config.json").is_file():
        raise ValueError(f"{adapter_dir} holds no adapter_config.json: not a LoRA adapter folder")
    # Merge in float32 so W + BA is exact before any downcast.
    model, processor = load_model(adapter_dir, dtype=torch.float32, device="cpu")
    merged = model.merge_and_unload()
    return save_model_atomically(merged.to(dtype), processor, Path(output_dir))


def main(argv: list[str] | None = None, prog: str = "finscribe export") -> int:
    """`finscribe export --model ADAPTER_DIR --output-dir OUT --merge`: a standalone merged checkpoint."""
    config = parse_config(ExportConfig, argv, prog, "Export a trained model: merge a LoRA adapter into its "
                          "base model and save model + processor + chat template.")
    dtype = getattr(torch, config.dtype)
    is_adapter = (Path(config.model) / "adapter_config.json").is_file()
    if is_adapter:
        if not config.merge:
            raise ConfigError(f"{config.model} is a LoRA adapter; exporting it needs --merge")
        path = merge_and_export(config.model, config.output_dir, dtype)
    else:
        model, processor = load_model(config.model, dtype=dtype, device="cpu")
        path = save_model_atomically(model, processor, config.output_dir)
    save_config(config, path, name="export_config.json")
    for name in ("train_config.json", "training_data.json", "metrics.jsonl"):  # provenance: base, data, recipe
        if (Path(config.model) / name).is_file():
            shutil.copy2(Path(config.model) / name, Path(path) / name)
    write_model_card(path)
    print(f"exported {'merged ' if is_adapter else ''}model to {path}")
    return 0
