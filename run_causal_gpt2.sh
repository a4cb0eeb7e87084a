#!/usr/bin/env bash
# Causal analysis on the k-th smallest task: head entropy, pruning curves and the attention-flow
# case study for each fine-tuned model. Edit the variables below, or set them in the environment.
set -euo pipefail
cd "$(dirname "$0")"

FINETUNED=${FINETUNED:-runs/finetune-tiny}  # run_finetune_gpt2.sh's OUT: models in $FINETUNED/<task>/model
TASKS=${TASKS:-"min01"}
OUT=${OUT:-runs/causal-gpt2}
N_EXAMPLES=${N_EXAMPLES:-1024}
RANDOM_REPEATS=${RANDOM_REPEATS:-10}         # random pruning draws per level
DEVICE=${DEVICE:-auto}
SEED=${SEED:-0}

# The paper's setting: GPT-2 small fine-tuned per k (run_finetune_gpt2.sh's paper block):
# FINETUNED=runs/finetune-gpt2
# TASKS="min01"
# DEVICE=cuda

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
for TASK in $TASKS; do
  echo "== $FINETUNED/$TASK/model -> $OUT/$TASK"
  "$PYTHON" causal.py --model "$FINETUNED/$TASK/model" --n-examples "$N_EXAMPLES" \
    --random-repeats "$RANDOM_REPEATS" --device "$DEVICE" --seed "$SEED" --out "$OUT/$TASK"
done
