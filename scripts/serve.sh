#!/usr/bin/env bash
# Start the app (http://localhost:8501) with the browser's upload limit derived from the zip limit the server
# enforces (DEFECTAUG_MAX_ZIP_BYTES, default 2 GiB): a browser then refuses a larger file before sending it,
# instead of the server holding it first. PYTHON and STREAMLIT name the interpreter and the launcher to use.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
STREAMLIT="${STREAMLIT:-streamlit}"
MAX_MB="$("$PYTHON" -m core upload-limit)"
exec "$STREAMLIT" run app.py --server.maxUploadSize="$MAX_MB" "$@"
