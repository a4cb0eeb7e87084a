#!/usr/bin/env bash
# The main job on the embedded default, offline on a CPU: train the tiny GPT-2 on min01 (or reuse
# its checkpoint), probe its attention for the reasoning tree, print one table.
set -euo pipefail
cd "$(dirname "$0")"

TASK=${TASK:-min01}
TRAIN_OUT=${TRAIN_OUT:-runs/finetune-tiny/$TASK}  # where run_finetune_gpt2.sh puts it; model in $TRAIN_OUT/model
PROBE_OUT=${PROBE_OUT:-runs/probing-gpt2/$TASK}      # where run_probing_gpt2.sh puts it
SEED=${SEED:-0}

source scripts/setup_venv.sh
if [ -f "$TRAIN_OUT/model/config.json" ] && [ -f "$TRAIN_OUT/results.json" ]; then
  echo "== reusing the fine-tuned model in $TRAIN_OUT/model (delete it to train again)"
else
  echo "== fine-tuning the tiny GPT-2 on $TASK -> $TRAIN_OUT (about 4 minutes on 2 CPU cores)"
  "$PYTHON" finetune_gpt2.py --task "$TASK" --model tiny --seed "$SEED" --out "$TRAIN_OUT"
fi
echo "== probing $TRAIN_OUT/model -> $PROBE_OUT"
mkdir -p "$(dirname "$PROBE_OUT")"
# The probe's full tables go to a log beside its folder (a file of ours inside would make the
# folder look foreign to probe.py); the demo prints the one-table summary below.
"$PYTHON" probe.py --task ksmallest --model "$TRAIN_OUT/model" --seed "$SEED" --out "$PROBE_OUT" \
  > "$PROBE_OUT.log"
"$PYTHON" -m mechprobe.analysis.demo_table "$TRAIN_OUT/results.json" "$PROBE_OUT/results.json"
