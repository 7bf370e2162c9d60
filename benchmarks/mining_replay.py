"""Mining loop benchmark (slow): does replaying mined hard samples generalise to new crops?

1. Mine: `finscribe mine` runs the fine-tuned model on the validation crops (or `--mine-data`, e.g.
   invoices generated with another seed) and logs every wrong output (the hard samples) with its
   error type.
2. Retrain twice from the same fine-tuned model, with the same steps, seed and training crops:
   with replay (`--hard-samples` at `--hard-ratio`, 80/20 by default) and without (the control).
3. Measure both, and the model before retraining, on **held-out test crops of the mined error
   types**: test crops on which the model before retraining made an error of a type mined on
   validation. The mined samples themselves are never scored (they are validation crops), so a
   gain here is generalisation, not memorised answers. All test crops are scored too (replay must
   not cost the rest).

Writes OUTPUT/mining_replay.json and OUTPUT/mining_replay.md (the table for benchmarks/RESULTS.md).

    .venv/bin/python benchmarks/mining_replay.py --model runs/quickstart/model \\
        --data runs/quickstart/dataset/records.jsonl --output-dir benchmarks/results/mining_replay
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finscribe.config import arg, parse_config, save_config


@dataclass
class MiningReplayConfig:
    model: str = arg("runs/quickstart/model", "the fine-tuned model to mine with and retrain from")
    data: Path = arg(Path("runs/quickstart/dataset/records.jsonl"), "records JSONL with train, val and test splits")
    mine_data: Path | None = arg(None, "records to mine on (default: --data), e.g. invoices generated with another seed")
    mine_split: str = arg("val", "split of the mined records ('all' for every split of --mine-data)")
    output_dir: Path = arg(Path("benchmarks/results/mining_replay"), "output folder")
    regions: tuple[str, ...] = arg(("totals_section",), "regions to mine, retrain and score")
    max_steps: int = arg(200, "optimizer steps of each retraining run (the same for both)")
    batch_size: int = arg(16, "crops per step")
    learning_rate: float = arg(1e-4, "peak learning rate of the retraining runs")
    hard_ratio: float = arg(0.2, "share of hard samples in the replay run's training mix")
    max_new_tokens: int = arg(128, "generation cap per crop")
    seed: int = arg(0, "seed of both retraining runs")


def _classify(model_dir: str, records: list[dict[str, Any]], max_new_tokens: int) -> list[Any]:
    from finscribe.inference import GenerationArgs
    from finscribe.mining.mine import classify_records

    generation = GenerationArgs(model=model_dir, batch_size=16, max_new_tokens=max_new_tokens)
    model, processor = generation.load()
    return classify_records(model, processor, records, generation, show_progress=False)


def _field_counts(results: list[Any]) -> list[tuple[int, int]]:
    """(correct fields, ground-truth fields) of every crop."""
    from finscribe.eval.field_accuracy import field_accuracy_details

    counts = []
    for r in results:
        details = field_accuracy_details(r.pred, json.loads(r.record["target"]), region=r.record["region"])
        counts.append((details.correct, details.total))
    return counts


def _replay_gain(replay: list[Any], control: list[Any]) -> dict[str, Any]:
    """Field accuracy with replay minus without, same crops, paired bootstrap over documents."""
    from finscribe.eval.bootstrap import paired_bootstrap

    base, model = _field_counts(control), _field_counts(replay)
    return paired_bootstrap([c for c, _ in base], [t for _, t in base], [c for c, _ in model], [t for _, t in model],
                            [r.record.get("source_id") for r in replay])


def _scores(results: list[Any], mined_types: set[str]) -> dict[str, Any]:
    counts = _field_counts(results)
    correct, total = sum(c for c, _ in counts), sum(t for _, t in counts)
    types = collections.Counter(r.error_type.value for r in results)
    return {"crops": len(results), "field_accuracy": correct / total if total else None,
            "all_fields_right": types.get("OTHER", 0) / len(results) if results else None,
            "still_a_mined_error_type": sum(types[t] for t in mined_types) / len(results) if results else None,
            "error_types": dict(types.most_common())}


def run(config: MiningReplayConfig) -> dict[str, Any]:
    from finscribe.data.records import write_jsonl_atomic
    from finscribe.data.selection import RecordSelection, load_selection
    from finscribe.fileio import write_json_atomic, write_text_atomic
    from finscribe.inference import GenerationArgs
    from finscribe.mining.mine import MineConfig, mine
    from finscribe.training.train import TrainConfig, train

    out = Path(config.output_dir)
    save_config(config, out)
    regions = tuple(config.regions)
    mined = mine(MineConfig(generation=GenerationArgs(model=config.model, batch_size=16,
                                                      max_new_tokens=config.max_new_tokens),
                            records=RecordSelection(data=config.mine_data or config.data, split=config.mine_split,
                                                    regions=regions),
                            output_dir=out / "hard_samples"))
    mined_types = set(mined["by_type"]) - {"OTHER"}
    print(f"mined {mined['errors']} of {mined['samples']} validation crops: {mined['by_type']}", flush=True)

    test = load_selection(RecordSelection(data=config.data, split="test", regions=regions), skip_ocr=True)
    before = _classify(config.model, test, config.max_new_tokens)
    target_ids = {i for i, r in enumerate(before) if r.error_type.value in mined_types}
    print(f"{len(target_ids)} of {len(test)} test crops have an error of a mined type before retraining", flush=True)

    runs = {}
    for name, hard in (("with replay", out / "hard_samples"), ("without replay (control)", None)):
        folder = out / ("replay" if hard else "control")
        model_dir = train(TrainConfig(
            data=config.data, model=config.model, output_dir=folder, max_steps=config.max_steps,
            batch_size=config.batch_size, gradient_accumulation_steps=1, learning_rate=config.learning_rate,
            warmup_ratio=0.05, regions=regions, hard_samples=hard, hard_ratio=config.hard_ratio,
            save_steps=config.max_steps, save_total_limit=1, eval_generate_samples=0, seed=config.seed,
            logging_steps=max(1, config.max_steps // 10), report_to=("none",)))
        runs[name] = _classify(str(model_dir), test, config.max_new_tokens)

    table = {"before retraining": before, **runs}
    result = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(config).items()},
        "mined": {"crops": mined["samples"], "split": config.mine_split, "data": str(config.mine_data or config.data),
                  "hard_samples": mined["errors"], "by_type": mined["by_type"]},
        "test_crops": len(test), "test_crops_of_mined_types": len(target_ids),
        "on_test_crops_of_mined_types": {name: _scores([rs[i] for i in sorted(target_ids)], mined_types)
                                         for name, rs in table.items()},
        "on_all_test_crops": {name: _scores(rs, mined_types) for name, rs in table.items()},
        "replay_gain_on_test_crops_of_mined_types": _replay_gain(
            [runs["with replay"][i] for i in sorted(target_ids)],
            [runs["without replay (control)"][i] for i in sorted(target_ids)]),
    }
    rows = [{"source_id": r.record.get("source_id"), "layout": r.record.get("layout"), "target": r.record["target"],
             **{name: {"raw_text": rs[i].raw_text, "error_type": rs[i].error_type.value} for name, rs in table.items()}}
            for i, r in enumerate(before)]
    write_jsonl_atomic(out / "test_predictions.jsonl", rows)
    write_json_atomic(out / "mining_replay.json", result)
    write_text_atomic(out / "mining_replay.md", _markdown(result))
    print(_markdown(result))
    return result


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _markdown(result: dict[str, Any]) -> str:
    lines = [f"Mined on {result['mined']['crops']} crops ({result['mined']['split']} split of `{result['mined']['data']}`): "
             f"{result['mined']['hard_samples']} "
             f"hard samples ({', '.join(f'{k} {v}' for k, v in result['mined']['by_type'].items())}). Held-out test "
             f"crops of the mined error types: {result['test_crops_of_mined_types']} of {result['test_crops']}.", "",
             "| model | scored on | crops | field accuracy | all fields right | still a mined error type |",
             "|---|---|---:|---:|---:|---:|"]
    for scope, title in (("on_test_crops_of_mined_types", "test crops of mined types"), ("on_all_test_crops", "all test crops")):
        for name, s in result[scope].items():
            lines.append(f"| {name} | {title} | {s['crops']} | {_pct(s['field_accuracy'])} | {_pct(s['all_fields_right'])} "
                         f"| {_pct(s['still_a_mined_error_type'])} |")
    gain = result["replay_gain_on_test_crops_of_mined_types"]
    if gain["delta"] is not None:
        lines += ["", f"Replay − control, field accuracy on the test crops of mined types: {100 * gain['delta']:+.1f} points "
                  f"(95 % paired bootstrap over {gain['documents']} documents: [{100 * gain['ci_low']:+.1f}, "
                  f"{100 * gain['ci_high']:+.1f}])."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None, prog: str = "benchmarks/mining_replay.py") -> int:
    run(parse_config(MiningReplayConfig, argv, prog, __doc__.split("\n\n")[0]))
    return 0


if __name__ == "__main__":
    from finscribe.cli import run as run_stage

    raise SystemExit(run_stage(main, prog="benchmarks/mining_replay.py"))
