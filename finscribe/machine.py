"""The machine a timing was taken on: CPU model, cores, vector extensions, torch threads, GPU.

Hosts sold as "2 cores" are not one machine: the same training step ran ~3x faster on an AVX-512
EPYC (family 26) than on the AVX2 ones of earlier sessions (benchmarks/RESULTS.md, "Two hosts").
A wall-clock figure without its host cannot be compared with another, so every timed output
(the quickstart's summary, the timing benchmarks) carries `describe_machine()`.
"""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

# The extensions that decide CPU matmul speed (fp32 width, bf16 and int8 dot products, AMX tiles).
VECTOR_EXTENSIONS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")


def _cpuinfo(path: Path) -> dict[str, str]:
    """The first processor's `key: value` lines (Linux); empty where there is no such file."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def describe_machine(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """CPU model (with family/model numbers: two hosts may both say "AMD EPYC"), cores this process
    may use, the vector extensions among VECTOR_EXTENSIONS, the 1-minute load average at the time of
    the call, transformers' version, and torch's version, threads and GPU (if torch is importable)."""
    info = _cpuinfo(cpuinfo)
    flags = set(info.get("flags", "").split())
    family, model = info.get("cpu family"), info.get("model")
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:  # the kernels' library moves timings and last digits as much as the host does
        transformers_version = version("transformers")
    except PackageNotFoundError:
        transformers_version = None
    machine: dict[str, Any] = {
        "cpu": info.get("model name") or platform.processor() or platform.machine(),
        "cpu_family_model": f"{family}/{model}" if family and model else None,
        "cores": cores,
        "vector_extensions": [name for name in VECTOR_EXTENSIONS if name in flags],
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "transformers": transformers_version,
    }
    try:
        import torch
    except ImportError:
        return machine
    machine.update({"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None})
    return machine


def machine_line(machine: dict[str, Any]) -> str:
    """One line for a summary: 'AMD EPYC (family/model 26/2), 2 cores, avx2 avx512f ..., torch 2.13 x 2 threads'."""
    cpu = machine["cpu"] + (f" (family/model {machine['cpu_family_model']})" if machine.get("cpu_family_model") else "")
    parts = [cpu, f"{machine['cores']} cores", " ".join(machine["vector_extensions"]) or "no AVX2"]
    if machine.get("torch"):
        parts.append(f"torch {machine['torch']} x {machine['torch_threads']} threads")
    if machine.get("transformers"):
        parts.append(f"transformers {machine['transformers']}")
    if machine.get("gpu"):
        parts.append(machine["gpu"])
    return ", ".join(parts)
