#!/usr/bin/env bash
# Install the app's dependencies on a fresh machine, then start it (http://localhost:8501) with scripts/serve.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PYTHON=.venv/bin/python STREAMLIT=.venv/bin/streamlit exec scripts/serve.sh "$@"
