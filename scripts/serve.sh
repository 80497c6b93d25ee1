#!/usr/bin/env bash
# Install Lepton (first run only does real work) and start the assistant:
# API on http://127.0.0.1:8000/v1, embedded model, embedded Chroma, SQLite.
# Arguments go to `lepton serve`, e.g.  bash scripts/serve.sh --port 9000
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh .
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
exec .venv/bin/lepton serve "$@"
