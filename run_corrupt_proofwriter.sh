#!/usr/bin/env bash
# Robustness on ProofWriter (corrupt.py): draw many subsets of depth-1 questions, probe each, and
# relate its S_P2 to the accuracy change under three corruptions (a noise statement made
# counterfactual, a useful one made counterfactual, the statements shuffled).
# Offline default: SmolLM2-135M-Instruct with 4 fixed shots on generated ProofWriter-format data,
# both made here when missing (as run_probing_proofwriter.sh does). The tiny model trained here
# instead: MODEL=runs/finetune-proofwriter/model ICL=0.
# Edit the variables below, or set them in the environment.
set -euo pipefail
set -f   # no filename expansion: $EXTRA is split into flags, never matched against files
cd "$(dirname "$0")"

DATA=${DATA:-runs/data/proofwriter}        # generated here when missing
N_THEORIES=${N_THEORIES:-10000}
MODEL=${MODEL:-runs/models/smollm2}        # made here when missing (this path or the tiny one)
OUT=${OUT:-runs/corrupt-proofwriter}
ICL=${ICL:-4}                   # in-context examples; 0 for a model fine-tuned on the task
SHOTS=${SHOTS:-fixed}           # fixed: one shot set for all; per-question: the paper
PROMPT=${PROMPT:-plain}         # plain: the paper's text; chat: the chat template
N_EXAMPLES=${N_EXAMPLES:-192}   # depth-1 questions the subsets are drawn from (paper: all)
REPEATS=${REPEATS:-128}         # subsets drawn (paper: 1024)
TRAIN_STEPS=${TRAIN_STEPS:-2000}
LAYERS=${LAYERS:-}              # e.g. 0-16,19,28 (0-based); empty = all
DEVICE=${DEVICE:-auto}
DTYPE=${DTYPE:-auto}
SEED=${SEED:-0}
EXTRA=${EXTRA:-}

# The paper's setting: the real ProofWriter release (CWA) and LLaMA-7B, 4 shots drawn per
# question, fp16 on a GPU:
# DATA=data/proofwriter-dataset-V2020.12.3
# MODEL=/path/to/llama-7b-hf
# ICL=4
# SHOTS=per-question
# N_EXAMPLES=100000
# REPEATS=1024
# LAYERS=0-16,19,28
# DEVICE=cuda
# DTYPE=float16

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
source scripts/prepare_models.sh
prepare_proofwriter_data
prepare_model
if [ ! -f "$MODEL/config.json" ]; then
  echo "no model at $MODEL: set MODEL to a model directory" >&2
  exit 2
fi
LAYER_FLAGS=()
[ -n "$LAYERS" ] && LAYER_FLAGS=(--layers "$LAYERS")
echo "== robustness of $MODEL on $DATA (icl $ICL, $SHOTS shots, $REPEATS subsets) -> $OUT"
# shellcheck disable=SC2086  # EXTRA is a list of flags
"$PYTHON" corrupt.py --data "$DATA" --model "$MODEL" --icl "$ICL" --shots "$SHOTS" \
  --prompt "$PROMPT" --n-examples "$N_EXAMPLES" --repeats "$REPEATS" "${LAYER_FLAGS[@]}" \
  --device "$DEVICE" --dtype "$DTYPE" --seed "$SEED" --out "$OUT" $EXTRA
