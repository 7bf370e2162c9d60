"""Per-token overhead of schema-constrained decoding, per grammar engine (xgrammar, llguidance).

    python benchmarks/constrained_overhead.py --repeats 5 --output benchmarks/results/constrained_overhead.json

What it measures, on the tiny PaddleOCR-VL (`build_tiny_model`, CPU, float32):
* one batch of `--batch-size` crops of MIXED regions (the five regions and the page, cycling),
  left-padded as in `finscribe.inference`, decoded greedily with `model.generate` through
  transformers' logits-processor interface;
* every row is steered to a canonical target (the region label of a generated invoice, mixed
  currencies) by a "teacher" logits bias that comes before the grammar processor. An untrained
  model constrained to the schema would emit `{}` (3 tokens) and measure nothing; with the teacher,
  every run decodes the same realistic token sequences, so runs with and without a grammar are
  comparable step for step (the script checks that the outputs are identical);
* per engine: the wall time per decoding step with the teacher only (baseline) and with teacher +
  grammar, and the grammar processor's own time per step (mask fill + token accept + mask apply).
  overhead = grammar time per step / baseline time per step (goal: <= 10 % at batch 8 on CPU);
* the same grammar work replayed on the real PaddleOCR-VL tokenizer (103k vocabulary, SentencePiece,
  `../shared/paddleocr_vl/v1`) when it loads: microseconds per batch step, no model.

Both engines apply their (identical-format) bitmask with xgrammar's CPU kernel: llguidance's own
`apply_token_bitmask_inplace` is `torch.compile`d, which needs a C++ toolchain on CPU. The times
depend on the machine's load: record it beside the figures.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw
from transformers import LogitsProcessor, LogitsProcessorList

from finscribe.config import arg, parse_config
from finscribe.constrained import RegionConstraint, compiled_grammar, region_schema
from finscribe.data.formatters import PAGE, prompt_for, serialize_target
from finscribe.data.schema import REGIONS
from finscribe.fileio import write_json_atomic
from finscribe.machine import describe_machine
from finscribe.prompting import render_prompt

REGION_CYCLE = (*REGIONS, PAGE)
CURRENCY_CYCLE = ("USD", "JPY", "EUR", "GBP", "INR", "CHF")


@dataclass
class OverheadConfig:
    batch_size: int = arg(8, "rows per batch (mixed regions)")
    repeats: int = arg(5, "timed runs per engine (the median is reported); one warm-up run is not timed")
    engines: tuple[str, ...] = arg(("xgrammar", "llguidance"), "grammar engines to measure")
    threads: int = arg(1, "torch intra-op threads (the machine is shared: 1 avoids oversubscription)")
    max_text_length: int = arg(0, "bound on text values in the schema (0: unbounded; xgrammar 0.2.9 rejects escapes such as \\n in a bounded string)")
    max_new_tokens: int = arg(1024, "generation cap (every teacher target ends well before it)")
    real_tokenizer: str = arg("../shared/paddleocr_vl/v1", "folder of the real tokenizer for the replay; '' skips it")
    output: str = arg("benchmarks/results/constrained_overhead.json", "JSON results file")


class TeacherBias(LogitsProcessor):
    """Adds a large bias to each row's next target token (EOS after the target): a deterministic
    stand-in for a trained model's preference, so the decoded sequences are realistic."""

    def __init__(self, targets: list[list[int]], eos_id: int, prompt_length: int):
        self.targets, self.eos_id, self.prompt_length = targets, eos_id, prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_length
        for row, target in enumerate(self.targets):
            scores[row, target[step] if step < len(target) else self.eos_id] += 1000.0
        return scores


class LLGuidanceConstraint(LogitsProcessor):
    """The same per-row processor as `finscribe.constrained.RegionConstraint`, with llguidance."""

    def __init__(self, matchers: list[Any], vocab_size: int, prompt_length: int):
        import llguidance.torch
        import xgrammar as xgr

        self._llg, self._xgr = llguidance.torch, xgr
        self.matchers, self.vocab_size, self.prompt_length = matchers, vocab_size, prompt_length
        self.bitmask = llguidance.torch.allocate_token_bitmask(len(matchers), vocab_size)
        self.active = [True] * len(matchers)
        self.seconds = 0.0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        start = time.perf_counter()
        if input_ids.shape[1] > self.prompt_length:
            last = input_ids[:, -1].tolist()
            for row, matcher in enumerate(self.matchers):
                if self.active[row]:
                    self.active[row] = matcher.consume_token(last[row]) and not matcher.is_stopped()
        for row, matcher in enumerate(self.matchers):
            if self.active[row]:
                self._llg.fill_next_token_bitmask(matcher, self.bitmask, row)
            else:
                self.bitmask[row] = -1
        self._xgr.apply_token_bitmask_inplace(scores, self.bitmask, vocab_size=self.vocab_size)
        self.seconds += time.perf_counter() - start
        return scores


def _llg_tokenizer(tokenizer: Any, vocab_size: int, eos_id: int) -> Any:
    import llguidance.hf

    return llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=eos_id)


def _llg_matchers(llg_tokenizer: Any, regions: list[str], max_text_length: int | None) -> list[Any]:
    import llguidance

    options = {"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"}
    matchers = []
    for region in regions:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(region_schema(region, max_text_length=max_text_length), defaults=options)
        matcher = llguidance.LLMatcher(llg_tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise RuntimeError(f"llguidance rejected the {region} schema: {matcher.get_error()}")
        matchers.append(matcher)
    return matchers


def workload(batch_size: int) -> tuple[list[str], list[str], list[Image.Image]]:
    """Regions, canonical targets and images of one mixed batch."""
    from finscribe.synthetic.generator import generate_invoice

    regions, targets, images = [], [], []
    for row in range(batch_size):
        region = REGION_CYCLE[row % len(REGION_CYCLE)]
        invoice = generate_invoice(num_items=2 + row % 3, currency=CURRENCY_CYCLE[row % len(CURRENCY_CYCLE)], seed=row)
        label = invoice.to_label()
        target = serialize_target(label if region == PAGE else label[region])
        image = Image.new("RGB", (300, 400 if region == PAGE else 100), "white")
        ImageDraw.Draw(image).multiline_text((6, 6), target[:40] + "\n" + target[40:80], fill="black")
        regions.append(region)
        targets.append(target)
        images.append(image)
    return regions, targets, images


def _inputs(processor: Any, regions: list[str], images: list[Image.Image]) -> dict[str, torch.Tensor]:
    tokenizer = processor.tokenizer
    texts = [render_prompt(processor, prompt_for(region)) for region in regions]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        return processor(text=texts, images=images, padding=True, add_special_tokens=False, return_tensors="pt")
    finally:
        tokenizer.padding_side = side


def run_once(model: Any, inputs: dict, grammar: Any, teacher_ids: list[list[int]], eos_id: int, pad_id: int,
             max_new_tokens: int) -> tuple[float, int, list[list[int]]]:
    """One greedy generate with the teacher (+ the grammar processor) → (wall s, steps, new tokens)."""
    prompt_length = inputs["input_ids"].shape[1]
    processors = LogitsProcessorList([TeacherBias(teacher_ids, eos_id, prompt_length)] + ([grammar] if grammar else []))
    start = time.perf_counter()
    with torch.inference_mode():
        output = model.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                                eos_token_id=eos_id, pad_token_id=pad_id, logits_processor=processors)
    return time.perf_counter() - start, output.shape[1] - prompt_length, output[:, prompt_length:].tolist()


def time_variants(model: Any, inputs: dict, makers: dict[str, Any], teacher_ids: list[list[int]], eos_id: int,
                  pad_id: int, config: OverheadConfig) -> dict[str, dict[str, Any]]:
    """Median wall s/step and grammar s/step per variant over `repeats` rounds (+1 warm-up round).
    The variants run in turn inside each round, so a change in the machine's load hits them alike."""
    prompt_length = inputs["input_ids"].shape[1]
    timings: dict[str, dict[str, Any]] = {name: {"walls": [], "grammar": []} for name in makers}
    for round_ in range(config.repeats + 1):
        for name, make in makers.items():
            grammar = make(prompt_length) if make else None
            wall, steps, output = run_once(model, inputs, grammar, teacher_ids, eos_id, pad_id, config.max_new_tokens)
            timing = timings[name]
            timing.update(steps=steps, output=output)
            if round_:  # the first round warms caches and is not timed
                timing["walls"].append(wall / steps)
                timing["grammar"].append(grammar.seconds / steps if grammar else 0.0)
    return {name: {"steps": t["steps"], "output": t["output"], "wall_s_per_step": statistics.median(t["walls"]),
                   "grammar_s_per_step": statistics.median(t["grammar"])} for name, t in timings.items()}


def _replay_matchers(engine: str, tokenizer: Any, vocab_size: int, eos_id: int, regions: list[str],
                     bound: int | None) -> tuple[Any, Any]:
    """Fresh matchers for every row → (fill(row, bitmask), accept(row, token) -> bool)."""
    if engine == "xgrammar":
        import xgrammar as xgr

        matchers = [xgr.GrammarMatcher(compiled_grammar(tokenizer, region, vocab_size=vocab_size, eos_token_ids=[eos_id],
                                                        max_text_length=bound)) for region in regions]
        return (lambda row, mask: matchers[row].fill_next_token_bitmask(mask, row),
                lambda row, token: matchers[row].accept_token(token))
    import llguidance.torch

    matchers = _llg_matchers(_llg_tokenizer(tokenizer, vocab_size, eos_id), regions, bound)
    return (lambda row, mask: llguidance.torch.fill_next_token_bitmask(matchers[row], mask, row),
            lambda row, token: matchers[row].consume_token(token))


def replay_real_tokenizer(folder: str, regions: list[str], targets: list[str], engines: list[str],
                          repeats: int, bound: int | None) -> dict[str, Any] | None:
    """Grammar work per batch step on the real tokenizer: fill all rows' masks, accept one token each."""
    if not folder or not Path(folder).is_dir():
        return None
    from transformers import AutoConfig, LlamaTokenizer

    tokenizer = LlamaTokenizer.from_pretrained(folder)
    vocab_size = AutoConfig.from_pretrained(folder).get_text_config().vocab_size
    eos_id = tokenizer.eos_token_id
    token_rows = [tokenizer.encode(t, add_special_tokens=False) + [eos_id] for t in targets]
    steps = max(len(r) for r in token_rows)
    result: dict[str, Any] = {"vocab_size": vocab_size, "len_tokenizer": len(tokenizer), "steps": steps}
    for engine in engines:
        bitmask = torch.full((len(regions), (vocab_size + 31) // 32), -1, dtype=torch.int32)
        per_step, rejected = [], []
        for _ in range(repeats + 1):
            fill, accept = _replay_matchers(engine, tokenizer, vocab_size, eos_id, regions, bound)
            done = [False] * len(token_rows)  # a row stops at the end of its target or at a rejection
            start = time.perf_counter()
            for step in range(steps):
                for row, tokens in enumerate(token_rows):
                    if step < len(tokens) and not done[row]:
                        fill(row, bitmask)
                        if not accept(row, tokens[step]):
                            done[row] = True
                            rejected.append(f"{regions[row]} at token {step}")
            per_step.append((time.perf_counter() - start) / steps)
        result[engine] = {"us_per_batch_step": statistics.median(per_step[1:]) * 1e6,
                          "rejected_targets": sorted(set(rejected))}
    return result


def main(argv: list[str] | None = None) -> int:
    config = parse_config(OverheadConfig, argv, prog="constrained_overhead.py",
                          description="Per-token overhead of schema-constrained decoding per grammar engine.")
    torch.set_num_threads(config.threads)
    from finscribe.model import load_model
    from finscribe.training.model import build_tiny_model, default_corpus

    model_dir = build_tiny_model(Path(tempfile.mkdtemp(prefix="finscribe-constrained-")) / "tiny", default_corpus(),
                                 seed=0)
    model, processor = load_model(model_dir, device="cpu", dtype="float32")
    model.eval()
    tokenizer = processor.tokenizer
    eos_id = model.generation_config.eos_token_id
    pad_id = model.generation_config.pad_token_id
    vocab_size = model.config.get_text_config().vocab_size
    regions, targets, images = workload(config.batch_size)
    inputs = _inputs(processor, regions, images)
    teacher_ids = [tokenizer.encode(t, add_special_tokens=False) for t in targets]

    bound = config.max_text_length or None
    makers: dict[str, Any] = {"none": None}
    for engine in config.engines:
        if engine == "xgrammar":
            grammars = [compiled_grammar(tokenizer, r, vocab_size=vocab_size, eos_token_ids=[eos_id],
                                         max_text_length=bound) for r in regions]
            makers[engine] = lambda n, g=grammars: RegionConstraint(g, n)
        elif engine == "llguidance":
            llg_tok = _llg_tokenizer(tokenizer, vocab_size, eos_id)
            makers[engine] = lambda n, t=llg_tok: LLGuidanceConstraint(_llg_matchers(t, regions, bound), vocab_size, n)
        else:
            raise ValueError(f"--engines: unknown engine {engine!r}; use xgrammar and/or llguidance")
    timed = time_variants(model, inputs, makers, teacher_ids, eos_id, pad_id, config)
    baseline = timed.pop("none")
    rows = []
    for engine, t in timed.items():
        rows.append({"engine": engine,
                     # False: the engine masked a token of a canonical target (the decoded sequences differ).
                     "accepts_targets": t["output"] == baseline["output"], "steps": t["steps"],
                     "baseline_ms_per_step": baseline["wall_s_per_step"] * 1e3,
                     "constrained_ms_per_step": t["wall_s_per_step"] * 1e3,
                     "grammar_ms_per_step": t["grammar_s_per_step"] * 1e3,
                     "overhead_pct": 100 * t["grammar_s_per_step"] / baseline["wall_s_per_step"],
                     "end_to_end_pct": 100 * (t["wall_s_per_step"] / baseline["wall_s_per_step"] - 1)})
    real = replay_real_tokenizer(config.real_tokenizer, regions, targets, config.engines, config.repeats, bound)

    from importlib.metadata import version

    results = {"config": asdict(config), "regions": regions, "rows": rows, "real_tokenizer_replay": real,
               "goal_overhead_pct": 10.0,
               "machine": {**describe_machine(), "xgrammar": version("xgrammar"), "llguidance": version("llguidance"),
                           "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}}
    Path(config.output).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(config.output), results)
    print(f"batch {config.batch_size} mixed regions {regions}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'engine':<11} {'steps':>5} {'base ms/step':>12} {'constr ms/step':>14} {'grammar ms/step':>15} "
          f"{'overhead':>9} {'end-to-end':>10}  goal")
    for r in rows:
        verdict = ("met" if r["overhead_pct"] <= 10 else "NOT met") + ("" if r["accepts_targets"] else
                                                                       "; REJECTED canonical targets")
        print(f"{r['engine']:<11} {r['steps']:>5} {r['baseline_ms_per_step']:>12.2f} {r['constrained_ms_per_step']:>14.2f} "
              f"{r['grammar_ms_per_step']:>15.3f} {r['overhead_pct']:>8.1f}% {r['end_to_end_pct']:>9.1f}%  <= 10 % {verdict}")
    if real:
        print(f"real tokenizer ({real['vocab_size']} logits, {real['steps']} steps): " + ", ".join(
            f"{e} {real[e]['us_per_batch_step']:.0f} us/batch step"
            + (f" (REJECTED {real[e]['rejected_targets']})" if real[e]["rejected_targets"] else "")
            for e in config.engines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
