"""The vLLM server process behind `--engine vllm`: started from `.venv-vllm` (scripts/setup_vllm.sh)
with the structured-outputs config, watched, and stopped with FinScribe; plus the engine's errors
and the check that a model folder is one vLLM can serve. The client is `finscribe.engine_vllm`.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from finscribe.errors import FinScribeError

REPO = Path(__file__).resolve().parents[1]
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"  # scripts/setup_vllm.sh makes it
# Server-level structured outputs: only this way does xgrammar stop an untrained model from looping
# on whitespace (DESIGN §9); compact JSON is also the training targets' form.
STRUCTURED_OUTPUTS = '{"backend":"xgrammar","disable_any_whitespace":true}'
QUANTIZED_META = "quantization.json"  # what `finscribe quantize` writes (finscribe.deploy.quantize.META_FILE)
MAX_MODEL_LEN = 8192  # a page prompt of the real model + the token cap; the KV cache must hold one sequence


class EngineError(FinScribeError):
    """The vLLM engine cannot do what was asked (not set up, refused model, bad answer)."""


class EngineStartError(EngineError):
    """The vLLM server FinScribe started did not come up; the message holds its log's tail."""


class EngineUnavailableError(EngineError):
    """The vLLM server cannot be reached or failed mid-request (the service answers 503)."""


def check_servable(model: str) -> None:
    """Refuse, in one line with the fix, a model folder vLLM cannot serve."""
    folder = Path(model)
    if (folder / "adapter_config.json").is_file():
        raise EngineError(f"{model} is a LoRA adapter; vLLM serves merged models only: run `finscribe export --model "
                          f"{model} --output-dir {folder.name}-merged --merge` and pass that folder")
    if (folder / QUANTIZED_META).is_file():
        raise EngineError(f"{model} is an INT8 folder of `finscribe quantize` (torchao), which vLLM does not load; "
                          "pass the float model it was made from")


# ----------------------------------------------------------------------------- the server process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _max_model_len(model: str) -> int:
    """MAX_MODEL_LEN, or less when the checkpoint's positions are fewer (the tiny models)."""
    try:
        config = json.loads((Path(model) / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return MAX_MODEL_LEN  # a hub id: vLLM reads its config itself
    text = config.get("text_config") or config
    return min(MAX_MODEL_LEN, int(text.get("max_position_embeddings") or MAX_MODEL_LEN))


def _die_with_parent() -> None:
    """In the child before exec: a SIGKILLed FinScribe takes its vLLM server down too (Linux)."""
    os.setsid()  # own process group: stop() signals vLLM's worker processes as well
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class VLLMServer:
    """A vLLM OpenAI-compatible server in a child process, from `.venv-vllm` (or `python`).

    `start()` waits until /health answers (or raises EngineStartError with the log's tail);
    `stop()` ends its whole process group. Float32 and --enforce-eager on CPU (DESIGN §9: start-up
    40 s instead of 96 s); `extra_args` go last, so they override (e.g. --tensor-parallel-size 2).
    A server that exits after it came up is started again on the same port by a watchdog thread
    (at most `max_restarts` times); requests meanwhile fail with EngineUnavailableError."""

    def __init__(self, model: str, *, dtype: str | None = None, device: str | None = None, port: int = 0,
                 extra_args: str = "", python: str | Path | None = None, startup_timeout: float = 900.0,
                 log_path: str | Path | None = None, max_restarts: int = 5):
        check_servable(model)
        self.model, self.port = model, port or _free_port()
        self.python = Path(python or os.environ.get("FINSCRIBE_VLLM_PYTHON") or VLLM_PYTHON)
        cpu = device == "cpu" or (device is None and not _has_cuda())
        args = ["--model", model, "--served-model-name", Path(model).name or model, "--host", "127.0.0.1",
                "--port", str(self.port), "--max-model-len", str(_max_model_len(model)),
                "--structured-outputs-config", STRUCTURED_OUTPUTS, "--limit-mm-per-prompt", '{"image":1}',
                "--dtype", dtype or ("float32" if cpu else "auto")]
        if cpu:
            args.append("--enforce-eager")
        self.command = [str(self.python), "-m", "vllm.entrypoints.openai.api_server", *args, *shlex.split(extra_args)]
        self.url = f"http://127.0.0.1:{self.port}"
        self.startup_timeout, self.max_restarts, self.restarts = startup_timeout, max_restarts, 0
        self.log_path = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="finscribe-vllm-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None
        self.ready = False  # came up once: from then on the watchdog restarts it
        self._stopping = threading.Event()
        self._launched = threading.Event()
        self._watchdog: threading.Thread | None = None

    def start(self) -> VLLMServer:
        if not self.python.is_file():
            raise EngineError(f"vLLM is not set up ({self.python} not found): run `bash scripts/setup_vllm.sh`, "
                              "or pass --engine-url of a running vLLM server")
        # Every launch happens in the watchdog thread, which lives as long as this process: the
        # child's parent-death signal (prctl) follows the thread that started it.
        self._watchdog = threading.Thread(target=self._watch, name="finscribe-vllm-watchdog", daemon=True)
        self._watchdog.start()
        self._launched.wait()
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    self.stop()
                    raise EngineStartError(f"the vLLM server exited with status {self.process.returncode} while starting "
                                           f"({self.log_path}): {self.log_tail()}")
                try:
                    if client.get(self.url + "/health").status_code == 200:
                        self.ready = True
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(1)
        self.stop()
        raise EngineStartError(f"the vLLM server did not answer /health within {self.startup_timeout:.0f} s "
                               f"({self.log_path}): {self.log_tail()}")

    def _launch(self) -> None:
        env = dict(os.environ)
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM's CPU default (4) is more than a tiny model needs
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)

    def _watch(self) -> None:
        self._launch()
        self._launched.set()
        while not self._stopping.wait(1.0):
            if self.process.poll() is None:
                continue
            if not self.ready or self.restarts >= self.max_restarts:
                return  # a first start that failed is start()'s to report; past the restarts, stay down
            _kill_group(self.process.pid, signal.SIGKILL)  # its engine and worker processes, orphaned
            self.restarts += 1
            print(f"the vLLM server exited with status {self.process.returncode}; restarting it "
                  f"({self.restarts}/{self.max_restarts}, log: {self.log_path})", file=sys.stderr)
            self._launch()

    def exit_status(self) -> int | None:
        """None while running; the exit status once it has exited (the watchdog may restart it)."""
        return None if self.process is None else self.process.poll()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=5)
        if self.process is None or self.process.poll() is not None:
            if self.process is not None:
                _kill_group(self.process.pid, signal.SIGKILL)  # leftovers of a crashed server
            return
        _kill_group(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the server's own group (setsid in _die_with_parent)
    except (ProcessLookupError, PermissionError):
        pass


def _has_cuda() -> bool:
    import torch  # imported when asked: a --help must not pay for it

    return torch.cuda.is_available()
