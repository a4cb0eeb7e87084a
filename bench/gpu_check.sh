#!/usr/bin/env bash
# The prepared GPU check (issue 22 item 5): at most about 8 minutes on one GPU; prints a summary and
# writes it to $OUT/gpu_check.json and $OUT/gpu_check.log (OUT is the device tool's output folder, else runs/gpu_check).
# The 4-shot ProofWriter probe needs the offline model folder (MODEL_DIR, made by
# `python make_data.py smollm2 --out runs/models/smollm2`); it is skipped with a line when missing.
# Dry run on a CPU at tiny sizes: bash bench/gpu_check.sh --device cpu
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
MODEL_DIR=${MODEL_DIR:-runs/models/smollm2}
OUT=${OUT:-runs/gpu_check}
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
mkdir -p "$OUT"
"$PYTHON" bench/gpu_check.py --model-dir "$MODEL_DIR" --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
