#!/usr/bin/env bash
# Install Lepton with its test dependencies and run the whole test suite,
# slow tests included. Arguments go to pytest, e.g.  bash scripts/test.sh -m "not slow"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh ".[test]"
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest --durations=15 "$@"
