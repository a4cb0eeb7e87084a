#!/usr/bin/env bash
# Statement knockout on the k-th smallest task: for each fine-tuned model, the answer's accuracy
# when its question cannot attend to the gold useful statements, as many noise statements, the
# probe's predicted useful / noise statements, the leaves or the root; at every layer and per
# layer window. Edit the variables below, or set them in the environment.
set -euo pipefail
set -f   # no filename expansion: $EXTRA is split into flags, never matched against files
cd "$(dirname "$0")"

FINETUNED=${FINETUNED:-runs/finetune-tiny}  # run_finetune_gpt2.sh's OUT: models in $FINETUNED/<task>/model
TASKS=${TASKS:-"min01"}
OUT=${OUT:-runs/knockout-gpt2}
N_EXAMPLES=${N_EXAMPLES:-1024}
QUERIES=${QUERIES:-question}                # question: from the query token on; all: every position
WINDOW=${WINDOW:-1}                         # layers per window
DEVICE=${DEVICE:-auto}
SEED=${SEED:-0}
EXTRA=${EXTRA:-}                            # other knockout.py flags, e.g. "--knockout-layers 0-1"

# The paper's setting: GPT-2 small fine-tuned per k (run_finetune_gpt2.sh's paper block):
# FINETUNED=runs/finetune-gpt2
# TASKS="min01 min02 min03"
# WINDOW=2
# DEVICE=cuda

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
for TASK in $TASKS; do
  echo "== $FINETUNED/$TASK/model -> $OUT/$TASK"
  # shellcheck disable=SC2086  # EXTRA is a list of flags
  "$PYTHON" knockout.py --model "$FINETUNED/$TASK/model" --n-examples "$N_EXAMPLES" \
    --queries "$QUERIES" --window "$WINDOW" --device "$DEVICE" --seed "$SEED" --out "$OUT/$TASK" $EXTRA
done
