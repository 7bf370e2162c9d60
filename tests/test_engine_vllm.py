"""The vLLM engine's parts that need no vLLM server (fast, default suite): refusals, the loop guard
on returned token ids, start-up and connection failures. tests/test_vllm.py runs a real server."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch

from finscribe.cli import main as cli_main
from finscribe.engine_vllm import (
    EngineError,
    EngineStartError,
    EngineUnavailableError,
    VLLMEngine,
    VLLMServer,
    _free_port,
    check_servable,
    loop_stop,
)
from finscribe.errors import ConfigError
from finscribe.generation_args import GenerationArgs
from finscribe.repetition import RepetitionGuard


def test_a_lora_adapter_is_refused_with_the_fix(tmp_path, capsys, records_jsonl):
    adapter = tmp_path / "lora_out"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "x"}))
    with pytest.raises(EngineError, match=r"LoRA adapter.*finscribe export --model .*--merge"):
        check_servable(str(adapter))
    # the command line says it in one line, before any server starts
    assert cli_main(["evaluate", "--engine", "vllm", "--model", str(adapter), "--data", str(records_jsonl),
                     "--split", "val", "--output-dir", str(tmp_path / "eval")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "finscribe export" in err and "--merge" in err


def test_an_int8_folder_is_refused(tmp_path):
    (tmp_path / "quantization.json").write_text("{}")
    with pytest.raises(EngineError, match="INT8"):
        check_servable(str(tmp_path))


def test_engine_options():
    assert GenerationArgs(model="m", engine_url="http://h:1").engine == "vllm"  # a URL means vLLM
    with pytest.raises(ValueError, match="--beams"):
        GenerationArgs(model="m", engine="vllm", beams=4)
    with pytest.raises(ConfigError, match="drop --engine"):  # stages that run the model in this process
        GenerationArgs(model="m", engine="vllm").load()


@pytest.mark.parametrize("tokens", [
    [5, 6, 7, 2],  # EOS: never stopped
    [9] * 40,  # period 1: stopped once 24 tokens repeat
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] * 5 + [2],  # period 10: three repeats
    [4, 4, 4, 4, 5, 6, 5, 6, 5, 6, 2] + [3] * 30,  # EOS before the run: never stopped
    list(range(3, 40)),  # no loop
])
def test_the_loop_guard_on_token_ids_stops_where_the_transformers_guard_does(tokens):
    eos = 2
    guard = RepetitionGuard(prompt_length=1, batch_size=1, eos_token_ids=[eos])
    ids = torch.tensor([[0]])
    for token in tokens:
        ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
        if bool(guard(ids)[0]):
            break
    assert loop_stop(tokens, {eos}, 128) == guard.stopped_at[0]
    assert loop_stop(np.asarray([9] * 40).tolist(), {eos}, 0) is None  # window 0: guard off


def test_a_server_that_cannot_start_fails_with_its_log_tail(tmp_path):
    # The FinScribe environment has no vLLM: the real server process exits at once.
    server = VLLMServer("finscribe/assets/tiny_reader", device="cpu", python=sys.executable,
                        log_path=tmp_path / "vllm.log", startup_timeout=120)
    with pytest.raises(EngineStartError, match=r"exited with status 1 while starting .*No module named 'vllm'"):
        server.start()
    assert server.exit_status() == 1


def test_a_missing_setup_says_how_to_set_it_up(tmp_path):
    server = VLLMServer("finscribe/assets/tiny_reader", device="cpu", python=tmp_path / "none" / "python")
    with pytest.raises(EngineError, match="scripts/setup_vllm.sh"):
        server.start()


def test_an_unreachable_engine_url_is_unavailable():
    with pytest.raises(EngineUnavailableError, match="unreachable.*retry once it is back"):
        VLLMEngine(f"http://127.0.0.1:{_free_port()}", "finscribe/assets/tiny_reader")


class _DroppingServer(BaseHTTPRequestHandler):
    """An OpenAI-style endpoint whose first `drops` POSTs are closed with no answer, as a server
    closes a kept-alive connection the instant a client reuses it."""

    protocol_version = "HTTP/1.1"
    drops = 1
    posts = 0

    def _answer(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server's name)
        self._answer({"data": [{"id": "reader"}]})

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).posts += 1
        if type(self).posts <= type(self).drops:
            self.close_connection = True  # no status line: "Server disconnected without sending a response"
            return
        self._answer({"ok": type(self).posts})

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("drops, answered", [(1, True), (2, False)])
def test_a_connection_closed_without_an_answer_is_sent_once_more(drops, answered):
    handler = type("Handler", (_DroppingServer,), {"drops": drops, "posts": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        engine = VLLMEngine(f"http://127.0.0.1:{server.server_port}", "reader", eos_token_ids=[2])
        assert engine.client._transport._pool._keepalive_expiry < 5  # let go before vLLM's 5 s idle timeout
        if answered:  # the dropped request went again on a fresh connection
            assert engine._call("POST", "/v1/chat/completions", {"x": 1}) == {"ok": 2}
        else:  # dropped twice: the server is treated as gone, with the way out
            with pytest.raises(EngineUnavailableError, match="unreachable .*RemoteProtocolError.*retry once it is back"):
                engine._call("POST", "/v1/chat/completions", {"x": 1})
        assert handler.posts == 2
    finally:
        server.shutdown()
        server.server_close()


def test_compare_refuses_one_url_for_two_models(tmp_path, records_jsonl):
    from finscribe.data.selection import RecordSelection
    from finscribe.eval.report import CompareConfig, compare

    config = CompareConfig(generation=GenerationArgs(model="finscribe/assets/tiny_reader", engine_url="http://127.0.0.1:9"),
                           records=RecordSelection(data=records_jsonl, split="val"), base="finscribe/assets/tiny_reader",
                           output_dir=tmp_path / "compare")
    with pytest.raises(ConfigError, match="--engine-url serves one"):
        compare(config, show_progress=False)
