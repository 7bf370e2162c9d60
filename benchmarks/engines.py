"""The service's two engines under the same load: `finscribe serve` (transformers, in process) against
`finscribe serve --engine vllm` (a vLLM server started from .venv-vllm), in one run, on the same CPUs:

    bash scripts/setup_vllm.sh
    python benchmarks/engines.py                      # fine-tunes the committed tiny reader first
    python benchmarks/engines.py --model runs/quickstart/model --requests 96

The same requests (one `totals_section` crop each, its box the whole image, so it is read with the
totals prompt; constrained decoding on, the service default, or off with --no-constrained) at 1, 4
and 16 concurrent clients against each service in turn (never both at once); requests/s and
p50/p99 latency per level, and
whether both engines answered the same text. Goal: vLLM >= 2x the transformers service's
throughput at 16 clients. Results: benchmarks/results/engines/results.json (+ RESULTS.md by hand).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
from PIL import Image

from finscribe.machine import describe_machine

REPO = Path(__file__).resolve().parents[1]
LEVELS = (1, 4, 16)
GOAL = 2.0


def fine_tune(out: Path, steps: int) -> tuple[str, list[Path]]:
    """The committed tiny reader fine-tuned on generated totals crops; (model, held-out crops)."""
    from finscribe.data.build_dataset import build_dataset_from_manifest, write_jsonl_atomic
    from finscribe.synthetic.export import generate_dataset
    from finscribe.training.train import train
    from finscribe.training.train_config import TrainConfig

    manifest = generate_dataset(240, out / "data", seed=11, workers=1, dpi=150)
    records = build_dataset_from_manifest(manifest, regions=("totals_section",)).to_list()
    for i, record in enumerate(records):
        record["split"] = "train" if i < 120 else "test"
    data = out / "records.jsonl"
    write_jsonl_atomic(data, records)
    model = train(TrainConfig(data=(data,), model=str(REPO / "finscribe/assets/tiny_reader"), output_dir=out / "model",
                              max_steps=steps, batch_size=16, learning_rate=3e-4, regions=("totals_section",),
                              logging_steps=max(1, steps // 5), save_steps=steps, save_total_limit=1,
                              eval_generate_samples=0, report_to=("none",)))
    return str(model), [Path(r["image"]) for r in records[120:]]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(model: str, engine: str, args: argparse.Namespace, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "finscribe.cli", "serve", "--model", model, "--port", str(port), "--engine", engine,
               "--batch-size", str(args.batch_size), "--max-new-tokens", str(args.max_new_tokens),
               "--dtype", "float32", "--device", "cpu", "--log-level", "warning",
               "--constrained" if args.constrained else "--no-constrained"]
    if "--layout-model" in subprocess.run([sys.executable, "-m", "finscribe.cli", "serve", "--help"],
                                          capture_output=True, text=True, cwd=REPO).stdout:
        command += ["--layout-model", "none"]  # boxes are given: no detector to load
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{engine} service exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(2)
    process.kill()
    raise SystemExit(f"{engine} service did not come up: {log.read_text()[-2000:]}")


def request(client: httpx.Client, url: str, png: bytes, size: tuple[int, int]) -> tuple[float, str]:
    boxes = json.dumps({"totals_section": [0, 0, size[0], size[1]]})
    start = time.perf_counter()
    answer = client.post(url + "/v1/extract", files={"file": ("crop.png", png, "image/png")}, data={"boxes": boxes})
    seconds = time.perf_counter() - start
    answer.raise_for_status()
    return seconds, answer.json()["pages"][0]["regions"]["totals_section"]["raw_text"]


def run_level(url: str, crops: list[tuple[bytes, tuple[int, int]]], clients: int) -> dict:
    with httpx.Client(timeout=600, limits=httpx.Limits(max_connections=clients + 2)) as client, \
            concurrent.futures.ThreadPoolExecutor(clients) as pool:
        start = time.perf_counter()
        results = list(pool.map(lambda c: request(client, url, *c), crops))
        wall = time.perf_counter() - start
    latencies = sorted(s for s, _ in results)
    return {"clients": clients, "requests": len(crops), "requests_per_s": len(crops) / wall,
            "p50_s": statistics.median(latencies), "p99_s": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            "texts": [t for _, t in results]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a merged/fine-tuned model folder (default: fine-tune the tiny reader here)")
    parser.add_argument("--train-steps", type=int, default=150)
    parser.add_argument("--requests", type=int, default=96, help="requests per level")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--constrained", action=argparse.BooleanOptionalAction, default=True,
                        help="schema-constrained decoding on both engines (the service default)")
    parser.add_argument("--output-dir", type=Path, default=REPO / "benchmarks/results/engines")
    args = parser.parse_args()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    started, load_before = datetime.now(timezone.utc), os.getloadavg()
    if args.model:
        model = args.model
        from finscribe.data.build_dataset import build_dataset_from_manifest
        from finscribe.synthetic.export import generate_dataset

        manifest = generate_dataset(args.requests, args.output_dir / "data", seed=11, workers=1, dpi=150)
        images = [Path(r["image"]) for r in build_dataset_from_manifest(manifest, regions=("totals_section",)).to_list()]
    else:
        model, images = fine_tune(args.output_dir, args.train_steps)
    crops = []
    for path in images[:args.requests]:
        buffer = io.BytesIO()
        image = Image.open(path).convert("RGB")
        image.save(buffer, format="PNG")
        crops.append((buffer.getvalue(), image.size))
    results: dict[str, list[dict]] = {}
    for engine in ("transformers", "vllm"):
        t = time.perf_counter()
        process, url = start_service(model, engine, args, args.output_dir / f"serve_{engine}.log")
        print(f"{engine}: service up in {time.perf_counter() - t:.0f} s", flush=True)
        try:
            run_level(url, crops[:8], 4)  # warm-up: grammars compiled, caches filled
            results[engine] = []
            for clients in LEVELS:
                level = run_level(url, crops, clients)
                results[engine].append(level)
                print(f"  {clients:>2} clients: {level['requests_per_s']:6.2f} req/s  p50 {level['p50_s']:.3f} s  "
                      f"p99 {level['p99_s']:.3f} s", flush=True)
        finally:
            process.terminate()
            process.wait(120)
    same = sum(a == b for a, b in zip(results["transformers"][-1]["texts"], results["vllm"][-1]["texts"]))
    ratio = results["vllm"][-1]["requests_per_s"] / results["transformers"][-1]["requests_per_s"]
    print(f"\nvLLM / transformers throughput at {LEVELS[-1]} clients: {ratio:.2f}x (goal >= {GOAL:.0f}x: "
          f"{'met' if ratio >= GOAL else 'NOT met'}); identical answers {same}/{len(crops)}")
    summary = {"date": started.isoformat(timespec="minutes"), "load_average_before": load_before,
               "load_average_after": os.getloadavg(), "machine": describe_machine(), "model": model,
               "requests_per_level": len(crops), "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
               "constrained": args.constrained,
               "ratio_at_16": ratio, "goal": GOAL, "identical_answers": same,
               "levels": {e: [{k: v for k, v in level.items() if k != "texts"} for level in levels]
                          for e, levels in results.items()}}
    name = "results.json" if args.constrained else "results_unconstrained.json"
    (args.output_dir / name).write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary["levels"], indent=1))


if __name__ == "__main__":
    main()
