"""PNG charts of the evaluation and comparison reports (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from finscribe.fileio import atomic_file


def save_figure(fig: Any, path: Path) -> Path:
    """Save via a temp file + rename so a crash never leaves a half-written PNG."""
    path = Path(path)
    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def field_accuracy_chart(per_field: dict[str, dict[str, Any]], path: Path, title: str = "Per-field accuracy") -> Path:
    """Horizontal bars: accuracy of every field path (row numbers merged), with its count."""
    names = list(per_field)
    values = [per_field[n]["accuracy"] for n in names]
    fig, ax = plt.subplots(figsize=(8, 0.32 * max(len(names), 3) + 1.2))
    bars = ax.barh(range(len(names)), values, color="#3b78b0")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.08)
    ax.set_xlabel("accuracy")
    ax.set_title(title)
    for bar, name in zip(bars, names):
        ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2,
                f"{per_field[name]['correct']}/{per_field[name]['total']}", va="center", fontsize=7)
    return save_figure(fig, path)


def error_breakdown_chart(breakdown: dict[str, int], violations: dict[str, int], path: Path) -> Path:
    """Two panels: what happened to each output, and which validation rules failed how often."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    colours = {"all fields correct": "#4c9a52", "some fields wrong": "#e0a030", "invalid JSON": "#c8553d",
               "repetition loop": "#7d3c98"}
    kinds = list(breakdown)
    left.bar(kinds, [breakdown[k] for k in kinds], color=[colours.get(k, "#888888") for k in kinds])
    left.set_title("outputs by outcome")
    left.set_ylabel("records")
    left.tick_params(axis="x", labelrotation=20, labelsize=8)
    if violations:
        right.bar(list(violations), list(violations.values()), color="#c8553d")
    else:  # nothing was validated as failing (or nothing parsed): say so rather than draw an empty axis
        right.text(0.5, 0.5, "no violations\n(invalid JSON is not validated)", ha="center", va="center",
                   transform=right.transAxes)
        right.set_xticks([])
    right.set_ylim(bottom=0)
    right.set_title("validation violations by rule")
    right.tick_params(axis="x", labelrotation=30, labelsize=8)
    return save_figure(fig, path)


def comparison_chart(deltas: dict[str, dict[str, Any]], labels: dict[str, str], path: Path,
                     base_name: str = "base", model_name: str = "model", control: dict[str, Any] | None = None) -> Path:
    """Side-by-side bars of every metric for the two models; the model's bar carries the 95 %
    interval of the paired difference, drawn around the model's value. `control` (the model's
    metrics on blank images) adds a third bar: what the model scores without seeing the document."""
    keys = [k for k in deltas if deltas[k]["base"] is not None and deltas[k]["model"] is not None]
    x = range(len(keys))
    base = [deltas[k]["base"] for k in keys]
    model = [deltas[k]["model"] for k in keys]
    err_low = [max(0.0, -(deltas[k]["ci_low"] or 0.0) + deltas[k]["delta"]) if deltas[k]["ci_low"] is not None else 0.0
               for k in keys]
    err_high = [max(0.0, (deltas[k]["ci_high"] or 0.0) - deltas[k]["delta"]) if deltas[k]["ci_high"] is not None else 0.0
                for k in keys]
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(keys) + 2), 4.2))
    width = 0.27 if control else 0.4
    ax.bar([i - width / (1 if control else 2) for i in x], base, width=width, label=base_name, color="#9aa5b1")
    ax.bar([i + (0 if control else width / 2) for i in x], model, width=width, label=model_name, color="#3b78b0",
           yerr=[err_low, err_high], capsize=3, ecolor="#222222")
    if control:
        ax.bar([i + width for i in x], [control.get(k) or 0.0 for k in keys], width=width,
               label=f"{model_name} on blank images (prior only)", color="#e0a040", hatch="//")
    ax.set_xticks(list(x), [labels.get(k, k) for k in keys], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("value (error bar: 95 % CI of the paired delta)")
    ax.legend()
    ax.set_title("base vs fine-tuned on the same documents")
    return save_figure(fig, path)
