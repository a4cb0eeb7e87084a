#!/usr/bin/env bash
# Probe GPT-2 models on the k-th smallest task: each fine-tuned model of run_finetune_gpt2.sh
# (one k each, read from its task.json), and optionally a pretrained model (or, PRETRAINED=random,
# the fine-tuned architecture randomly initialised) for every k, compared with each fine-tuned one.
# Edit the variables below, or set them in the environment: TASKS="min00 min01" bash run_probing_gpt2.sh
set -euo pipefail
set -f   # no filename expansion: $EXTRA is split into flags, never matched against files
cd "$(dirname "$0")"

FINETUNED=${FINETUNED:-runs/finetune-tiny}  # run_finetune_gpt2.sh's OUT: models in $FINETUNED/<task>/model
TASKS=${TASKS:-"min01"}
PRETRAINED=${PRETRAINED:-}                  # e.g. gpt2: probed for every k in 0..L/2-1 (--all-k);
                                            # random: the first fine-tuned model's architecture,
                                            # randomly initialised (written to $OUT/random-init-model)
OUT=${OUT:-runs/probing-gpt2}
N_EXAMPLES=${N_EXAMPLES:-1024}              # the paper probes 1024 test examples
DEVICE=${DEVICE:-auto}
DTYPE=${DTYPE:-auto}
SEED=${SEED:-0}
EXTRA=${EXTRA:-}                            # other probe.py flags, e.g. "--per-head --layers 0-5"

# The paper's setting: real GPT-2 small fine-tuned per k on a GPU (run_finetune_gpt2.sh's paper
# block), then probed here, plus the pretrained GPT-2 for every k:
# FINETUNED=runs/finetune-gpt2
# TASKS="min00 min01 min02 min03 min04 min05 min06 min07"
# PRETRAINED=gpt2
# DEVICE=cuda

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
for TASK in $TASKS; do
  echo "== $FINETUNED/$TASK/model -> $OUT/$TASK"
  # shellcheck disable=SC2086  # EXTRA is a list of flags
  "$PYTHON" probe.py --task ksmallest --model "$FINETUNED/$TASK/model" --n-examples "$N_EXAMPLES" \
    --device "$DEVICE" --dtype "$DTYPE" --seed "$SEED" --out "$OUT/$TASK" $EXTRA
done
if [ -n "$PRETRAINED" ]; then
  ORIGINAL=$PRETRAINED NAME=pretrained
  if [ "$PRETRAINED" = random ]; then
    ORIGINAL=$OUT/random-init-model NAME=random-init
    FIRST_TASK=${TASKS%% *}
    echo "== $FINETUNED/$FIRST_TASK/model's architecture, randomly initialised -> $ORIGINAL"
    "$PYTHON" make_data.py random-init --model "$FINETUNED/$FIRST_TASK/model" --seed "$SEED" \
      --out "$ORIGINAL"
  fi
  echo "== $ORIGINAL (not fine-tuned), every k -> $OUT/$NAME"
  # shellcheck disable=SC2086
  "$PYTHON" probe.py --task ksmallest --model "$ORIGINAL" --all-k --n-examples "$N_EXAMPLES" \
    --device "$DEVICE" --dtype "$DTYPE" --seed "$SEED" --out "$OUT/$NAME" $EXTRA
  for TASK in $TASKS; do
    echo "== fine-tuned against $NAME on $TASK"
    "$PYTHON" compare.py "$OUT/$TASK" "$OUT/$NAME"
  done
fi
