"""The repetition guard: finds a generated tail caught in a loop, so decoding can stop it.

PaddleOCR-VL is known to loop on long tables; `RepetitionGuard` stops such a row (transformers
engine) and `LoopDetector` is the same check for tokens returned by another engine (vLLM).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from transformers import StoppingCriteria

from finscribe.generation_args import REPETITION_WINDOW

# Repetition guard defaults. A loop is the generated tail being periodic: the last p*r tokens
# equal themselves shifted by p, for a period p <= REPETITION_WINDOW, with at least MIN_REPEATS
# repeats AND at least MIN_LOOP_TOKENS tokens in the loop. The span floor keeps legitimate short
# repeats ("1000000.00" is a period-1 run of five zeros) from tripping it; three repeats of a
# whole line-item row (period up to the window) is what a table loop looks like.
MIN_REPEATS = 3
MIN_LOOP_TOKENS = 24



class LoopDetector:
    """Incremental loop detection over rows of generated tokens, one position at a time.

    For every period p <= max_period it keeps the run of trailing positions where the token
    equals the one p back; the row loops with period p once that run reaches span - p with
    span = max(p * min_repeats, min_tokens), i.e. the last `span` tokens repeat with period p.
    O(rows x max_period) per token, so the guard stays cheap next to a decoding step.
    """

    def __init__(self, rows: int, max_period: int = REPETITION_WINDOW, min_repeats: int = MIN_REPEATS,
                 min_tokens: int = MIN_LOOP_TOKENS):
        self.periods = np.arange(1, max_period + 1)
        self.need = np.maximum(self.periods * min_repeats, min_tokens) - self.periods
        self.run = np.zeros((rows, max_period), dtype=np.int64)
        self.history = np.zeros((rows, 0), dtype=np.int64)  # the last max_period tokens

    def push(self, tokens: np.ndarray) -> None:
        tokens = np.asarray(tokens, dtype=np.int64)
        seen = self.history.shape[1]
        if seen:
            back = self.history[:, seen - np.minimum(self.periods, seen)]  # token p positions back
            equal = (back == tokens[:, None]) & (self.periods <= seen)[None, :]
            self.run = np.where(equal, self.run + 1, 0)
        self.history = np.concatenate([self.history, tokens[:, None]], axis=1)[:, -len(self.periods):]

    def looping(self) -> np.ndarray:
        """Per row: the smallest period that loops now, or 0."""
        hits = self.run >= self.need[None, :]
        return np.where(hits.any(axis=1), self.periods[hits.argmax(axis=1)], 0)


def find_loop(tokens: Sequence[int], max_period: int = REPETITION_WINDOW, min_repeats: int = MIN_REPEATS,
              min_tokens: int = MIN_LOOP_TOKENS) -> int | None:
    """The smallest period p whose repetition ends `tokens` (see `LoopDetector`), else None."""
    detector = LoopDetector(1, max_period, min_repeats, min_tokens)
    for token in tokens:
        detector.push(np.asarray([token]))
    return int(detector.looping()[0]) or None


class RepetitionGuard(StoppingCriteria):
    """Stops each row whose generated part ends in a loop (`LoopDetector`) and remembers which.

    Only the generated part (after `prompt_length`) is inspected, and a row that already emitted
    EOS is never stopped afterwards (the generator pads it, which would look periodic).
    `looped_at[row]` is the number of generated tokens when the guard found the row looping;
    `stopped_at[row]` the same for a row it stopped there. With a `closer` (the grammar's
    `RegionConstraint`) a looping row is handed to it to be closed instead of cut mid-string.
    """

    def __init__(self, prompt_length: int, batch_size: int, eos_token_ids: Iterable[int],
                 max_period: int = REPETITION_WINDOW, min_repeats: int = MIN_REPEATS,
                 min_tokens: int = MIN_LOOP_TOKENS, closer: Any = None):
        self.prompt_length = prompt_length
        self.closer = closer
        self.looped_at: list[int | None] = [None] * batch_size
        self.eos_token_ids = np.asarray(sorted(int(t) for t in eos_token_ids), dtype=np.int64)
        self.detector = LoopDetector(batch_size, max_period, min_repeats, min_tokens)
        self.finished = np.zeros(batch_size, dtype=bool)
        self.stopped_at: list[int | None] = [None] * batch_size
        self.seen = 0

    def __call__(self, input_ids: torch.LongTensor, scores: Any = None, **kwargs: Any) -> torch.BoolTensor:
        generated = input_ids[:, self.prompt_length:]
        length = generated.shape[1]
        new = generated[:, self.seen:].cpu().numpy()  # normally one token per call
        for column in new.T:
            self.finished |= np.isin(column, self.eos_token_ids)
            self.detector.push(column)
        self.seen = length
        looping = self.detector.looping()
        for row in np.flatnonzero((looping > 0) & ~self.finished):
            self.finished[row] = True
            self.looped_at[row] = length
            if self.closer is None or not self.closer.close(int(row)):
                self.stopped_at[row] = length
        return torch.tensor([s is not None for s in self.stopped_at], dtype=torch.bool, device=input_ids.device)
