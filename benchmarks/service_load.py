"""Load test of `finscribe serve` on loopback: requests/s and latency at 1, 4 and 16 concurrent
clients, failed requests, and the server's RSS over many requests (memory must stay flat).

    python benchmarks/service_load.py --model models/tiny --requests 48 --memory-requests 1000

The server runs as its own process (`finscribe serve` on 127.0.0.1, a free port) so its RSS is
read from /proc/<pid>/status. Bounded: `--requests` per concurrency level, `--max-seconds` in all.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from PIL import Image, ImageDraw


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


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
    args = parser.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "finscribe.cli", "serve", "--model", args.model, "--port", str(port),
                               "--max-new-tokens", str(args.max_new_tokens), "--batch-size", str(args.batch_size),
                               "--device", "cpu", "--log-level", "warning"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"error: server did not start: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
        payload = upload_png()
        stop = time.monotonic() + args.max_seconds
        run_level(url, 1, 3, payload, stop)  # warm-up
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
                  "cpu_count": os.cpu_count(), "levels": [lv for lv in levels if not lv.get("memory_phase")],
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
