"""How long scoring an evaluation pass takes, in one process and spread over the CPU cores.

Tree-edit accuracy and TEDS run APTED, which is pure Python; on a GPU (or vLLM) a pass over 250
crops generates in seconds and scoring them becomes most of `finscribe evaluate`. This re-scores
the rows of a finished run's predictions.jsonl (its records and model outputs, as written) with
`score_records` at each process count, checks that every count gives the same rows, and prints
the wall time of each.

    .venv/bin/python benchmarks/scoring_speed.py --predictions runs/quickstart/eval/predictions.jsonl \\
        --processes 1 2 --output benchmarks/results/scoring_speed.json

Run it on an idle machine: the figures are wall-clock times.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from finscribe.config import arg, parse_config
from finscribe.eval.scoring import score_records

PREDICTION_KEYS = ("parsed", "raw_text", "error", "repetition", "prompt_tokens", "new_tokens", "seconds", "beam")


@dataclass
class ScoringSpeedConfig:
    predictions: Path = arg(help="predictions.jsonl of a `finscribe evaluate` run")
    processes: tuple[int, ...] = arg((1, 2), "process counts to time")
    output: Path | None = arg(None, "write the timings here as JSON")


def main(argv: list[str] | None = None) -> int:
    config = parse_config(ScoringSpeedConfig, argv, prog="benchmarks/scoring_speed.py", description=__doc__)
    from finscribe.inference import Prediction  # imports torch: after --help

    if not config.predictions.is_file():
        print(f"error: {config.predictions} not found; pass the predictions.jsonl of a finished `finscribe evaluate`",
              file=sys.stderr)
        return 2
    try:
        rows = [json.loads(line) for line in config.predictions.read_text(encoding="utf-8").splitlines() if line.strip()]
        predictions = [Prediction(**{key: row[key] for key in PREDICTION_KEYS}) for row in rows]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        print(f"error: {config.predictions} is not a predictions.jsonl of `finscribe evaluate` ({err!r})", file=sys.stderr)
        return 2
    results, reference = [], None
    for processes in config.processes:
        start = time.perf_counter()
        scored = score_records(rows, predictions, processes=processes)
        seconds = time.perf_counter() - start
        reference = reference if reference is not None else scored
        same = scored == reference
        results.append({"processes": processes, "seconds": round(seconds, 2), "same_rows_as_first": same})
        print(f"{len(rows)} records, {processes} process(es): {seconds:.1f} s, same rows: {same}", flush=True)
    if config.output:
        config.output.write_text(json.dumps({"predictions": str(config.predictions), "records": len(rows),
                                             "results": results}, indent=2) + "\n", encoding="utf-8")
    return 0 if all(r["same_rows_as_first"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
