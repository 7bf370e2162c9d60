"""Two finished evaluation runs of the same test records, compared pair by pair.

Two fine-tuning variants (a reader, a learning rate, a pixel cap) are judged on the same held-out
records. Their difference has a much narrower interval than either run's own, because what makes
one invoice hard makes it hard for both. This reads two `predictions.jsonl` files (`finscribe
evaluate` writes them), pairs their rows by (source_id, region), and prints every metric of B − A,
overall and per region, with a paired bootstrap 95 % interval over documents (`paired_deltas`,
the one `finscribe compare` reports).

    .venv/bin/python benchmarks/paired_runs.py --a runs/qs_vision/eval/predictions.jsonl \\
        --b runs/qs_tables/eval/predictions.jsonl --metrics field_accuracy teds row_exact_match

It loads no model and takes seconds.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finscribe.config import arg, parse_config
from finscribe.errors import FinScribeError
from finscribe.eval.region_summary import read_rows
from finscribe.eval.scoring import METRICS, paired_deltas
from finscribe.fileio import ensure_output_dir, write_json_atomic


@dataclass
class PairedRunsConfig:
    a: Path = arg(Path("runs/a/eval/predictions.jsonl"), "predictions.jsonl of run A (the reference)")
    b: Path = arg(Path("runs/b/eval/predictions.jsonl"), "predictions.jsonl of run B (B − A is reported)")
    metrics: tuple[str, ...] = arg(("field_accuracy", "teds", "row_exact_match"), "metrics to compare "
                                   f"({', '.join(key for key, _ in METRICS)})")
    resamples: int = arg(1000, "bootstrap resamples")
    seed: int = arg(0, "bootstrap seed")
    output: Path | None = arg(None, "also write the figures to this JSON file")
    by_region: bool = arg(True, "also compare region by region")


def paired_rows(a_rows: list[dict[str, Any]], b_rows: list[dict[str, Any]], a_name: str, b_name: str
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Both runs' rows in the same (source_id, region) order; an error when they scored other records."""
    def keyed(rows: list[dict[str, Any]], name: str) -> dict[tuple[str, str], dict[str, Any]]:
        out = {(str(r["source_id"]), r["region"]): r for r in rows}
        if len(out) != len(rows):
            raise FinScribeError(f"{name}: a (source_id, region) appears twice; pass one evaluation's predictions.jsonl")
        return out
    a, b = keyed(a_rows, a_name), keyed(b_rows, b_name)
    if a.keys() != b.keys():
        only = sorted(a.keys() ^ b.keys())[:3]
        raise FinScribeError(f"{a_name} and {b_name} scored different records (e.g. {only}); "
                             "evaluate both models on the same data, split and --limit")
    order = sorted(a)
    return [a[k] for k in order], [b[k] for k in order]


def compare(config: PairedRunsConfig) -> dict[str, Any]:
    known = {key for key, _ in METRICS}
    unknown = [m for m in config.metrics if m not in known]
    if unknown:
        raise FinScribeError(f"--metrics: unknown {unknown}; choose from {sorted(known)}")
    for path in (config.a, config.b):
        if not path.is_file():
            raise FinScribeError(f"{path}: no such predictions file; run `finscribe evaluate` first")
    a_rows, b_rows = paired_rows(read_rows(config.a), read_rows(config.b), str(config.a), str(config.b))
    groups = {"overall": (a_rows, b_rows)}
    if config.by_region:
        for region in sorted({r["region"] for r in a_rows}):
            groups[region] = ([r for r in a_rows if r["region"] == region], [r for r in b_rows if r["region"] == region])
    result: dict[str, Any] = {"a": str(config.a), "b": str(config.b), "records": len(a_rows),
                              "documents": len({r["source_id"] for r in a_rows}), "resamples": config.resamples}
    for name, (a_part, b_part) in groups.items():
        deltas = paired_deltas(a_part, b_part, resamples=config.resamples, seed=config.seed)
        result[name] = {m: deltas[m] for m in config.metrics if deltas[m].get("base") is not None}
    return result


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_config(PairedRunsConfig, argv, "paired_runs.py", __doc__.split("\n\n")[0])
        result = compare(config)
    except FinScribeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"B = {result['b']}\nA = {result['a']}\n{result['records']} records of {result['documents']} documents; "
          f"B − A with a paired bootstrap 95 % interval over documents ({result['resamples']} resamples)")
    print(f"{'':<20}{'metric':<22}{'A':>8}{'B':>8}{'B − A':>9}   95 % interval")
    for name, cells in result.items():
        if not isinstance(cells, dict):
            continue
        for metric, cell in cells.items():
            print(f"{name:<20}{metric:<22}{_fmt(cell['base']):>8}{_fmt(cell['model']):>8}{cell['delta']:>+9.3f}   "
                  f"({cell['ci_low']:+.3f} to {cell['ci_high']:+.3f})")
    if config.output is not None:  # written whole or not at all
        write_json_atomic(ensure_output_dir(config.output.parent) / config.output.name, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
