"""Generation on a vLLM server (`--engine vllm`, `--engine-url URL`): the same `Prediction`s as
`finscribe.inference.predict`, so that scoring, validation and merging stay shared.

    from finscribe.engine_vllm import open_engine
    with open_engine(GenerationArgs(model="runs/ft", engine="vllm")) as engine:  # starts .venv-vllm's server
        [pred] = engine.predict(["crop.png"], "totals_section", max_new_tokens=128)

FinScribe keeps intake, regions, prompts, schemas, validation and merging; vLLM does batching, the
KV cache and parallelism (DESIGN §11). Each image is one chat-completions request (the image as a
PNG data URL, then the region prompt): the server renders it with the checkpoint's own chat
template, as `finscribe.prompting.render_prompt` does, after FinScribe has fitted the pixels with
`prompting.load_image`, so both engines see the same prompt and pixels (parity is a test:
tests/test_vllm.py). Constrained decoding sends the region's JSON schema
(`finscribe.constrained.region_schema`) as `response_format`; the server must be started with
`--structured-outputs-config '{"backend":"xgrammar","disable_any_whitespace":true}'` (set per
request it is ignored, DESIGN §9), which `VLLMServer` does.

The repetition guard runs on the returned token ids (`inference.LoopDetector`, step by step as
in `RepetitionGuard`), and a looping answer is cut where the transformers engine would have
stopped it, decoded by the checkpoint's tokenizer here, so unconstrained outputs are the same. A
constrained answer cut by the guard or the token cap is *closed through the grammar* here
(`constrained.closing_tokens`, within the cap, as `RegionConstraint` does in process), so it is a
complete object of its schema whatever stopped it.

vLLM lives in its own environment (its pins conflict with FinScribe's) and is reached over HTTP
only: this module never imports it.
"""

from __future__ import annotations

import base64
import io
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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from tqdm.auto import tqdm

from finscribe.constrained import region_schema
from finscribe.data.formatters import OCR_PROMPT, OutputParseError, parse_output, prompt_for
from finscribe.errors import FinScribeError
from finscribe.generation_args import GenerationArgs
from finscribe.inference import LoopDetector, Prediction
from finscribe.prompting import load_image

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


# ----------------------------------------------------------------------------- the client


def _data_url(image: Any, name: str) -> str:
    buffer = io.BytesIO()
    load_image(image, name).save(buffer, format="PNG")  # the fitted pixels both engines see
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def loop_stop(token_ids: Sequence[int], eos_token_ids: set[int], window: int) -> int | None:
    """Where `inference.RepetitionGuard` would have stopped this generation (tokens kept), or None:
    token by token, a row that emitted EOS is never stopped."""
    if window <= 0:
        return None
    detector = LoopDetector(1, max_period=window)
    for i, token in enumerate(token_ids):
        if token in eos_token_ids:
            return None
        detector.push(np.asarray([token]))
        if detector.looping()[0]:
            return i + 1
    return None


class VLLMEngine:
    """A client of one vLLM OpenAI-compatible endpoint (a server or a load balancer over replicas).

    `concurrency`: requests in flight at once, over all callers (one pool; vLLM batches them).
    Thread-safe: the service's worker threads share one engine."""

    def __init__(self, url: str, model: str, *, concurrency: int = 8, timeout: float = 600.0,
                 eos_token_ids: Sequence[int] | None = None, server: VLLMServer | None = None):
        self.url = url.rstrip("/").removesuffix("/v1")
        self.model, self.server = model, server  # `server`: started for this engine, stopped by close()
        self.client = httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0),
                                   limits=httpx.Limits(max_connections=max(concurrency, 1) + 4))
        self.pool = ThreadPoolExecutor(max_workers=max(concurrency, 1), thread_name_prefix="finscribe-vllm")
        self.served = self._served_model()
        self.eos_token_ids = set(eos_token_ids) if eos_token_ids is not None else _eos_ids(model)
        self._lock = threading.Lock()
        self._tokenizer_cache: tuple[Any, int] | None = None

    def _served_model(self) -> str:
        models = self._call("GET", "/v1/models")["data"]
        if not models:
            raise EngineError(f"the vLLM server at {self.url} serves no model")
        return models[0]["id"]

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self.client.request(method, self.url + path, json=body)
        except httpx.TimeoutException as err:
            raise EngineUnavailableError(f"the vLLM server at {self.url} did not answer in time ({type(err).__name__}); "
                                         "retry, or raise its capacity") from None
        except httpx.HTTPError as err:  # refused, reset, closed mid-answer: the server is down or restarting
            status = self.server.exit_status() if self.server is not None else None
            if status is not None or (self.server is not None and self.server.restarts):
                raise EngineUnavailableError(f"the vLLM server FinScribe started stopped answering ({type(err).__name__}; "
                                             f"exit status {status}) and is being restarted; retry in a minute "
                                             f"(log: {self.server.log_path})") from None
            raise EngineUnavailableError(f"the vLLM server at {self.url} is unreachable ({type(err).__name__}: {err}); "
                                         "retry once it is back") from None
        if response.status_code >= 500:
            raise EngineUnavailableError(f"the vLLM server at {self.url} failed (HTTP {response.status_code}: "
                                         f"{response.text[:300]}); retry once it is back")
        if response.status_code != 200:
            raise EngineError(f"the vLLM server at {self.url} refused the request (HTTP {response.status_code}: "
                              f"{response.text[:300]})")
        return response.json()

    def generate(self, image: Any, prompt: str, region: str, *, max_new_tokens: int, repetition_window: int,
                 constrained: bool, currency: str | None = None, name: str = "image") -> Prediction:
        """One image → one greedy `Prediction` (see the module docstring)."""
        body: dict[str, Any] = {
            "model": self.served, "temperature": 0, "max_tokens": max_new_tokens, "return_token_ids": True,
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": _data_url(image, name)}},
                {"type": "text", "text": prompt}]}],
        }
        if constrained:
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": region, "schema": region_schema(region, currency), "strict": True}}
        start = time.perf_counter()
        answer = self._call("POST", "/v1/chat/completions", body)
        choice = answer["choices"][0]
        raw, ids = choice["message"].get("content") or "", list(choice.get("token_ids") or [])
        stop = loop_stop(ids, self.eos_token_ids, repetition_window)
        new_tokens = len(ids)
        if constrained and (stop is not None or choice.get("finish_reason") == "length"):
            ids = self._close(ids[:stop], region, currency, max_new_tokens)  # cut: closed through the grammar
            raw, new_tokens = self._decode(ids), len(ids)
        elif stop is not None:
            raw, new_tokens = self._decode(ids[:stop]), stop
        seconds = time.perf_counter() - start
        try:
            parsed, error = parse_output(raw), None
        except OutputParseError as err:
            parsed, error = None, str(err)
        return Prediction(parsed=parsed, raw_text=raw, error=error, repetition=stop is not None,
                          prompt_tokens=int(answer["usage"]["prompt_tokens"]), new_tokens=new_tokens, seconds=seconds,
                          constrained=constrained)

    def _tokenizer(self) -> Any:
        """The checkpoint's tokenizer, loaded on first need (a cut answer): decoding and closing in
        this process exactly as `inference.predict` does."""
        with self._lock:
            if self._tokenizer_cache is None:
                from finscribe.checkpoint import load_config, load_processor

                self._tokenizer_cache = (load_processor(self.model).tokenizer,
                                         load_config(self.model).get_text_config().vocab_size)
            return self._tokenizer_cache

    def _decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer()[0].decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _close(self, ids: Sequence[int], region: str, currency: str | None, cap: int) -> list[int]:
        """`ids` (a constrained answer cut by the cap or the loop guard) completed to an object of the
        region's schema within `cap` tokens (`constrained.closing_tokens`, as `RegionConstraint` does
        in process): the longest prefix whose closing fits, then the closing."""
        from finscribe.constrained import _lex, _xgrammar, closing_tokens, compiled_grammar

        tokenizer, vocab_size = self._tokenizer()
        grammar = compiled_grammar(tokenizer, region, vocab_size=vocab_size, eos_token_ids=sorted(self.eos_token_ids),
                                   currency=currency)
        matcher, info = _xgrammar().GrammarMatcher(grammar), grammar.tokenizer_info
        kept = 0
        while kept < len(ids) and matcher.accept_token(ids[kept]):
            kept += 1
        while kept >= 0:
            lex = _lex((False, False), b"".join(info.decoded_vocab[t] for t in ids[:kept]))
            closing = closing_tokens(matcher, info, lex, limit=max(0, cap - kept))
            if closing is not None:
                return [*ids[:kept], *closing]
            if kept:
                matcher.rollback(1)
            kept -= 1
        raise EngineError(f"the {region} answer cannot be closed within --max-new-tokens {cap}; raise it")

    def predict(self, images: Sequence[Any], region: str, *, max_new_tokens: int = 512,
                repetition_window: int = 128, prompts: Sequence[str] | None = None,
                regions: Sequence[str] | None = None, constrained: bool = False, currency: str | None = None,
                progress: Any = None) -> list[Prediction]:
        """`inference.predict`'s contract (greedy only), every image a concurrent request."""
        regions = list(regions) if regions is not None else [region] * len(images)
        prompts = list(prompts) if prompts is not None else [prompt_for(r) for r in regions]
        names = [str(image) if isinstance(image, (str, Path)) else f"image {i}" for i, image in enumerate(images)]

        def one(i: int) -> Prediction:
            prediction = self.generate(images[i], prompts[i], regions[i], max_new_tokens=max_new_tokens,
                                       repetition_window=repetition_window,
                                       constrained=constrained and prompts[i] != OCR_PROMPT,
                                       currency=currency, name=names[i])
            if progress is not None:
                progress.update(1)
            return prediction

        return list(self.pool.map(one, range(len(images))))

    def predict_records(self, records: Sequence[dict[str, Any]], generation: GenerationArgs, *,
                        show_progress: bool = True, accept: Callable[[str, dict[str, Any]], bool] | None = None
                        ) -> list[Prediction]:
        """`inference.predict_records`'s contract: one Prediction per record, in record order."""
        del accept  # greedy: one candidate, nothing to choose (beams > 1 is refused by GenerationArgs)
        for i, record in enumerate(records):
            for key in ("image", "region"):
                if key not in record:
                    raise ValueError(f"record {i} ({record.get('source_id', '?')}): missing key {key!r}")
        with tqdm(total=len(records), desc="predict (vllm)", unit="img", disable=not show_progress) as bar:
            return self.predict([r["image"] for r in records], "", regions=[r["region"] for r in records],
                                prompts=[r.get("prompt") or prompt_for(r["region"]) for r in records],
                                max_new_tokens=generation.max_new_tokens, repetition_window=generation.repetition_window,
                                constrained=generation.constrained, progress=bar)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()
        if self.server is not None:
            self.server.stop()


def _eos_ids(model: str) -> set[int]:
    """The checkpoint's EOS ids (generation_config.json, else config.json), for the loop guard."""
    for name in ("generation_config.json", "config.json"):
        try:
            config = json.loads((Path(model) / name).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        eos = config.get("eos_token_id", (config.get("text_config") or {}).get("eos_token_id"))
        if eos is not None:
            return {eos} if isinstance(eos, int) else set(eos)
    return set()


def connect(generation: GenerationArgs, *, log_path: str | Path | None = None) -> VLLMEngine:
    """A `VLLMEngine` for `generation`: on `--engine-url`, or on a server started here (from
    `.venv-vllm`), which the engine's `close()` stops. Call it from a thread that lives as long as
    the server should (the main thread): see `VLLMServer.start`."""
    check_servable(generation.model)
    if generation.engine_url:
        return VLLMEngine(generation.engine_url, generation.model, concurrency=generation.batch_size)
    server = VLLMServer(generation.model, dtype=generation.dtype, device=generation.device,
                        extra_args=generation.engine_args, log_path=log_path)
    print(f"starting vLLM on {generation.model} (log: {server.log_path}) ...", file=sys.stderr)
    server.start()
    try:
        return VLLMEngine(server.url, generation.model, concurrency=generation.batch_size, server=server)
    except BaseException:
        server.stop()
        raise


@contextmanager
def open_engine(generation: GenerationArgs, *, log_path: str | Path | None = None) -> Iterator[VLLMEngine]:
    """`connect`, closed (and its server stopped) on exit."""
    engine = connect(generation, log_path=log_path)
    try:
        yield engine
    finally:
        engine.close()
