#!/usr/bin/env bash
# Install the app's dependencies into .venv/ (the first half of scripts/app.sh; the Docker image runs it at build).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q -r requirements.txt
