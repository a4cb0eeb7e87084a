#!/usr/bin/env bash
# Fine-tune GPT-2 on k-th smallest tasks: one run per task in TASKS, each into $OUT/<task>/.
# Edit the variables below, or set them in the environment: MODEL=gpt2 bash run_finetune_gpt2.sh
set -euo pipefail
set -f   # no filename expansion: $EXTRA is split into flags, never matched against files
cd "$(dirname "$0")"

MODEL=${MODEL:-tiny}            # tiny = the embedded small GPT-2 trained from scratch; or a hub id / local dir
TASKS=${TASKS:-"min01"}         # minKK, KK the 0-based k: min00 smallest, min01 second smallest, ...
OUT=${OUT:-runs/finetune-$MODEL}
TUNE=${TUNE:-all}               # all | attn | mlp | ln: which parameters are trained
DEVICE=${DEVICE:-auto}          # auto | cpu | cuda | cuda:N
DTYPE=${DTYPE:-auto}            # autocast dtype: auto = bf16 on a GPU that has it, else fp32
SEED=${SEED:-0}
EXTRA=${EXTRA:-}                # any other finetune_gpt2.py flags, e.g. "--steps 500"

# The paper's setting: real GPT-2 small on a GPU, 1e6 examples (98/1/1), 2 epochs, lr 2e-5,
# batch 128, 500 warm-up steps (these are finetune_gpt2.py's defaults for a pretrained model):
# MODEL=gpt2
# TASKS="min00 min01 min02 min03 min04 min05 min06 min07"
# DEVICE=cuda
# EXTRA="--n-train 980000 --epochs 2 --lr 2e-5 --batch-size 128 --warmup 500"

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
for TASK in $TASKS; do
  echo "== $TASK -> $OUT/$TASK"
  # shellcheck disable=SC2086  # EXTRA is a list of flags
  "$PYTHON" finetune_gpt2.py --task "$TASK" --model "$MODEL" --tune "$TUNE" --device "$DEVICE" \
    --dtype "$DTYPE" --seed "$SEED" --out "$OUT/$TASK" $EXTRA
done
