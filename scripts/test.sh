#!/usr/bin/env bash
# Set up (if needed) and run the default test suite: fast, offline. Extra args go to pytest
# (e.g. `bash scripts/test.sh -m slow` for the long runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
