#!/usr/bin/env bash
# Install everything the tests need on a fresh machine (the README's test command then runs pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh           # the app's install, as scripts/app.sh and the Docker image run it
.venv/bin/pip install -q -r requirements-dev.txt
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  # the browser test drives the distribution's Chromium; never a downloaded browser
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "could not install chromium: the browser test will be skipped (it fails where DEFECTAUG_REQUIRE_E2E=1, as in CI)"
fi
