"""Field accuracy with and without schema-constrained decoding, side by side, on the same crops.

    python benchmarks/constrained_accuracy.py --model runs/quickstart/model \
        --data runs/quickstart/dataset/records.jsonl --split test \
        --output benchmarks/results/constrained_accuracy.json

Predicts every record of `--split` twice with `finscribe.inference.predict_records` (the one
generation path): unconstrained, then `constrained=True`; scores both with the same per-record
scoring as `finscribe evaluate` (`finscribe.eval.scoring`) and prints the metrics side by side
(issue 15's goal: constrained >= unconstrained field accuracy). Times depend on the machine's
load; record it with the figures.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from finscribe.config import arg, parse_config
from finscribe.eval.scoring import METRICS, metrics, score_record
from finscribe.fileio import write_json_atomic
from finscribe.inference import GenerationArgs, predict_records
from finscribe.machine import describe_machine


@dataclass
class AccuracyConfig:
    model: str = arg(help="model folder (or hub id) to evaluate")
    data: Path = arg(help="records JSONL (finscribe build-dataset / quickstart dataset/records.jsonl)")
    split: str = arg("test", "split to evaluate")
    limit: int | None = arg(None, "only the first N records of the split")
    batch_size: int = arg(16, "crops per generation batch")
    max_new_tokens: int = arg(128, "generation cap per crop")
    threads: int = arg(1, "torch intra-op threads")
    output: Path = arg(Path("benchmarks/results/constrained_accuracy.json"), "JSON results file")


def _records(config: AccuracyConfig) -> list[dict]:
    from finscribe.data.build_dataset import load_records

    records = [r for r in load_records(config.data).to_list() if r["split"] == config.split]
    if not records:
        raise ValueError(f"{config.data}: no records with split {config.split!r}")
    return records[: config.limit] if config.limit else records


def main(argv: list[str] | None = None) -> int:
    config = parse_config(AccuracyConfig, argv, prog="constrained_accuracy.py",
                          description="Field accuracy with and without constrained decoding, same crops.")
    torch.set_num_threads(config.threads)
    generation = GenerationArgs(model=config.model, device="cpu", dtype="float32", batch_size=config.batch_size,
                                max_new_tokens=config.max_new_tokens)
    model, processor = generation.load()
    records = _records(config)
    results = {}
    for constrained in (False, True):
        start = time.perf_counter()
        preds = predict_records(model, processor, records, dataclasses.replace(generation, constrained=constrained),
                                show_progress=False)
        rows = [score_record(record, pred) for record, pred in zip(records, preds)]
        results["constrained" if constrained else "unconstrained"] = dict(
            metrics(rows), seconds=round(time.perf_counter() - start, 1))
    output = {"config": {k: str(v) for k, v in asdict(config).items()}, "results": results,
              "machine": describe_machine(), "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    Path(config.output).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(config.output), output)
    print(f"{len(records)} {config.split} records of {config.data}, model {config.model}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'metric':<26} {'unconstrained':>13} {'constrained':>11}")
    for key, label in (*METRICS, ("seconds", "wall seconds")):
        cells = [results[mode].get(key) for mode in ("unconstrained", "constrained")]
        print(f"{label:<26} " + " ".join(f"{'-' if v is None else f'{v:.3f}':>{w}}" for v, w in zip(cells, (13, 11))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
