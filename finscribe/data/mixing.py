"""Mix several record sets at chosen shares: synthetic and real data, for example.

    finscribe train --data synth.jsonl real.jsonl --mix 0.7 0.3 ...

`mix_datasets_by_share([synth, real], [0.7, 0.3])` keeps every record of every set and
oversamples the sets that are too small for their share: the result has
N = max_i(len_i / share_i) rows, of which round(share_i × N) come from set i (each of its
records ⌊k/len_i⌋ times, the rest drawn without replacement by `seed`), shuffled by `seed`.
So 10,000 synthetic and 100 real records at 0.7/0.3 give 10,000 synthetic + 4,286 real rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import datasets
import numpy as np

from finscribe.data.records import RECORD_KEYS


def balanced_pick(available: int, n: int, rng: np.random.Generator) -> list[int]:
    """n indices out of `available`: without replacement if n ≤ available, else every index
    ⌊n/available⌋ times plus a random remainder (balanced oversampling)."""
    repeats, rest = divmod(n, available)
    picks = [i for _ in range(repeats) for i in range(available)]
    picks += rng.permutation(available)[:rest].tolist()
    return picks


def check_shares(shares: Sequence[float], count: int) -> list[float]:
    """The shares normalised to sum to 1; ValueError unless there is one positive share per set."""
    if len(shares) != count:
        raise ValueError(f"--mix needs one share per --data file: {count} file(s), {len(shares)} share(s)")
    if any(not share > 0 for share in shares):
        raise ValueError(f"--mix shares must be positive, got {list(shares)}")
    total = float(sum(shares))
    return [share / total for share in shares]


def mix_datasets_by_share(parts: Sequence[datasets.Dataset], shares: Sequence[float], seed: int = 0) -> datasets.Dataset:
    """The record sets mixed at `shares` (see the module docstring); empty sets are an error."""
    shares = check_shares(shares, len(parts))
    for i, part in enumerate(parts):
        if len(part) == 0:
            raise ValueError(f"--data file {i + 1} has no records for this split and these regions")
    total = max(len(part) / share for part, share in zip(parts, shares, strict=True))
    rng = np.random.default_rng(seed)
    features = parts[0].select_columns(list(RECORD_KEYS)).features
    picked = [part.select_columns(list(RECORD_KEYS)).cast(features).select(balanced_pick(len(part), round(share * total), rng))
              for part, share in zip(parts, shares, strict=True)]
    combined = datasets.concatenate_datasets(picked)
    return combined.select(rng.permutation(len(combined)).tolist())
