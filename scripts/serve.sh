#!/usr/bin/env bash
# Start the app (http://localhost:8501) without installing anything: from a fresh shell, nothing to activate.
#   bash scripts/serve.sh                 # the app on port 8501
#   bash scripts/serve.sh --port 8600     # another port (any other option goes to `streamlit run`)
# It uses the project's .venv/ when there is one (scripts/install.sh makes it), else the python on the PATH, and
# starts the app with the browser's upload limit derived from the zip limit the server enforces
# (DEFECTAUG_MAX_ZIP_BYTES, default 2 GiB): a browser then refuses a larger file before sending it.
# PYTHON and STREAMLIT name the interpreter and the launcher, when set.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then
  PYTHON="${PYTHON:-.venv/bin/python}"
  STREAMLIT="${STREAMLIT:-.venv/bin/streamlit}"
else
  PYTHON="${PYTHON:-python3}"
  STREAMLIT="${STREAMLIT:-streamlit}"
fi
if ! "$PYTHON" -c "import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in ('streamlit', 'torch')))" \
    >/dev/null 2>&1; then
  echo "DefectAug is not installed for $PYTHON (no .venv/ with streamlit and torch here)." >&2
  echo "Install and start it with: bash scripts/app.sh   (about 7 GB in .venv/, minutes, once)" >&2
  exit 1
fi
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --port) args+=("--server.port=$2"); shift 2 ;;
    --port=*) args+=("--server.port=${1#--port=}"); shift ;;
    *) args+=("$1"); shift ;;
  esac
done
MAX_MB="$("$PYTHON" -m core upload-limit)"
exec "$STREAMLIT" run app.py --server.maxUploadSize="$MAX_MB" ${args[@]+"${args[@]}"}
