#!/usr/bin/env bash
# Run the test suite. Installs what it needs into ./.venv on first use, then runs pytest.
set -euo pipefail
cd "$(dirname "$0")"
EXTRA_REQUIREMENTS="-r requirements-dev.txt"
source scripts/setup_venv.sh
export HF_HUB_OFFLINE=1
exec "$PYTHON" -m pytest "$@"
