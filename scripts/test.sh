#!/usr/bin/env bash
# Install Lepton with its test dependencies and run the whole test suite,
# slow tests included (those that start a real vLLM too). Arguments go to pytest, e.g.  bash scripts/test.sh -m "not slow"
set -euo pipefail
cd "$(dirname "$0")/.."
# vLLM too (CPU build, ~8 minutes the first time): the tests marked `vllm` start a real one.
bash scripts/install_vllm.sh ".[test,vllm]"
# The third-party plugin of plugins/ installs like any other (its tests run with ours).
.venv/bin/pip install -q --no-deps -e plugins/lepton-finance-news
# The widget's browser tests drive Debian's chromium (never a downloaded browser).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
  else
    echo "note: /usr/bin/chromium is missing, so the browser tests will be skipped;" \
         "install it with: sudo apt-get install -y --no-install-recommends chromium" >&2
  fi
fi
# The PostgreSQL store's tests start a throwaway server from Debian's postgresql programs.
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql
  else
    echo "note: PostgreSQL's server programs are missing, so the PostgreSQL tests will fail;" \
         "install them with: sudo apt-get install -y --no-install-recommends postgresql" >&2
  fi
fi
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest --durations=15 "$@"
