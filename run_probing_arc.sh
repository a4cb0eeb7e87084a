#!/usr/bin/env bash
# Probe a model on ARC with STREET's reasoning annotations, per tree depth.
# Offline default: the hand-written STREET-format records shipped in data/arc_offline (10 test
# questions) and a small randomly initialised Llama-architecture checkpoint built over their
# words: the pipeline end to end, not a finding (see the README).
# Edit the variables below, or set them in the environment.
set -euo pipefail
cd "$(dirname "$0")"

DATA=${DATA:-data/arc_offline}             # a folder with reasoning_annotated_{train,dev,test}.jsonl
MODEL=${MODEL:-runs/models/word-llama-arc} # built here when missing (make_data.py llama)
OUT=${OUT:-runs/probing-arc}
ICL=${ICL:-2}                              # in-context examples from train; 0 = fine-tuned setting
FOLDS=${FOLDS:-3}                          # 3: the offline set has 3-4 questions per depth
N_EXAMPLES=${N_EXAMPLES:-1024}             # at most this many questions per depth
LAYERS=${LAYERS:-}                         # e.g. 0-16 (0-based); empty = all
DEVICE=${DEVICE:-auto}
DTYPE=${DTYPE:-auto}
SEED=${SEED:-0}
EXTRA=${EXTRA:-}

# The paper's setting: STREET's ARC files and LLaMA-7B, 4 shots, layers 0-16, fp16 on a GPU:
# DATA=data/street/arc
# MODEL=/path/to/llama-7b-hf
# ICL=4
# FOLDS=5
# LAYERS=0-16
# DEVICE=cuda
# DTYPE=float16

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
if [ ! -f "$MODEL/config.json" ] && [ "$MODEL" = runs/models/word-llama-arc ]; then
  echo "== building a random-init Llama-architecture model over the data's words -> $MODEL"
  "$PYTHON" make_data.py llama --data "$DATA" --out "$MODEL" --seed "$SEED"
fi
LAYER_FLAGS=()
[ -n "$LAYERS" ] && LAYER_FLAGS=(--layers "$LAYERS")
echo "== probing $MODEL on $DATA (icl $ICL) -> $OUT"
# shellcheck disable=SC2086  # EXTRA is a list of flags
"$PYTHON" probe.py --task arc --data "$DATA" --model "$MODEL" --icl "$ICL" --folds "$FOLDS" \
  --n-examples "$N_EXAMPLES" "${LAYER_FLAGS[@]}" --device "$DEVICE" --dtype "$DTYPE" --seed "$SEED" \
  --out "$OUT" $EXTRA
