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

The repetition guard runs on the returned token ids (`repetition.LoopDetector`, step by step as
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
import sys
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
from finscribe.generation_args import GenerationArgs
from finscribe.inference import Prediction
from finscribe.prompting import load_image
from finscribe.repetition import LoopDetector
from finscribe.vllm_server import (  # noqa: F401  (the server side; re-exported for callers of this module)
    VLLM_PYTHON,
    EngineError,
    EngineStartError,
    EngineUnavailableError,
    VLLMServer,
    _free_port,
    check_servable,
)

# ----------------------------------------------------------------------------- the client

KEEPALIVE_SECONDS = 2.0  # below the server's idle timeout (vLLM: 5 s), see VLLMEngine.__init__


def _data_url(image: Any, name: str) -> str:
    buffer = io.BytesIO()
    load_image(image, name).save(buffer, format="PNG")  # the fitted pixels both engines see
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def loop_stop(token_ids: Sequence[int], eos_token_ids: set[int], window: int) -> int | None:
    """Where `repetition.RepetitionGuard` would have stopped this generation (tokens kept), or None:
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
        # vLLM's server drops a connection idle for 5 s (VLLM_HTTP_TIMEOUT_KEEP_ALIVE), httpx's default
        # expiry is also 5 s: a pooled connection reused at that instant is closed under the request
        # (CI, 2026-12-05: "Server disconnected without sending a response" with the server alive).
        # The pool lets connections go well before the server does.
        self.client = httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0),
                                   limits=httpx.Limits(max_connections=max(concurrency, 1) + 4,
                                                       keepalive_expiry=KEEPALIVE_SECONDS))
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
            try:
                response = self.client.request(method, self.url + path, json=body)
            except httpx.RemoteProtocolError:
                # Closed without an answer: a kept-alive connection the server (or a balancer in front
                # of it, with its own idle timeout) dropped as it was reused. A greedy request has no
                # side effects, so it is sent once more on a fresh connection; a dead server fails again.
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
