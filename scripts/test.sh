#!/usr/bin/env bash
# Set up (if needed) and run the default test suite: fast, offline. Extra args go to pytest
# (e.g. `bash scripts/test.sh -m slow` for the long runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Debian's Chromium for the web-page test (tests/test_browser.py); without it that test skips and says why.
bash scripts/install_browser.sh >/tmp/finscribe-install-browser.log 2>&1 \
  || echo "warning: chromium could not be installed (see /tmp/finscribe-install-browser.log); the browser test will skip"
exec .venv/bin/python -m pytest -q "$@"
