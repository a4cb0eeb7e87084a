#!/usr/bin/env bash
# Robustness on ProofWriter (corrupt.py): draw many subsets of depth-1 questions, probe each, and
# relate its S_P2 to the accuracy change under three corruptions (a noise statement made
# counterfactual, a useful one made counterfactual, the statements shuffled).
# Offline default: the data and model that run_probing_proofwriter.sh prepares (run it first).
# Edit the variables below, or set them in the environment.
set -euo pipefail
cd "$(dirname "$0")"

DATA=${DATA:-runs/data/proofwriter}
MODEL=${MODEL:-runs/finetune-proofwriter/model}
OUT=${OUT:-runs/corrupt-proofwriter}
ICL=${ICL:-0}                   # in-context examples; 0 for a model fine-tuned on the task
REPEATS=${REPEATS:-128}         # subsets drawn (paper: 1024)
LAYERS=${LAYERS:-}              # e.g. 0-16,19,28 (0-based); empty = all
DEVICE=${DEVICE:-auto}
DTYPE=${DTYPE:-auto}
SEED=${SEED:-0}
EXTRA=${EXTRA:-}

# The paper's setting: the real ProofWriter release (CWA) and LLaMA-7B, 4 shots, fp16 on a GPU:
# DATA=data/proofwriter-dataset-V2020.12.3
# MODEL=/path/to/llama-7b-hf
# ICL=4
# REPEATS=1024
# LAYERS=0-16,19,28
# DEVICE=cuda
# DTYPE=float16

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
if [ ! -f "$MODEL/config.json" ] || [ ! -d "$DATA" ]; then
  echo "no model at $MODEL or no data at $DATA: run 'bash run_probing_proofwriter.sh' first" \
       "(it generates both offline), or set MODEL and DATA" >&2
  exit 2
fi
LAYER_FLAGS=()
[ -n "$LAYERS" ] && LAYER_FLAGS=(--layers "$LAYERS")
echo "== robustness of $MODEL on $DATA (icl $ICL, $REPEATS subsets) -> $OUT"
# shellcheck disable=SC2086  # EXTRA is a list of flags
"$PYTHON" corrupt.py --data "$DATA" --model "$MODEL" --icl "$ICL" --repeats "$REPEATS" \
  "${LAYER_FLAGS[@]}" --device "$DEVICE" --dtype "$DTYPE" --seed "$SEED" --out "$OUT" $EXTRA
