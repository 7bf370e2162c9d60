#!/usr/bin/env bash
# Idempotent: install Debian's headless-capable Chromium for the browser test
# (`pytest -m browser tests/test_browser.py`). The test drives it through the `playwright`
# python package with executable_path=/usr/bin/chromium, so Playwright's own browser download
# (which needs the internet) is never used. Without it the browser test skips with a reason.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  echo "chromium present: $(command -v chromium)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium
command -v chromium
