#!/usr/bin/env bash
# One command from a fresh clone to a fine-tuned model and a base-vs-fine-tuned report:
# set-up (idempotent), then `finscribe quickstart` with any flags given here, e.g.
#   bash scripts/quickstart.sh                                     # CPU, the tiny reader (time: README)
#   FINSCRIBE_TORCH=torch bash scripts/quickstart.sh --model PaddlePaddle/PaddleOCR-VL   # GPU, real model
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/finscribe quickstart "$@"
