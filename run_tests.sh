#!/usr/bin/env bash
# Run the test suite. Installs what it needs into ./.venv on first use (a CPU build of torch where
# one is at hand), then runs pytest. Offline apart from the package index.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
# torch first and pinned: an unpinned `torch` would pull the newest CUDA build (several GB).
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -r requirements.txt -r requirements-dev.txt -c constraints.txt

export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m pytest "$@"
