#!/usr/bin/env bash
# Probe a model on ProofWriter: in-context (ICL shots) or fine-tuned setting, per bucket.
# Offline default: generate ProofWriter-format data and a small randomly initialised
# Llama-architecture checkpoint, then run the 4-shot probe on them (the pipeline end to end; an
# untrained model answers at chance, so its probing scores mean little: see the README).
# Edit the variables below, or set them in the environment.
set -euo pipefail
cd "$(dirname "$0")"

DATA=${DATA:-runs/data/proofwriter}        # generated here when missing (make_data.py proofwriter)
MODEL=${MODEL:-runs/models/word-llama}     # built here when missing (make_data.py llama)
OUT=${OUT:-runs/probing-proofwriter}
ICL=${ICL:-4}                              # in-context examples; 0 = the fine-tuned-model setting
N_EXAMPLES=${N_EXAMPLES:-256}              # at most this many questions per bucket (paper: 1024)
LAYERS=${LAYERS:-}                         # e.g. 0-16,19,28 (0-based); empty = all
DEVICE=${DEVICE:-auto}
DTYPE=${DTYPE:-auto}
SEED=${SEED:-0}
EXTRA=${EXTRA:-}

# The paper's setting: the real ProofWriter release (CWA) and LLaMA-7B, 4 shots, fp16 on a GPU:
# DATA=data/proofwriter-dataset-V2020.12.3
# MODEL=/path/to/llama-7b-hf
# N_EXAMPLES=1024
# LAYERS=0-16,19,28
# DEVICE=cuda
# DTYPE=float16

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
if [ ! -d "$DATA" ]; then
  echo "== generating ProofWriter-format data -> $DATA"
  "$PYTHON" make_data.py proofwriter --out "$DATA" --seed "$SEED"
fi
if [ ! -f "$MODEL/config.json" ] && [ "$MODEL" = runs/models/word-llama ]; then
  echo "== building a random-init Llama-architecture model over the data's words -> $MODEL"
  "$PYTHON" make_data.py llama --data "$DATA" --out "$MODEL" --seed "$SEED"
fi
LAYER_FLAGS=()
[ -n "$LAYERS" ] && LAYER_FLAGS=(--layers "$LAYERS")
echo "== probing $MODEL on $DATA (icl $ICL) -> $OUT"
# shellcheck disable=SC2086  # EXTRA is a list of flags
"$PYTHON" probe.py --task proofwriter --data "$DATA" --model "$MODEL" --icl "$ICL" \
  --n-examples "$N_EXAMPLES" "${LAYER_FLAGS[@]}" --device "$DEVICE" --dtype "$DTYPE" --seed "$SEED" \
  --out "$OUT" $EXTRA
