"""Whole pages through `finscribe serve` (region detector → crops → reader), on loopback:

    python benchmarks/service_pages.py --model finscribe/assets/tiny_reader --pages 24 --output pages.json
    python benchmarks/service_pages.py --model M --layout-model runs/layout --detect-threshold 0.3

* `pages`: generated invoices (every named layout, 150 dpi, no boxes sent) one at a time: the
  server's own per-page timings (detect, extract, total; p50/p95), regions found per page, and
  the mean IoU of each region's detected box against the renderer's true box.
* `bad pages`: a 1-pixel-tall page, an empty white page and a ~40 MP colour scan (an invoice
  blown up to 5300x7500): their statuses, whether any region was listed, the time, and the server's
  peak RSS (VmHWM) before and after the scan (the scan must be detected on a small copy and never
  held whole).

The server runs as its own process (`finscribe serve`, like benchmarks/service_load.py), so its
RSS is its own. Figures go to benchmarks/RESULTS.md with the machine and its load.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from PIL import Image
from service_load import free_port, rss_bytes, wait_until_healthy

from finscribe.machine import describe_machine

SCAN_SIZE = (5300, 7500)  # 39.75 MP, under the 40 MP limit


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def invoices(count: int, seed: int) -> list[tuple[Image.Image, dict[str, list[int]], str]]:
    from finscribe.synthetic.generator import generate_invoice
    from finscribe.synthetic.layouts import LAYOUTS
    from finscribe.synthetic.renderer import render_invoice

    pages = []
    for i in range(count):
        layout = LAYOUTS[i % len(LAYOUTS)]
        page = render_invoice(generate_invoice(num_items=1 + i % 5, seed=seed + i), layout, dpi=150, seed=seed + i)
        pages.append((page.image, {r: list(b) for r, b in page.boxes.items()}, layout))
    return pages


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def run_pages(http: httpx.Client, pages: list) -> dict:
    from finscribe.eval.layout import iou  # here, not at the top: --help stays free of torch

    timings: dict[str, list[float]] = {"detect": [], "extract": [], "total": [], "request": []}
    found, ious = [], {}
    for image, truth, _ in pages:
        start = time.perf_counter()
        response = http.post("/v1/extract", files={"file": ("p.png", png(image), "image/png")})
        timings["request"].append(time.perf_counter() - start)
        response.raise_for_status()
        page = response.json()["pages"][0]
        for key in ("detect", "extract", "total"):
            timings[key].append(page["timings"][key])
        found.append(len(page["regions"]))
        for region, info in page["regions"].items():
            ious.setdefault(region, []).append(iou(info["detected_box"], truth[region]))
    return {"pages": len(pages), "regions_found_mean": statistics.mean(found),
            "timings_s": {k: {"p50": round(percentile(v, 0.5), 3), "p95": round(percentile(v, 0.95), 3)}
                          for k, v in timings.items()},
            "iou_mean_of_found": {r: round(statistics.mean(v), 3) for r, v in ious.items()},
            "found_per_region": {r: len(v) for r, v in ious.items()}}


def run_bad_pages(http: httpx.Client, pid: int, invoice: Image.Image) -> dict:
    report = {}
    scan = png(invoice.convert("RGB").resize(SCAN_SIZE, Image.Resampling.NEAREST))
    cases = [("1px-tall", png(Image.new("RGB", (600, 1), "white"))), ("white", png(Image.new("RGB", (1240, 1754), "white"))),
             ("40mp-scan", scan)]
    for name, data in cases:
        before = rss_bytes(pid, "VmHWM")
        start = time.perf_counter()
        response = http.post("/v1/extract", files={"file": (f"{name}.png", data, "image/png")})
        row = {"status": response.status_code, "seconds": round(time.perf_counter() - start, 2), "upload_bytes": len(data),
               "peak_rss_mb_before": round(before / 2**20, 1), "peak_rss_mb_after": round(rss_bytes(pid, "VmHWM") / 2**20, 1)}
        if response.status_code == 200:
            page = response.json()["pages"][0]
            row.update(regions=sorted(page["regions"]), missing=page["missing"], detected_on=page.get("detected_on"),
                       size=[page["width"], page["height"]])
        else:
            row["error"] = response.json().get("error", "")[:160]
        report[name] = row
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="reader model folder to serve")
    parser.add_argument("--layout-model", default=None, help="region detector folder (default: serve's own)")
    parser.add_argument("--detect-threshold", type=float, default=None, help="server's detector threshold (default: its own)")
    parser.add_argument("--pages", type=int, default=24, help="generated invoices to send")
    parser.add_argument("--seed", type=int, default=777_000, help="first invoice seed")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="server's generation limit per region")
    parser.add_argument("--output", type=Path, default=None, help="write the results JSON here")
    args = parser.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "finscribe.cli", "serve", "--model", args.model, "--port", str(port), "--device", "cpu",
               "--max-new-tokens", str(args.max_new_tokens), "--log-level", "warning",
               *(["--layout-model", args.layout_model] if args.layout_model else []),
               *(["--detect-threshold", str(args.detect_threshold)] if args.detect_threshold is not None else [])]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_healthy(server, url)
        pages = invoices(args.pages, args.seed)
        with httpx.Client(base_url=url, timeout=600) as http:
            model = http.get("/v1/model").json()
            run_pages(http, pages[:2])  # warm-up
            report = {"model": model["model"], "layout_model": model.get("layout_model"),
                      "detect_threshold": model.get("detect_threshold"), "max_new_tokens": args.max_new_tokens,
                      "machine": describe_machine(),
                      "pages": run_pages(http, pages), "bad_pages": run_bad_pages(http, server.pid, pages[0][0])}
        print(json.dumps(report, indent=2))
        if args.output:
            args.output.write_text(json.dumps(report, indent=2) + "\n")
        return 0
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
