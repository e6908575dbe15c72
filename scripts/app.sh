#!/usr/bin/env bash
# Install the app's dependencies on a fresh machine, then start it (http://localhost:8501) with scripts/serve.sh.
# The install runs only when requirements.txt changed since the last one (its hash is kept in .venv/); a restart
# is then just scripts/serve.sh. Options (e.g. --port 8600) go to scripts/serve.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
STAMP=.venv/.requirements.sha256
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  bash scripts/install.sh
  echo "$want" > "$STAMP"
else
  echo "requirements.txt unchanged since the last install: starting without installing"
fi
PYTHON=.venv/bin/python STREAMLIT=.venv/bin/streamlit exec scripts/serve.sh "$@"
