"""INT8 quantization of a (fine-tuned) PaddleOCR-VL for serving, and loading the result back.

    finscribe quantize --model runs/finetuned --output models/finscribe-int8 [--method auto]

Methods (`auto` picks by device):
- `int8_dynamic` (CPU): int8 weights per output channel, activations quantized per batch at run
  time, fbgemm kernels (`torch.ao.quantization.quantize_dynamic`). Measured on this 2-core CPU
  with torch 2.13 (benchmarks/RESULTS.md): ~3x faster than float32 on decoder-sized linears at
  1 and 64 rows, while torchao's `Int8DynamicActivationInt8WeightConfig` was *slower* than
  float32 at 1 row (the decoding case) without torch.compile. torch.ao.quantization is deprecated
  upstream; where it is gone, torchao's config is used instead (recorded in quantization.json).
- `int8_weight_only` (CUDA): torchao `Int8WeightOnlyConfig`; memory-bound decoding on a GPU
  gains from halving weight bytes, activations stay bf16. Not measured here (no GPU).

The artefact is a folder: `config.json` + `generation_config.json` + the processor files (chat
template included), `quantized_state.pt` (the quantized state_dict, int8 weights + scales) and
`quantization.json` (method, backend, which modules). `load_quantized_model` rebuilds the float
skeleton from the config, re-applies the same module swap, and loads the state_dict, so the
file size on disk is the honest weight size. The LM head stays float by default (it is tied to
the embeddings in these checkpoints; quantizing it would store a second, untied copy).
"""

from __future__ import annotations

import contextlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import (
    GenerationConfig,
    PaddleOCRVLConfig,
    PaddleOCRVLForConditionalGeneration,
)
from transformers.initialization import no_init_weights

from finscribe.checkpoint import load_processor
from finscribe.config import arg, parse_config, save_config
from finscribe.errors import FinScribeError
from finscribe.fileio import atomic_directory, write_json_atomic
from finscribe.model import load_model

METHODS = ("auto", "int8_dynamic", "int8_weight_only")
STATE_FILE = "quantized_state.pt"
META_FILE = "quantization.json"


class QuantizationError(FinScribeError, ValueError):
    """A model folder that cannot be quantized or a quantized folder that cannot be loaded."""


@contextlib.contextmanager
def _quiet_torch_ao():
    # torch.ao.quantization warns on every call that it is deprecated; we know (see module doc).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.ao.quantization.*")
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*deprecated.*")
        warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
        yield


def resolve_method(method: str, device: str) -> str:
    if method not in METHODS:
        raise QuantizationError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if method == "auto":
        return "int8_weight_only" if str(device).startswith("cuda") else "int8_dynamic"
    return method


def _dynamic_backend() -> str:
    return "torch.ao" if hasattr(torch, "ao") and hasattr(torch.ao.quantization, "quantize_dynamic") else "torchao"


def linear_module_names(model: torch.nn.Module, include_lm_head: bool = False) -> list[str]:
    """Names of the nn.Linear layers to quantize (vision tower, projector, decoder)."""
    return [name for name, module in model.named_modules()
            if type(module) is torch.nn.Linear and (include_lm_head or not name.endswith("lm_head"))]


def apply_quantization(model: torch.nn.Module, method: str, modules: list[str], backend: str) -> torch.nn.Module:
    """Quantize the named Linear layers in place (returns the model)."""
    wanted = set(modules)
    if method == "int8_dynamic" and backend == "torch.ao":
        with _quiet_torch_ao():
            # A qconfig per module name keeps lm_head (and anything not listed) in float.
            spec = {name: torch.ao.quantization.per_channel_dynamic_qconfig for name in modules}
            torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)
        return model
    # torchao is the optional [quant] extra: imported only when a torchao method is asked for.
    try:
        from torchao.quantization import (
            Int8DynamicActivationInt8WeightConfig,
            Int8WeightOnlyConfig,
            quantize_,
        )
    except ImportError:
        raise QuantizationError(f"method {method} needs torchao: pip install 'finscribe[quant]'") from None
    config = Int8WeightOnlyConfig() if method == "int8_weight_only" else Int8DynamicActivationInt8WeightConfig()
    quantize_(model, config, filter_fn=lambda module, name: name in wanted)
    return model


def weight_bytes(model: torch.nn.Module, modules: list[str] | None = None) -> dict[str, int]:
    """Bytes of the weights: `total` and `quantized_layers` (the listed layers only, int8 + scales)."""
    def tensor_bytes(t: torch.Tensor) -> int:
        if t.is_quantized:
            scales = t.q_per_channel_scales().numel() * 12 if t.qscheme() == torch.per_channel_affine else 12
            return t.numel() * t.element_size() + scales  # + fp64 scale / int64 zero point per channel
        inner = getattr(t, "__tensor_flatten__", None)
        if inner is not None:  # torchao tensor subclass: sum of its inner tensors
            names, _ = t.__tensor_flatten__()
            return sum(tensor_bytes(getattr(t, n)) for n in names)
        return t.numel() * t.element_size()

    def state_bytes(module: torch.nn.Module) -> int:
        # Tied weights (embeddings = lm_head) are the same object twice: count once, like on disk.
        total, seen = 0, set()
        for value in module.state_dict(keep_vars=True).values():
            for item in value if isinstance(value, tuple) else (value,):
                if isinstance(item, torch.Tensor) and id(item) not in seen:
                    seen.add(id(item))
                    total += tensor_bytes(item)
        return total

    named = dict(model.named_modules())
    return {"total": state_bytes(model),
            "quantized_layers": sum(state_bytes(named[name]) for name in (modules or []))}


def count_parameters(model: torch.nn.Module) -> int:
    """Parameter count, including int8 weights hidden inside quantized Linear modules."""
    count = sum(p.numel() for p in model.parameters())
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if callable(weight) and not isinstance(module, torch.nn.Parameter):  # torch.ao dynamic Linear
            w, b = module._packed_params._weight_bias()
            count += w.numel() + (b.numel() if b is not None else 0)
    return count


def load_float_model(model_path: str | Path, device: str = "cpu") -> tuple[Any, Any]:
    """Load a model folder (merging a LoRA adapter into its base first) in float32 on `device`."""

    model, processor = load_model(model_path, dtype=torch.float32, device=device)
    if hasattr(model, "merge_and_unload"):  # a PeftModel from an adapter folder
        model = model.merge_and_unload()
    return model.eval(), processor


def quantize_model(model_path: str | Path, output_path: str | Path, method: str = "auto", *,
                   include_lm_head: bool = False, device: str | None = None) -> Path:
    """Quantize the model at `model_path` into the folder `output_path`; returns `output_path`."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    method = resolve_method(method, device)
    model, processor = load_float_model(model_path, device=device)
    if method == "int8_weight_only" and device == "cuda":
        model = model.to(torch.bfloat16)
    modules = linear_module_names(model, include_lm_head)
    backend = _dynamic_backend() if method == "int8_dynamic" else "torchao"
    float_sizes = weight_bytes(model, modules)
    apply_quantization(model, method, modules, backend)
    sizes = weight_bytes(model, modules)
    output_path = Path(output_path)
    with atomic_directory(output_path) as tmp:
        model.config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        with _quiet_torch_ao():
            torch.save(model.state_dict(), tmp / STATE_FILE)
        write_json_atomic(tmp / META_FILE, {
            "version": 1, "method": method, "backend": backend, "modules": modules,
            "include_lm_head": include_lm_head, "source_model": str(model_path),
            "dtype": str(next(p.dtype for p in model.parameters())).removeprefix("torch."),
            "torch_version": torch.__version__,
            "weight_bytes_float": float_sizes, "weight_bytes_quantized": sizes,
            "state_file_bytes": (tmp / STATE_FILE).stat().st_size,
        })
    return output_path


def is_quantized_folder(path: str | Path) -> bool:
    return (Path(path) / META_FILE).is_file()


def load_quantized_model(path: str | Path, device: str | None = None) -> tuple[Any, Any]:
    """Load a folder written by `quantize_model` → (model, processor), ready for `inference.predict`."""

    path = Path(path)
    if not is_quantized_folder(path):
        raise QuantizationError(f"{path} holds no {META_FILE}: not a folder written by `finscribe quantize`")
    meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    method, backend, modules = meta["method"], meta["backend"], meta["modules"]
    device = device or ("cuda" if method == "int8_weight_only" and torch.cuda.is_available() else "cpu")
    if method == "int8_dynamic" and backend == "torch.ao" and _dynamic_backend() != "torch.ao":
        raise QuantizationError(f"{path} was quantized with torch.ao, which this torch {torch.__version__} lacks; "
                                "re-run `finscribe quantize` from the float model")
    config = PaddleOCRVLConfig.from_pretrained(path)
    with no_init_weights():  # every weight is overwritten by the state_dict below
        model = PaddleOCRVLForConditionalGeneration(config)
    model.generation_config = GenerationConfig.from_pretrained(path)
    model.eval()
    with _quiet_torch_ao():
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=(backend == "torch.ao"))
    if backend == "torch.ao":
        apply_quantization(model, method, modules, backend)
        model.load_state_dict(state, strict=True)
    else:  # torchao tensor subclasses replace the float parameters as they are
        model.load_state_dict(state, strict=True, assign=True)
    model.tie_weights()
    processor = load_processor(str(path))  # the PIL image backend pinned, as for the float model
    return model.to(device), processor


@dataclass
class QuantizeConfig:
    model: str = arg(help="float model folder (or LoRA adapter folder, merged first) to quantize")
    output: Path = arg(help="folder to write the quantized model into")
    method: Literal["auto", "int8_dynamic", "int8_weight_only"] = arg(
        "auto", "auto = int8_dynamic on CPU, int8_weight_only (torchao) on CUDA")
    include_lm_head: bool = arg(False, "also quantize the LM head (default keeps it float, tied to the embeddings)")
    device: str | None = arg(None, "cpu or cuda (default: cuda when available)")


def main(argv: list[str] | None = None, prog: str = "finscribe quantize") -> int:
    """`finscribe quantize --model M --output OUT [--method auto]`."""
    config = parse_config(QuantizeConfig, argv, prog, "INT8-quantize a PaddleOCR-VL model for serving.")
    out = quantize_model(config.model, config.output, config.method,
                         include_lm_head=config.include_lm_head, device=config.device)
    save_config(config, out, name="quantize_config.json")
    meta = json.loads((out / META_FILE).read_text(encoding="utf-8"))
    before, after = meta["weight_bytes_float"], meta["weight_bytes_quantized"]
    print(f"wrote {meta['method']} ({meta['backend']}) model to {out}: quantized layers "
          f"{before['quantized_layers'] / 1e6:.2f} MB -> {after['quantized_layers'] / 1e6:.2f} MB, "
          f"total {before['total'] / 1e6:.2f} MB -> {after['total'] / 1e6:.2f} MB "
          f"({meta['state_file_bytes'] / 1e6:.2f} MB on disk)")
    return 0
