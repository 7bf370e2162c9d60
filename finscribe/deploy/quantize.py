"""INT8 quantization of a (fine-tuned) PaddleOCR-VL for serving, and loading the result back.

    finscribe quantize --model runs/finetuned --output-dir models/finscribe-int8 [--method auto]

    from finscribe.deploy.quantize import quantize_model, load_quantized_model
    quantize_model(model_path=Path("./finetuned_finscribe_vl"), output_path=Path("./finetuned_finscribe_vl_int8"))
    model, processor = load_quantized_model(Path("./finetuned_finscribe_vl_int8"))

The artefact is an ordinary transformers checkpoint, quantized through transformers' own torchao
integration (`TorchAoConfig`): `config.json` with its `quantization_config`, `model.safetensors`
(int8 weights + scales, no pickle), `generation_config.json`, the processor files (chat template
included), `quantization.json` (what FinScribe measured: method, modules, weight bytes) and a
README.md model card. It loads anywhere transformers + torchao are installed:

    PaddleOCRVLForConditionalGeneration.from_pretrained("./finetuned_finscribe_vl_int8")
    AutoModelForImageTextToText.from_pretrained("./finetuned_finscribe_vl_int8")
    AutoModelForCausalLM.from_pretrained("./finetuned_finscribe_vl_int8", trust_remote_code=True)  # the seed's line

transformers maps PaddleOCR-VL to `AutoModelForImageTextToText`, not `AutoModelForCausalLM`. The
folder's config.json therefore carries an `auto_map` entry for `AutoModelForCausalLM` pointing at
`finscribe_auto.py`, a file that only names the native class (an empty subclass): this is the hub's
documented way for a checkpoint to declare its class for an Auto class (it is what
`trust_remote_code=True` in the seed's line asks for), it ships no model code, and it needs
nothing from FinScribe at load time. (`AutoModelForCausalLM.register(...)` would also work, but
only inside a process that imported FinScribe first.)

Methods (`auto` picks by device):
- `int8_dynamic` (CPU): torchao `Int8DynamicActivationInt8WeightConfig`: int8 weights per output
  channel, activations quantized per row at run time.
- `int8_weight_only` (CUDA): torchao `Int8WeightOnlyConfig`; memory-bound decoding on a GPU gains
  from halving weight bytes, activations stay bf16. Not measured here (no GPU).
The LM head stays float (it is tied to the embeddings; quantizing it would store an untied copy).

CPU kernels: without torch.compile, torchao's int8 matmul was *slower* than float32 at 1 row (the
decoding case) on this 2-core CPU, while `torch.ao` dynamic quantization (fbgemm) was ~3x faster
(benchmarks/RESULTS.md). `load_quantized_model(..., cpu_kernels="fbgemm")` (the default on CPU)
therefore moves the very same int8 weights and scales, bit for bit, into fbgemm dynamic Linear
modules after loading; `cpu_kernels="torchao"` keeps the torchao tensors as `from_pretrained`
gives them. torch.ao.quantization is deprecated upstream; where it is gone, torchao kernels are used.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from transformers import PaddleOCRVLForConditionalGeneration, TorchAoConfig

from finscribe.checkpoint import load_processor
from finscribe.config import parse_config, save_config
from finscribe.deploy.quantize_config import QuantizeConfig  # noqa: F401  (the stage's config, torch-free)
from finscribe.errors import FinScribeError
from finscribe.fileio import atomic_directory, ensure_output_dir, write_json_atomic, write_text_atomic
from finscribe.model import check_model_folder, load_model, looks_like_local_path
from finscribe.model_card import write_model_card

METHODS = ("auto", "int8_dynamic", "int8_weight_only")
META_FILE = "quantization.json"
CPU_KERNELS = ("fbgemm", "torchao")
# The re-export that lets `AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)` load
# the native class (see the module docstring): config.json's auto_map names it.
AUTO_MODULE = "finscribe_auto"
AUTO_CLASS = "PaddleOCRVLForCausalLM"
AUTO_MODULE_SOURCE = (
    '"""Lets AutoModelForCausalLM load this PaddleOCR-VL checkpoint (written by `finscribe quantize`)."""\n\n'
    "from transformers import PaddleOCRVLForConditionalGeneration\n\n\n"
    f"class {AUTO_CLASS}(PaddleOCRVLForConditionalGeneration):\n"
    '    """transformers\' own class, unchanged. A subclass, not the class itself: loading through an auto_map\n'
    '    marks the loaded class as remote code for the rest of the process, which must not happen to the\n'
    '    library class (transformers would then skip its key mapping for every other PaddleOCR-VL checkpoint)."""\n'
)


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


def _torchao_config(method: str) -> TorchAoConfig:
    try:  # torchao is the optional [quant] extra
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig
    except ImportError:
        raise QuantizationError("INT8 quantization needs torchao: pip install 'finscribe[quant]'") from None
    quant_type = Int8WeightOnlyConfig() if method == "int8_weight_only" else Int8DynamicActivationInt8WeightConfig()
    # lm_head is tied to the embeddings: keep it float (and tied) rather than store an int8 copy.
    return TorchAoConfig(quant_type, modules_to_not_convert=["lm_head"])


def quantize_model(model_path: str | Path, output_path: str | Path, method: str = "auto", *,
                   device: str | None = None) -> Path:
    """Quantize the model at `model_path` (a full fine-tune, a LoRA adapter folder, a merged model or
    a hub id) into the transformers checkpoint folder `output_path`; returns `output_path`.

    An adapter is merged into its base first. The float model is written once to a temporary
    folder and re-loaded with `from_pretrained(..., quantization_config=TorchAoConfig(...))`, so
    the artefact is exactly what transformers' own torchao integration produces."""
    ensure_output_dir(Path(output_path).parent)  # before loading and quantizing the model
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    method = resolve_method(method, device)
    quantization_config = _torchao_config(method)
    dtype = torch.bfloat16 if method == "int8_weight_only" and str(device).startswith("cuda") else torch.float32
    model, processor = load_float_model(model_path, device="cpu")
    modules = linear_module_names(model)
    float_sizes = weight_bytes(model, modules)
    output_path = Path(output_path)
    with tempfile.TemporaryDirectory(prefix="finscribe-quantize-") as float_dir:
        model.save_pretrained(float_dir)
        del model
        quantized = PaddleOCRVLForConditionalGeneration.from_pretrained(
            float_dir, quantization_config=quantization_config, dtype=dtype, device_map=str(device))
    sizes = weight_bytes(quantized, modules)
    with atomic_directory(output_path) as tmp:
        # save_original_format=False: the checkpoint keeps transformers' in-memory key names. The
        # default reverts PaddleOCR-VL's keys to the original layout, which transformers 5.24 then
        # fails to map back for torchao tensors (the decoder would load as missing).
        quantized.save_pretrained(tmp, save_original_format=False)
        processor.save_pretrained(tmp)
        config = json.loads((tmp / "config.json").read_text(encoding="utf-8"))
        config["auto_map"] = {"AutoModelForCausalLM": f"{AUTO_MODULE}.{AUTO_CLASS}"}
        write_json_atomic(tmp / "config.json", config)
        write_text_atomic(tmp / f"{AUTO_MODULE}.py", AUTO_MODULE_SOURCE)
        weights = sum(p.stat().st_size for p in tmp.glob("*.safetensors"))
        write_json_atomic(tmp / META_FILE, {
            "version": 2, "method": method, "backend": "torchao", "format": "transformers TorchAoConfig + safetensors",
            "modules": modules, "source_model": str(model_path), "dtype": str(dtype).removeprefix("torch."),
            "torch_version": torch.__version__,
            "weight_bytes_float": float_sizes, "weight_bytes_quantized": sizes, "safetensors_bytes": weights,
        })
        for name in ("train_config.json", "training_data.json", "metrics.jsonl"):  # provenance for the card
            if (Path(model_path) / name).is_file():
                shutil.copy2(Path(model_path) / name, tmp / name)
        write_model_card(tmp)
    return output_path


def is_quantized_folder(path: str | Path) -> bool:
    """True for a folder holding a quantized transformers checkpoint (config.json with quantization_config)."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        return "quantization_config" in json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def _to_fbgemm(model: torch.nn.Module) -> int:
    """Move every torchao `Int8Tensor` Linear of `model` into a torch.ao dynamic quantized Linear
    (fbgemm) with the same int8 weights and per-channel scales; returns how many were moved."""
    from torchao.quantization import Int8Tensor

    moved = 0
    for name, module in list(model.named_modules()):
        if type(module) is not torch.nn.Linear or not isinstance(module.weight, Int8Tensor):
            continue
        w = module.weight
        scale, zero = w.scale.reshape(-1), w.zero_point.reshape(-1)
        if scale.numel() != w.qdata.shape[0]:  # not per output channel: keep torchao's kernel
            continue
        with _quiet_torch_ao():
            qweight = torch._make_per_channel_quantized_tensor(
                w.qdata.contiguous(), scale.to(torch.double), zero.to(torch.long), 0)
            fast = torch.ao.nn.quantized.dynamic.Linear(module.in_features, module.out_features,
                                                        bias_=module.bias is not None, dtype=torch.qint8)
            fast.set_weight_bias(qweight, None if module.bias is None else module.bias.detach().float())
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, fast)
        moved += 1
    return moved


def load_quantized_model(path: str | Path, device: str | None = None, *, cpu_kernels: str = "fbgemm") -> tuple[Any, Any]:
    """Load a folder written by `quantize_model` → (model, processor), ready for `inference.predict`.

    It is loaded with plain `PaddleOCRVLForConditionalGeneration.from_pretrained`; on CPU with
    `cpu_kernels="fbgemm"` (default) the int8 Linears then run on fbgemm (see the module docstring)."""
    path = Path(path)
    if cpu_kernels not in CPU_KERNELS:
        raise QuantizationError(f"unknown cpu_kernels {cpu_kernels!r}; expected one of {', '.join(CPU_KERNELS)}")
    if looks_like_local_path(str(path)):
        check_model_folder(path.expanduser())
    if not is_quantized_folder(path):
        raise QuantizationError(f"{path}/config.json has no quantization_config: not a folder written by "
                                "`finscribe quantize` (load a float model with finscribe.model.load_model)")
    try:
        _torchao_config("int8_dynamic")  # the same clear message when torchao is missing
        model = PaddleOCRVLForConditionalGeneration.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise QuantizationError(f"{path}: could not load the quantized checkpoint ({type(err).__name__}: "
                                f"{str(err).splitlines()[0] if str(err) else ''})") from None
    device = device or ("cuda" if torch.cuda.is_available() and next(model.parameters()).dtype == torch.bfloat16 else "cpu")
    model = model.to(device).eval()
    if str(device) == "cpu" and cpu_kernels == "fbgemm" and _dynamic_backend() == "torch.ao":
        _to_fbgemm(model)
    processor = load_processor(str(path))  # the PIL image backend pinned, as for the float model
    return model, processor


def main(argv: list[str] | None = None, prog: str = "finscribe quantize") -> int:
    """`finscribe quantize --model M --output-dir OUT [--method auto]`."""
    config = parse_config(QuantizeConfig, argv, prog, "INT8-quantize a PaddleOCR-VL model for serving.")
    out = quantize_model(config.model, config.output_dir, config.method, device=config.device)
    save_config(config, out, name="quantize_config.json")
    meta = json.loads((out / META_FILE).read_text(encoding="utf-8"))
    before, after = meta["weight_bytes_float"], meta["weight_bytes_quantized"]
    print(f"wrote {meta['method']} (torchao, transformers checkpoint) model to {out}: quantized layers "
          f"{before['quantized_layers'] / 1e6:.2f} MB -> {after['quantized_layers'] / 1e6:.2f} MB, "
          f"total {before['total'] / 1e6:.2f} MB -> {after['total'] / 1e6:.2f} MB "
          f"({meta['safetensors_bytes'] / 1e6:.2f} MB of safetensors)")
    return 0
