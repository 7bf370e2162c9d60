"""benchmarks/gpu_suite.py --smoke: every section of the GPU suite runs on CPU and writes real figures
(issue 26), so the script is known to work before any GPU time is spent on it."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from real_files import V1

REPO = Path(__file__).resolve().parents[1]


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_smoke_runs_every_section_and_reports_measured_figures(tmp_path):
    out = tmp_path / "suite"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_suite.py"), "--smoke", "--output-dir", str(out)],
                          env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads((out / "gpu_suite.json").read_text())
    table = (out / "gpu_suite.md").read_text()

    assert result["smoke"] is True and result["cuda"] is False
    assert set(result["section_seconds"]) == {"data_and_model", "lora", "full_sft", "inference", "tiny_quickstart"}
    if (V1 / "config.json").is_file():  # the full-size architecture the GPU run builds, counted without allocating it
        assert result["model"]["full_size"] == {"folder": str(V1), "parameters": 905_601_648, "lm_head": "untied"}
    assert result["model"]["attn_implementation"] == "sdpa"

    lora = result["lora"]
    assert [(r["vision_tower"], r["lora_preset"]) for r in lora] == [("frozen", "decoder"), ("trained", "all")]
    assert lora[1]["trainable_parameters"] > lora[0]["trainable_parameters"] > 0  # adapters on the vision tower too
    for row in lora:
        assert _positive(row["samples_per_s"]) and _positive(row["peak_rss_gb"]) and row["steps_timed"] >= 1
        assert math.isclose(row["samples_per_s"], row["batch_size"] / row["seconds_per_step_p50"], rel_tol=0.02)

    sft = result["full_sft"]
    assert [r["activation_checkpointing"] for r in sft] == [False, True]
    tokens = result["data"]["tokens_per_batch_mean"]
    for row in sft:
        assert _positive(row["tokens_per_s"]) and _positive(row["mfu"]) and math.isfinite(row["last_loss"])
        # FLOPs counted on one forward + backward: more than a forward alone (2 per parameter per token) could be.
        assert row["model_tflops_per_step_mean"] * 1e12 > 2 * result["model"]["parameters"] * tokens
        assert math.isclose(row["mfu"], row["achieved_tflops"] / result["peak_tflops"], rel_tol=0.05, abs_tol=1e-3)
    assert "measured" in result["peak_source"]  # on CPU the matmul rate stands in for a data-sheet peak

    inference = {(r["precision"], r["batch_size"]): r for r in result["inference"]}
    assert set(inference) == {("float32", 1), ("float32", 8), ("int8_weight_only", 1), ("int8_weight_only", 8)}
    for row in inference.values():
        assert _positive(row["latency_p50_ms"]) and row["new_tokens"] == 3
    assert inference[("int8_weight_only", 1)]["weights_gb"] < inference[("float32", 1)]["weights_gb"]

    tiny = result["tiny_quickstart"]
    assert tiny["steps"] == 3 and _positive(tiny["seconds_per_step"]) and tiny["cpu_seconds_per_step"] == 0.454
    assert math.isclose(tiny["speedup_vs_cpu"], 0.454 / tiny["seconds_per_step"], rel_tol=0.02)

    # The Markdown shows the same figures, and each goal with its figure (n/a: a CPU run judges no GPU goal).
    assert [g["met"] for g in result["goals"]] == [None] * 5
    for figure in (lora[0]["samples_per_s"], sft[0]["tokens_per_s"], inference[("float32", 1)]["latency_p50_ms"],
                   tiny["seconds_per_step"]):
        assert f"| {figure} |" in table
    for goal in result["goals"]:
        assert f"| {goal['goal']} | {goal['figure']} | n/a (CPU smoke) |" in table
