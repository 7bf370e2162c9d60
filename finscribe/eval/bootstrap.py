"""Bootstrap confidence intervals over documents for ratio metrics.

Every metric of the evaluation report is a ratio of sums over records, `Σ num / Σ den`: field
accuracy is Σ correct fields / Σ fields (micro average), a rate such as JSON validity is
Σ valid / Σ records, TEDS is Σ score / Σ records that have a table. Records of the same
document (its region crops) are not independent, so resampling is over *documents*: draw
documents with replacement, sum their records' num and den, take the ratio. For a comparison
the same draws are applied to both models (paired bootstrap), so the interval is the one of
the *difference* on the same documents. Seeded (`numpy.random.default_rng(seed)`), percentile
intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

_CHUNK = 200  # resamples per block: bounds memory at CHUNK × documents


def _document_sums(num: Sequence[float], den: Sequence[float], groups: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    if not (len(num) == len(den) == len(groups)):
        raise ValueError(f"num, den and groups differ in length ({len(num)}, {len(den)}, {len(groups)})")
    _, index = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    size = int(index.max()) + 1 if len(index) else 0
    return (np.bincount(index, weights=np.asarray(num, dtype=float), minlength=size),
            np.bincount(index, weights=np.asarray(den, dtype=float), minlength=size))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _resampled_ratios(sums: list[tuple[np.ndarray, np.ndarray]], resamples: int, seed: int) -> list[np.ndarray]:
    """For each (doc_num, doc_den): the ratio under the same `resamples` document draws."""
    documents = len(sums[0][0])
    rng = np.random.default_rng(seed)
    out: list[list[np.ndarray]] = [[] for _ in sums]
    for start in range(0, resamples, _CHUNK):
        draws = rng.integers(0, documents, size=(min(_CHUNK, resamples - start), documents))
        for k, (num, den) in enumerate(sums):
            out[k].append(_ratio(num[draws].sum(axis=1), den[draws].sum(axis=1)))
    return [np.concatenate(parts) for parts in out]


def _interval(samples: np.ndarray, level: float) -> tuple[float | None, float | None]:
    finite = samples[np.isfinite(samples)]
    if not len(finite):
        return None, None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def _value(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def bootstrap_ci(num: Sequence[float], den: Sequence[float], groups: Sequence[Any], *,
                 resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """`{"value", "ci_low", "ci_high"}` of Σnum/Σden, resampling the documents named by `groups`.
    Values are None where no record has a denominator (e.g. TEDS without a table)."""
    doc_num, doc_den = _document_sums(num, den, groups)
    value = _value(float(_ratio(doc_num.sum(keepdims=True), doc_den.sum(keepdims=True))[0]))
    if not len(doc_num) or value is None:
        return {"value": value, "ci_low": None, "ci_high": None}
    [samples] = _resampled_ratios([(doc_num, doc_den)], resamples, seed)
    low, high = _interval(samples, level)
    return {"value": value, "ci_low": low, "ci_high": high}


def paired_bootstrap(base_num: Sequence[float], base_den: Sequence[float], model_num: Sequence[float],
                     model_den: Sequence[float], groups: Sequence[Any], *, resamples: int = 1000, seed: int = 0,
                     level: float = 0.95) -> dict[str, Any]:
    """Delta model − base of a ratio metric on the same records, with a paired-bootstrap
    percentile interval: `{"base", "model", "delta", "ci_low", "ci_high", "documents", "resamples"}`."""
    base = _document_sums(base_num, base_den, groups)
    model = _document_sums(model_num, model_den, groups)
    base_value = _value(float(_ratio(base[0].sum(keepdims=True), base[1].sum(keepdims=True))[0]))
    model_value = _value(float(_ratio(model[0].sum(keepdims=True), model[1].sum(keepdims=True))[0]))
    result: dict[str, Any] = {"base": base_value, "model": model_value, "delta": None, "ci_low": None,
                              "ci_high": None, "documents": len(base[0]), "resamples": resamples, "level": level}
    if base_value is None or model_value is None:
        return result
    result["delta"] = model_value - base_value
    base_samples, model_samples = _resampled_ratios([base, model], resamples, seed)
    result["ci_low"], result["ci_high"] = _interval(model_samples - base_samples, level)
    return result
