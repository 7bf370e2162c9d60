#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: a virtualenv in .venv with the CPU build of torch 2.13.0
# installed FIRST (an unpinned torch would pull GBs of CUDA packages), then FinScribe itself.
# All extras are installed (quant: torchao; serve: FastAPI/uvicorn; dev: tests; bench: benchmark-only engines).
# On a GPU machine, set FINSCRIBE_TORCH="torch" (or a CUDA build) before running this.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.finscribe-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -m pip install -q "${FINSCRIBE_TORCH:-torch==2.13.0}" 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -m pip install -q -e ".[dev,quant,serve,bench]" 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c "import torch, transformers, finscribe; print('finscribe set up: torch', torch.__version__, '| transformers', transformers.__version__)"
  touch "$stamp"
fi
