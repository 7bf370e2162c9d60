"""How the tiny reader reads: held-out OCR evaluation, the pretraining curve and the model card.

    from finscribe.training.reader_report import evaluate_reading
    evaluate_reading(model, processor, samples)  # exact lines/blocks and CER, per kind and region
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rapidfuzz.distance import Levenshtein

from finscribe.eval.charts import plt, save_figure
from finscribe.inference import predict
from finscribe.synthetic.ocr_text import OCR_PROMPT, OcrSample
from finscribe.training.pretrain_reader_config import PretrainConfig


def crop_area(sample: OcrSample) -> int:
    return sample.image.width * sample.image.height


CHARACTER_CLASSES = ("digit", "letter", "other")


def character_class(char: str) -> str:
    return "digit" if char.isdigit() else "letter" if char.isalpha() else "other"


def class_error_rates(answers: list[str], targets: list[str]) -> dict[str, float | None]:
    """Edit operations per reference character of each class (digits, letters, the rest): where
    reading stalls. A substitution or a missing character counts for the reference character's
    class, an extra character for its own class, so the three rates add up to the CER when weighted."""
    edits = dict.fromkeys(CHARACTER_CLASSES, 0)
    chars = dict.fromkeys(CHARACTER_CLASSES, 0)
    for answer, target in zip(answers, targets, strict=True):
        for char in target:
            chars[character_class(char)] += 1
        for op in Levenshtein.editops(answer, target):
            edits[character_class(answer[op.src_pos] if op.tag == "delete" else target[op.dest_pos])] += 1
    return {c: round(edits[c] / chars[c], 4) if chars[c] else None for c in CHARACTER_CLASSES}


def block_rows(answers: list[str], targets: list[str]) -> dict[str, dict[str, float]]:
    """Exact rate and CER of each block row (row k of the answer against row k of the target; a
    missing row is empty): where a reader that reads lines fails in blocks. The tiny reader at
    RoPE theta 20 read totals rows 0-1 and wrote rows 2-3 from its prior (labels included)."""
    rows: dict[int, list[tuple[str, str]]] = {}
    for answer, target in zip(answers, targets):
        got = answer.split("\n")
        for k, line in enumerate(target.split("\n")):
            rows.setdefault(k, []).append((got[k] if k < len(got) else "", line))
    return {str(k): {"n": len(pairs), "exact": round(sum(a == t for a, t in pairs) / len(pairs), 4),
                     "cer": round(sum(Levenshtein.distance(a, t) for a, t in pairs) / max(1, sum(len(t) for _, t in pairs)), 4)}
            for k, pairs in sorted(rows.items())}


def evaluate_reading(model: Any, processor: Any, samples: list[OcrSample]) -> dict[str, Any]:
    """Greedy `OCR:` transcription of held-out crops: exact-line accuracy and CER (edit distance /
    reference characters), overall, per kind (line/block) and per region."""

    # token budgets per kind of crop: a line, a region block, a whole line-items table (up to ~25 rows)
    budgets = {"line": 96, "block": 224, "table": 768}
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault("table" if s.kind == "block" and s.region == "line_items_table" else s.kind, []).append(i)
    answers: list[str] = [""] * len(samples)
    for group, indices in groups.items():
        indices.sort(key=lambda i: crop_area(samples[i]))
        preds = predict(model, processor, [samples[i].image for i in indices], "page", prompts=[OCR_PROMPT] * len(indices),
                        max_new_tokens=budgets[group], batch_size=32 if group != "table" else 8)
        for i, pred in zip(indices, preds):
            answers[i] = pred.raw_text.strip()

    def score(indices: list[int]) -> dict[str, Any]:
        chars = sum(len(samples[i].text) for i in indices)
        edits = sum(Levenshtein.distance(answers[i], samples[i].text) for i in indices)
        exact = sum(answers[i] == samples[i].text for i in indices)
        return {"n": len(indices), "exact": round(exact / max(1, len(indices)), 4),
                "cer": round(edits / max(1, chars), 4),
                "cer_by_class": class_error_rates([answers[i] for i in indices], [samples[i].text for i in indices])}

    result: dict[str, Any] = {}
    for kind in ("line", "block"):
        indices = [i for i, s in enumerate(samples) if s.kind == kind]
        result[kind] = score(indices)
        result[kind]["regions"] = {
            str(region): score([i for i in indices if samples[i].region == region])
            for region in sorted({samples[i].region for i in indices}, key=str)
        }
        held_out = [i for i in indices if samples[i].layout == "minimal"]
        result[kind]["held_out_layout"] = score(held_out)
    for region, scored in result["block"]["regions"].items():
        indices = [i for i, s in enumerate(samples) if s.kind == "block" and str(s.region) == region]
        scored["rows"] = block_rows([answers[i] for i in indices], [samples[i].text for i in indices])
    result["examples"] = [{"kind": samples[i].kind, "region": samples[i].region, "target": samples[i].text,
                           "answer": answers[i]} for i in range(0, len(samples), max(1, len(samples) // 8))]
    return result


def plot_curve(rows: list[dict[str, Any]], path: Path) -> None:

    train = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "eval" in r]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for kind, colour in (("line", "#3b78b0"), ("block", "#c0504d")):
        points = [(r["step"], r["loss"]) for r in train if r["kind"] == kind]
        if points:
            left.plot(*zip(*points), ".", markersize=2, color=colour, alpha=0.5, label=f"{kind} steps")
    left.set_yscale("log")
    left.set_xlabel("step")
    left.set_ylabel("training loss (answer tokens)")
    left.legend()
    left.grid(alpha=0.3)
    for kind, colour in (("line", "#3b78b0"), ("block", "#c0504d")):
        if evals:
            steps = [r["step"] for r in evals]
            right.plot(steps, [100 * r["eval"][kind]["exact"] for r in evals], "o-", color=colour, label=f"{kind} exact %")
            right.plot(steps, [100 * r["eval"][kind]["cer"] for r in evals], "x--", color=colour, label=f"{kind} CER %")
    right.set_xlabel("step")
    right.set_ylabel("% on held-out invoices")
    right.set_ylim(0, 100)
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle("Tiny PaddleOCR-VL reader: pretraining on OCR: (fresh synthetic crops every step)")
    fig.tight_layout()
    save_figure(fig, path)


def reader_card(config: PretrainConfig, held_out: dict[str, Any]) -> str:
    """The model card (README.md) of an exported reader: what it is, how it was made, how it reads."""
    line, block = held_out["eval"]["line"], held_out["eval"]["block"]
    def classes(r: dict[str, Any]) -> str:  # absent in evaluations made before the class breakdown existed
        rates = r.get("cer_by_class") or {}
        return " | ".join("" if rates.get(c) is None else f"{100 * rates[c]:.1f} %" for c in CHARACTER_CLASSES)

    rows = "\n".join(f"| {kind} | {region} | {r['n']} | {100 * r['exact']:.1f} % | {100 * r['cer']:.1f} % | {classes(r)} |"
                     for kind, result in (("line", line), ("block", block))
                     for region, r in result["regions"].items())
    block_regions = block.get("regions", {})
    width = max((len(r.get("rows", {})) for r in block_regions.values()), default=0)
    row_header = " | ".join(f"row {k}" for k in range(width))
    row_rule = "---:|" * width
    row_table = "\n".join(
        f"| {region} | " + " | ".join(
            f"{100 * r['rows'][str(k)]['exact']:.0f} % / {100 * r['rows'][str(k)]['cer']:.0f} %" if str(k) in r["rows"]
            else "" for k in range(width)) + " |"
        for region, r in block_regions.items() if "rows" in r)
    run = Path(config.output_dir)
    if (run.parent / "recipe.yaml").is_file():  # a phase of `--recipe`: the whole curriculum is the way to remake it
        phase = (f" It is phase `{run.name}` of the recipe saved as {run.parent / 'recipe.yaml'}, whose phases start"
                 f" from random weights and each from the last one's reader; `finscribe pretrain-reader --recipe"
                 f" {run.parent / 'recipe.yaml'} --output-dir DIR --export-dir DIR/reader` makes it again (every"
                 f" phase's settings, metrics and curve are in {run.parent}/).")
    elif config.init_from is not None:
        phase = (f" This run continues an earlier reader: it started from the one then in {config.init_from} (weights and"
                 f" tokenizer; a copy is kept in {config.output_dir}/init) with the text RoPE base set to"
                 f" {config.rope_theta:g}.")
    else:
        phase = ""
    return f"""# FinScribe tiny reader (step {held_out['step']} of {config.max_steps})

A tiny PaddleOCR-VL (`PaddleOCRVLForConditionalGeneration`, text {config.hidden_size}x{config.num_layers}, vision
{config.vision_hidden_size}x{config.vision_layers}, RoPE theta {config.rope_theta:g}, byte-level BPE of
{config.vocab_size} tokens with one token per digit) pretrained on the real model's base task, `OCR:` -> the
text of a crop, on fresh synthetic invoice crops at {config.dpi} dpi (every locale, font and layout but
{', '.join(config.held_out_layouts)}; {config.degrade_probability:.0%} of pages degraded). It knows no JSON
schema: `finscribe quickstart` fine-tunes it into the extractor, as PaddleOCR-VL is fine-tuned. How well
it reads at this step is measured below{"" if held_out["step"] >= config.max_steps else
" (pretraining unfinished: resume with `finscribe pretrain-reader --output-dir " + str(config.output_dir) + "`)"}.{phase}

Made with `finscribe pretrain-reader` (settings in pretrain_config.json, curve in curve.png); it loads by
path: `finscribe.model.load_model("finscribe/assets/tiny_reader")`.

## Held-out reading (invoices of seed {config.eval_seed}, every layout, held-out ones included)

Lines: {100 * line['exact']:.1f} % exact, CER {100 * line['cer']:.1f} % (goal: >= 90 % exact, <= 2 % CER on the
quickstart's regions). Blocks: {100 * block['exact']:.1f} % exact, CER {100 * block['cer']:.1f} %.

| kind | region | crops | exact | CER | digit errors | letter errors | other errors |
|---|---|---:|---:|---:|---:|---:|---:|
{rows}

Errors per reference character of each class (edit operations; a missing or substituted character
counts for the reference's class, an extra one for its own): where reading stalls.

Block rows (row k of the answer against row k of the target, exact / CER): where a block stops being read.

| region | {row_header} |
|---|{row_rule}
{row_table}

## Limits

A stand-in for tests, demos and the CPU quickstart, not a document reader for real use: 2.5 M
parameters, synthetic text only, 150-dpi crops of at most {config.max_pixels:,} pixels.
"""
