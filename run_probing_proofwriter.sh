#!/usr/bin/env bash
# Probe a model on ProofWriter: in-context (ICL shots) or fine-tuned setting, per bucket.
# Offline default: generate ProofWriter-format data, train the embedded tiny Llama on its
# depth <= 1 questions (finetune_gpt2.py --task proofwriter), then probe that model without shots.
# Read the fine-tuning table it prints: a model near chance gives probing scores that mean little
# (the probe warns), and the text-only control shows what wording alone explains.
# Edit the variables below, or set them in the environment.
set -euo pipefail
cd "$(dirname "$0")"

DATA=${DATA:-runs/data/proofwriter}        # generated here when missing (make_data.py proofwriter)
N_THEORIES=${N_THEORIES:-10000}            # theories to generate (70/10/20 split over 5 depths)
MODEL=${MODEL:-runs/finetune-proofwriter/model}   # trained here when missing (the default only)
TRAIN_STEPS=${TRAIN_STEPS:-2000}           # fine-tuning steps of the tiny model (batch 64)
OUT=${OUT:-runs/probing-proofwriter}
ICL=${ICL:-0}                              # in-context examples; 0 = the fine-tuned-model setting
N_EXAMPLES=${N_EXAMPLES:-256}              # at most this many questions per bucket (paper: 1024)
LAYERS=${LAYERS:-}                         # e.g. 0-16,19,28 (0-based); empty = all
DEVICE=${DEVICE:-auto}
DTYPE=${DTYPE:-auto}
SEED=${SEED:-0}
EXTRA=${EXTRA:-}

# The paper's setting: the real ProofWriter release (CWA) and LLaMA-7B, 4 shots, fp16 on a GPU:
# DATA=data/proofwriter-dataset-V2020.12.3
# MODEL=/path/to/llama-7b-hf
# ICL=4
# N_EXAMPLES=1024
# LAYERS=0-16,19,28
# DEVICE=cuda
# DTYPE=float16

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
if [ ! -d "$DATA" ]; then
  echo "== generating ProofWriter-format data -> $DATA"
  "$PYTHON" make_data.py proofwriter --out "$DATA" --n-theories "$N_THEORIES" --seed "$SEED"
fi
if [ ! -f "$MODEL/config.json" ] && [ "$MODEL" = runs/finetune-proofwriter/model ]; then
  echo "== fine-tuning the tiny Llama on depth <= 1 questions -> $(dirname "$MODEL")"
  "$PYTHON" finetune_gpt2.py --task proofwriter --model tiny --data "$DATA" --steps "$TRAIN_STEPS" \
    --device "$DEVICE" --dtype "$DTYPE" --seed "$SEED" --out "$(dirname "$MODEL")"
fi
LAYER_FLAGS=()
[ -n "$LAYERS" ] && LAYER_FLAGS=(--layers "$LAYERS")
echo "== probing $MODEL on $DATA (icl $ICL) -> $OUT"
# shellcheck disable=SC2086  # EXTRA is a list of flags
"$PYTHON" probe.py --task proofwriter --data "$DATA" --model "$MODEL" --icl "$ICL" \
  --n-examples "$N_EXAMPLES" "${LAYER_FLAGS[@]}" --device "$DEVICE" --dtype "$DTYPE" --seed "$SEED" \
  --out "$OUT" $EXTRA
