"""Where a reader stops reading a line-item table: rows, answer tokens, and what pretraining showed it.

For each test table of an evaluation run (its `predictions.jsonl`), this finds the first row whose
description is wrong. It then counts the answer tokens before that row (the ground-truth JSON up to
it, with the model's own tokenizer) and prints them beside the crop's size. If a reader breaks
after about the same number of tokens whatever the crop's height, then the answer's length limits
it, not the image. The second part counts the tokens of the pretraining's table blocks, the ones
kept under its pixel cap and all of them. That is the longest answer pretraining ever trained.

    .venv/bin/python benchmarks/table_breaks.py --predictions runs/qs_vision/eval/predictions.jsonl \\
        --model runs/qs_vision/model --pretrain-pages 120 --output benchmarks/results/table_breaks.json

Loads only the tokenizer; renders --pretrain-pages synthetic invoices (~1 min for 120).
"""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from finscribe.config import arg, parse_config
from finscribe.errors import FinScribeError
from finscribe.eval.region_summary import read_rows
from finscribe.fileio import ensure_output_dir, write_json_atomic


@dataclass
class TableBreaksConfig:
    predictions: Path = arg(Path("runs/quickstart/eval/predictions.jsonl"), "an evaluation's predictions.jsonl")
    model: Path = arg(Path("runs/quickstart/model"), "the model folder whose tokenizer counts the answer tokens", path="dir")
    pretrain_pages: int = arg(120, "pretraining invoices whose table blocks are counted (0: skip)")
    pretrain_seed: int = arg(3456, "their seed (configs/reader.yaml's last phase)")
    pretrain_max_pixels: int = arg(313600, "the pretraining's block cap (configs/reader.yaml)")
    output: Path | None = arg(None, "also write the figures to this JSON file")


def first_wrong_row(target_rows: list[dict[str, Any]], predicted_rows: list[Any]) -> int | None:
    """Index of the first ground-truth row whose description the prediction does not have in that place."""
    for index, row in enumerate(target_rows):
        guess = predicted_rows[index] if index < len(predicted_rows) else None
        if not isinstance(guess, dict) or guess.get("description") != row.get("description"):
            return index
    return None


def table_breaks(rows: list[dict[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        if row["region"] != "line_items_table":
            continue
        target = json.loads(row["target"])
        parsed = row["parsed"] if isinstance(row["parsed"], dict) else {}
        predicted = parsed.get("line_items") if isinstance(parsed.get("line_items"), list) else []
        wrong = first_wrong_row(target["line_items"], predicted)
        before = None if wrong is None else len(tokenizer(json.dumps(
            {"line_items": target["line_items"][:wrong]}, separators=(",", ":")))["input_ids"])
        with Image.open(row["image"]) as image:
            width, height = image.size
        out.append({"source_id": row["source_id"], "rows": len(target["line_items"]), "predicted_rows": len(predicted),
                    "first_wrong_row": wrong, "answer_tokens_before_it": before, "crop": [width, height]})
    return out


def pretraining_table_tokens(config: TableBreaksConfig, tokenizer: Any) -> dict[str, Any]:
    from finscribe.synthetic.ocr_text import page_samples
    from finscribe.training.reader_report import crop_area

    kept, every = [], []
    for index in range(config.pretrain_pages):
        for sample in page_samples(config.pretrain_seed, index, block_regions=("line_items_table",)):
            if sample.kind == "block" and sample.region == "line_items_table":
                tokens = len(tokenizer(sample.text)["input_ids"])
                every.append(tokens)
                if crop_area(sample) <= config.pretrain_max_pixels:
                    kept.append(tokens)

    def stats(values: list[int]) -> dict[str, Any]:
        ranked = sorted(values)
        return {"tables": len(values), "median": statistics.median(ranked) if ranked else None,
                "p90": ranked[int(0.9 * (len(ranked) - 1))] if ranked else None, "max": max(ranked, default=None)}
    return {"kept_under_cap": stats(kept), "all": stats(every)}


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_config(TableBreaksConfig, argv, "table_breaks.py", __doc__.split("\n\n")[0])
    except FinScribeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not config.predictions.is_file():
        print(f"error: {config.predictions}: no such predictions file; run `finscribe evaluate` first", file=sys.stderr)
        return 2
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(config.model))
    except OSError as err:
        print(f"error: {config.model}: no tokenizer there ({err.__class__.__name__}); pass the run's model folder",
              file=sys.stderr)
        return 2
    try:
        breaks = table_breaks(read_rows(config.predictions), tokenizer)
    except (KeyError, TypeError, json.JSONDecodeError, FinScribeError) as err:
        print(f"error: {config.predictions}: not an evaluation's predictions.jsonl ({err})", file=sys.stderr)
        return 2
    print(f"{'table':<14}{'rows':>5}{'read':>6}{'first wrong':>13}{'tokens before':>15}   crop")
    for b in sorted(breaks, key=lambda b: (b["answer_tokens_before_it"] is None, b["answer_tokens_before_it"] or 0)):
        wrong = "-" if b["first_wrong_row"] is None else b["first_wrong_row"] + 1
        before = "-" if b["answer_tokens_before_it"] is None else b["answer_tokens_before_it"]
        print(f"{b['source_id']:<14}{b['rows']:>5}{b['predicted_rows']:>6}{wrong:>13}{before:>15}   "
              f"{b['crop'][0]}x{b['crop'][1]}")
    result: dict[str, Any] = {"predictions": str(config.predictions), "tables": breaks}
    if config.pretrain_pages:
        result["pretraining_table_blocks"] = pretraining_table_tokens(config, tokenizer)
        print("pretraining table blocks (answer tokens):", json.dumps(result["pretraining_table_blocks"]))
    if config.output is not None:  # written whole or not at all
        write_json_atomic(ensure_output_dir(config.output.parent) / config.output.name, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
