#!/usr/bin/env bash
# Attention visualisation on the k-th smallest task: the original model (the tiny GPT-2's
# architecture randomly initialised, or a pretrained model) and each fine-tuned model.
# Edit the variables below, or set them in the environment.
set -euo pipefail
cd "$(dirname "$0")"

FINETUNED=${FINETUNED:-runs/finetune-tiny}  # run_finetune_gpt2.sh's OUT: models in $FINETUNED/<task>/model
TASKS=${TASKS:-"min01"}
ORIGINAL=${ORIGINAL:-random}                # random: the first fine-tuned model's architecture,
                                            # randomly initialised; or a hub id / dir (e.g. gpt2)
OUT=${OUT:-runs/attnvisual-gpt2}
N_EXAMPLES=${N_EXAMPLES:-1024}
DEVICE=${DEVICE:-auto}
SEED=${SEED:-0}

# The paper's setting: GPT-2 small fine-tuned per k (run_finetune_gpt2.sh's paper block) and the
# pretrained GPT-2 as the original model:
# FINETUNED=runs/finetune-gpt2
# TASKS="min00 min01 min02 min03 min04 min05 min06 min07"
# ORIGINAL=gpt2
# DEVICE=cuda

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
FIRST_TASK=${TASKS%% *}
COMMON=(--n-examples "$N_EXAMPLES" --device "$DEVICE" --seed "$SEED")
for TASK in $TASKS; do
  echo "== original model on $TASK -> $OUT/original/$TASK"
  if [ "$ORIGINAL" = random ]; then
    "$PYTHON" attn_visual.py --model "$FINETUNED/$FIRST_TASK/model" --random-init \
      --k "${TASK#min}" "${COMMON[@]}" --out "$OUT/original/$TASK"
  else
    "$PYTHON" attn_visual.py --model "$ORIGINAL" --k "${TASK#min}" "${COMMON[@]}" --out "$OUT/original/$TASK"
  fi
  echo "== $FINETUNED/$TASK/model -> $OUT/$TASK"
  "$PYTHON" attn_visual.py --model "$FINETUNED/$TASK/model" "${COMMON[@]}" --out "$OUT/$TASK"
done
