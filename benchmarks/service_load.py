"""Load test of `finscribe serve` on loopback, three scenarios:

    python benchmarks/service_load.py --model models/tiny --requests 48 --memory-requests 1000
    python benchmarks/service_load.py --model models/tiny --scenario huge          # 16 x 6300x6300 PNG at once
    python benchmarks/service_load.py --model models/tiny --scenario hostile --requests 160 --max-seconds 90

* `levels` (default): requests/s and latency at 1, 4 and 16 concurrent clients, failed requests,
  and the server's RSS over many requests (memory must stay flat).
* `huge`: 16 clients each send a ~128 KB PNG of 6300x6300 pixels (under the 40 MP limit) at the
  same moment; every answer must be 200, 503 or 413, and the server's PEAK RSS (VmHWM) stays
  bounded by its decoded-pixel budget (`--max-decoded-mb`).
* `hostile`: good receipts, bad uploads (1-pixel-tall image, corrupt PNG, Infinity in boxes, text
  posing as a PNG, truncated JPEG, pixel-bomb header) and huge pages interleaved at 16 clients;
  per class: answers by status, p50/p95 and failures (a good request failing, a bad one not
  answered 4xx, a huge one not answered 200/503/413). Goal: good requests never fail because of
  bad ones (a 503 "busy, retry" under a burst of huge pages is counted apart, not as a failure).

The server runs as its own process (`finscribe serve` on 127.0.0.1, a free port) so its RSS is
read from /proc/<pid>/status. Bounded: `--requests` per level / in all, `--max-seconds` in all.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import httpx
from PIL import Image, ImageDraw

from finscribe.machine import describe_machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_healthy(server: subprocess.Popen, url: str, seconds: float = 300) -> None:
    """Poll GET /health until it answers 200; a server that exits or stays silent ends the benchmark
    in one line with the tail of its log."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"error: server did not start: {server.stderr.read().decode()[-2000:]}")
        time.sleep(0.5)


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """VmRSS (now) or VmHWM (the peak since the process started) of `pid`, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for pid {pid}")


def huge_png(side: int = 6300) -> bytes:
    """A side x side RGB page, white with a few dark bars: ~128 KB of PNG, 160 MB once decoded."""
    image = Image.new("RGB", (side, side), "white")
    draw = ImageDraw.Draw(image)
    for i in range(40):
        draw.rectangle([200, 200 + 150 * i, 200 + 60 * (i % 50 + 20), 240 + 150 * i], fill=(20, 20, 20))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def bad_uploads() -> list[tuple[str, dict]]:
    """(name, httpx request kwargs) of uploads that must get a 4xx."""
    def png(size: tuple[int, int]) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", size, "white").save(buffer, format="PNG")
        return buffer.getvalue()

    jpeg = io.BytesIO()
    Image.new("RGB", (400, 300), "white").save(jpeg, format="JPEG")
    return [
        ("1px-tall", {"files": {"file": ("a.png", png((600, 1)), "image/png")}}),
        ("corrupt-png", {"files": {"file": ("a.png", png((300, 200))[:60], "image/png")}}),
        ("infinite-box", {"files": {"file": ("a.png", png((300, 200)), "image/png")},
                          "data": {"boxes": '{"totals_section": [0, 0, 1e999, 50]}'}}),
        ("text-as-png", {"files": {"file": ("a.png", b"not an image at all", "image/png")}}),
        ("truncated-jpeg", {"files": {"file": ("a.jpg", jpeg.getvalue()[:300], "image/jpeg")}}),
        ("pixel-bomb", {"files": {"file": ("a.png", png_header_only(40_000, 40_000), "image/png")}}),
    ]


def percentile(values: list[float], q: float) -> float | None:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))] if values else None


def run_mix(url: str, clients: int, schedule: list[tuple[str, str, dict]], deadline: float) -> dict:
    """Send `schedule` [(class, name, request kwargs)] from `clients` threads, in order; per class:
    statuses, p50/p95 latency and failures."""
    results: list[tuple[str, str, int, float]] = []
    lock = threading.Lock()
    todo = iter(schedule)

    def client() -> None:
        with httpx.Client(base_url=url, timeout=300) as http:
            while time.monotonic() < deadline:
                with lock:
                    item = next(todo, None)
                if item is None:
                    return
                kind, name, kwargs = item
                start = time.perf_counter()
                try:
                    status = http.post("/v1/extract", **kwargs).status_code
                except httpx.HTTPError:
                    status = 0  # connection error
                with lock:
                    results.append((kind, name, status, time.perf_counter() - start))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = {"good": lambda s: s == 200, "bad": lambda s: 400 <= s < 500, "huge": lambda s: s in (200, 503, 413)}
    report = {}
    for kind in ("good", "bad", "huge"):
        rows = [r for r in results if r[0] == kind]
        if not rows:
            continue
        latencies = [r[3] for r in rows]
        failed = [f"{name}: {status}" for _, name, status, _ in rows if not ok[kind](status)]
        if kind == "good":  # a "busy, retry" 503 is not a failure caused by a bad upload: counted apart
            busy = sum(1 for r in rows if r[2] == 503)
            failed = [f for f in failed if not f.endswith(": 503")]
        report[kind] = {"requests": len(rows), "statuses": dict(Counter(str(r[2]) for r in rows)),
                        "failed": len(failed), "failures": failed[:5], "p50_s": percentile(latencies, 0.5),
                        "p95_s": percentile(latencies, 0.95), **({"busy_503": busy} if kind == "good" else {})}
    return report


def upload_png() -> bytes:
    image = Image.new("RGB", (320, 120), "white")
    ImageDraw.Draw(image).text((10, 40), "Total: $1,234.50", fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def run_level(url: str, clients: int, requests: int, payload: bytes, deadline: float) -> dict:
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        with httpx.Client(base_url=url, timeout=300) as http:
            while time.monotonic() < deadline:
                with lock:
                    if next(counter, None) is None:
                        return
                start = time.perf_counter()
                response = http.post("/v1/extract", files={"file": ("p.png", payload, "image/png")})
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)
                    if response.status_code != 200:
                        failures.append(f"{response.status_code}: {response.text[:200]}")

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies.sort()
    return {"clients": clients, "requests": len(latencies), "failed": len(failures), "failures": failures[:3],
            "requests_per_s": len(latencies) / wall, "p50_s": statistics.median(latencies),
            "p95_s": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]}


def run_attack(args: argparse.Namespace, url: str, pid: int, payload: bytes, stop: float) -> dict:
    """The `huge` or `hostile` scenario; returns its report (with the server's RSS, now and peak)."""
    rss_before = rss_bytes(pid)
    big = huge_png()
    huge = ("huge", "6300x6300", {"files": {"file": ("huge.png", big, "image/png")}})
    if args.scenario == "huge":
        schedule = [huge] * args.clients
    else:
        bad = bad_uploads()
        good = ("good", "receipt", {"files": {"file": ("r.png", payload, "image/png")}})
        schedule = []
        for i in range(args.requests):  # interleaved: good, bad, good, huge, good, bad, ...
            pick = i % 4
            schedule.append(good if pick in (0, 2) else ("bad", *bad[(i // 4) % len(bad)]) if pick == 1 else huge)
    start = time.perf_counter()
    report = run_mix(url, args.clients, schedule, stop)
    return {"scenario": args.scenario, "model": args.model, "clients": args.clients, "huge_png_bytes": len(big),
            "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size, "machine": describe_machine(),
            "wall_s": round(time.perf_counter() - start, 1), "classes": report,
            "rss_mb_before": round(rss_before / 2**20, 1), "rss_mb_after": round(rss_bytes(pid) / 2**20, 1),
            "peak_rss_mb": round(rss_bytes(pid, "VmHWM") / 2**20, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model folder to serve")
    parser.add_argument("--requests", type=int, default=48, help="requests per concurrency level")
    parser.add_argument("--levels", type=int, nargs="*", default=[1, 4, 16], help="concurrent clients")
    parser.add_argument("--memory-requests", type=int, default=1000, help="requests for the RSS check")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="server's generation limit per region")
    parser.add_argument("--batch-size", type=int, default=8, help="server's batch size")
    parser.add_argument("--max-seconds", type=float, default=1500, help="stop issuing requests after this")
    parser.add_argument("--output", type=Path, default=None, help="write the results JSON here")
    parser.add_argument("--scenario", choices=["levels", "huge", "hostile"], default="levels", help="what to run")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (huge, hostile)")
    parser.add_argument("--max-decoded-mb", type=float, default=None, help="server's decoded-pixel budget (default: its own)")
    parser.add_argument("--layout-model", default=None,
                        help="server's region detector for pages sent without boxes (default: its own; 'none': read them whole)")
    args = parser.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "finscribe.cli", "serve", "--model", args.model, "--port", str(port),
                               "--max-new-tokens", str(args.max_new_tokens), "--batch-size", str(args.batch_size),
                               "--device", "cpu", "--log-level", "warning",
                               *(["--max-decoded-mb", str(args.max_decoded_mb)] if args.max_decoded_mb else []),
                               *(["--layout-model", args.layout_model] if args.layout_model else [])],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_healthy(server, url)
        payload = upload_png()
        stop = time.monotonic() + args.max_seconds
        run_level(url, 1, 3, payload, stop)  # warm-up
        if args.scenario != "levels":
            report = run_attack(args, url, server.pid, payload, stop)
            print(json.dumps(report, indent=2))
            if args.output:
                args.output.write_text(json.dumps(report, indent=2) + "\n")
            return 0
        levels = [run_level(url, c, args.requests, payload, stop) for c in args.levels]
        rss = [(0, rss_bytes(server.pid))]
        done = 0
        while done < args.memory_requests and time.monotonic() < stop:
            step = min(100, args.memory_requests - done)
            result = run_level(url, 4, step, payload, stop)
            done += result["requests"]
            levels.append({**result, "memory_phase": True})
            rss.append((done, rss_bytes(server.pid)))
        report = {"model": args.model, "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
                  "machine": describe_machine(), "levels": [lv for lv in levels if not lv.get("memory_phase")],
                  "memory_requests": done, "memory_failed": sum(lv["failed"] for lv in levels if lv.get("memory_phase")),
                  "rss_mb": [(n, round(b / 2**20, 1)) for n, b in rss]}
        print(json.dumps(report, indent=2))
        if args.output:
            args.output.write_text(json.dumps(report, indent=2) + "\n")
        return 0
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
