#!/usr/bin/env bash
# bench/same_numbers_diff.sh BASE_OUT NEW_OUT: compare two bench/same_numbers.sh output folders.
# Prints OK (exit 0), or every
# difference (exit 1):
#   - exit codes in times.tsv (wall times are not compared);
#   - each NAME.log, after dropping progress bars and warnings' source lines and masking timings
#     ("in 1.2 s", "28.84 seconds", "4 min 5 s"), the checkout's absolute path and runs of spaces;
#   - every results.json and predictions.jsonl: the same keys and the same values, walked in
#     Python, ignoring the keys seconds / *_seconds / seconds_per_prompt / memory / versions /
#     features_cached / timing / time / wall, and path strings under model / data / out / dir /
#     path / shots_data / dump.
# TOL=1e-9 lets floats differ by that much (absolute or relative); the default is exact.
# MAX_SHOWN=20: differences shown per file.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 BASE_OUT NEW_OUT" >&2
  exit 2
fi
exec python3 - "$1" "$2" <<'PY'
import difflib, json, math, os, re, sys

base, new = sys.argv[1:3]
TOL = float(os.environ.get("TOL", "0"))
MAX_SHOWN = int(os.environ.get("MAX_SHOWN", "20"))
IGNORED = {"seconds", "seconds_per_prompt", "memory", "versions", "features_cached", "timing",
           "time", "wall", "wall_seconds", "elapsed"}
PATH_KEYS = {"model", "data", "out", "dir", "path", "shots_data", "dump", "dump_examples",
             "output", "model_path", "data_path"}
problems = []


def ignored(key, value):
    key = str(key)
    if key in IGNORED or key.endswith("_seconds") or key.startswith("seconds_"):
        return True
    return key in PATH_KEYS and isinstance(value, str)


def same_number(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    return TOL > 0 and abs(a - b) <= TOL * max(1.0, abs(a), abs(b))


def walk(a, b, where, out):
    """Append (where, base value, new value) for every difference between a and b."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in b:
                if not ignored(key, a[key]):
                    out.append((f"{where}/{key}", a[key], "<missing>"))
            elif key not in a:
                if not ignored(key, b[key]):
                    out.append((f"{where}/{key}", "<missing>", b[key]))
            elif not (ignored(key, a[key]) and ignored(key, b[key])):
                walk(a[key], b[key], f"{where}/{key}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append((f"{where} (length)", len(a), len(b)))
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, f"{where}[{i}]", out)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not (
            isinstance(a, bool) != isinstance(b, bool)):
        if not same_number(a, b):
            out.append((where, a, b))
    elif type(a) is not type(b) or a != b:
        out.append((where, a, b))


def short(value):
    text = json.dumps(value) if not isinstance(value, str) or value == "<missing>" else repr(value)
    if value == "<missing>":
        text = value
    return text if len(text) <= 120 else text[:117] + "..."


def report(name, diffs):
    if diffs:
        problems.append(f"{name}: {len(diffs)} difference(s)")
        for where, x, y in diffs[:MAX_SHOWN]:
            problems.append(f"    {where or '/'}: {short(x)} -> {short(y)}")
        if len(diffs) > MAX_SHOWN:
            problems.append(f"    ... {len(diffs) - MAX_SHOWN} more")


def load_json(path):
    with open(path) as f:
        if path.endswith(".jsonl"):
            return [json.loads(line) for line in f if line.strip()]
        return json.load(f)


def repo_of(folder):
    """The checkout same_numbers.sh ran in, from info.txt's first line."""
    try:
        with open(os.path.join(folder, "info.txt")) as f:
            m = re.match(r"# (?:run_all|same_numbers)\.sh (\S+) -> ", f.readline())
            return m.group(1) if m else None
    except OSError:
        return None


PROGRESS = re.compile(r"\d+%\|[^|]*\||\d+/\d+ \[\d|[\d.]+ ?(it|batch|prompt|example|s)/s\b|s/it\b")
SOURCE_LINE = re.compile(r"^\s*\S+\.py:\d+: \w*Warning")
TIME = re.compile(r"(\d+(\.\d+)?\s*(h|min|mins|minutes)\s*)?\b\d+(\.\d+)?(e-?\d+)?\s*"
                  r"(s|sec|secs|seconds|ms|min|mins|minutes|h|hours)\b")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")   # nested progress bars move the cursor
SOURCE_REF = re.compile(r"(\S+\.py):\d+")


def normalised(path, repo):
    with open(path, errors="replace") as f:
        text = f.read()
    lines = []
    for segment in re.split(r"[\r\n]", ANSI.sub("", text)):
        if PROGRESS.search(segment):
            # tqdm bars share a line with the next output: keep what follows the last bar
            tail = re.split(r"\]\s{2,}|\]$", segment)[-1] if "]" in segment else ""
            if not tail.strip() or PROGRESS.search(tail):
                continue
            segment = tail
        if SOURCE_LINE.match(segment):
            segment = SOURCE_REF.sub(r"\1:<line>", segment)
        if repo:
            segment = segment.replace(repo, "<REPO>")
        segment = TIME.sub("<time>", segment)
        segment = re.sub(r"\s+", " ", segment).strip()
        if segment:
            lines.append(segment)
    return lines


def files_under(folder):
    found = set()
    for root, _, names in os.walk(folder):
        for name in names:
            found.add(os.path.relpath(os.path.join(root, name), folder))
    return found


def rcs(folder):
    rows = {}
    try:
        with open(os.path.join(folder, "times.tsv")) as f:
            for line in f:
                name, rc, *_ = line.rstrip("\n").split("\t")
                rows[name] = rc
    except OSError:
        problems.append(f"{folder}: no times.tsv")
    return rows


base_rc, new_rc = rcs(base), rcs(new)
for name in sorted(set(base_rc) | set(new_rc)):
    if base_rc.get(name) != new_rc.get(name):
        problems.append(f"{name}: exit code {base_rc.get(name, '<not run>')} -> {new_rc.get(name, '<not run>')}")

base_repo, new_repo = repo_of(base), repo_of(new)
base_files, new_files = files_under(base), files_under(new)
for rel in sorted(base_files | new_files):
    if rel in ("times.tsv", "info.txt"):
        continue
    if rel not in new_files or rel not in base_files:
        problems.append(f"{rel}: only in {'base' if rel in base_files else 'new'}")
        continue
    a, b = os.path.join(base, rel), os.path.join(new, rel)
    if rel.endswith(".log"):
        x, y = normalised(a, base_repo), normalised(b, new_repo)
        if x != y:
            lines = list(difflib.unified_diff(x, y, "base/" + rel, "new/" + rel, lineterm="", n=1))
            problems.append(f"{rel}: printed output differs")
            problems.extend("    " + line for line in lines[:3 * MAX_SHOWN])
            if len(lines) > 3 * MAX_SHOWN:
                problems.append(f"    ... {len(lines) - 3 * MAX_SHOWN} more diff lines")
    elif rel.endswith(".json") or rel.endswith(".jsonl"):
        try:
            x, y = load_json(a), load_json(b)
        except (OSError, ValueError) as error:
            problems.append(f"{rel}: unreadable ({error})")
            continue
        diffs = []
        walk(x, y, "", diffs)
        report(rel, diffs)
    else:
        with open(a, "rb") as f, open(b, "rb") as g:
            if f.read() != g.read():
                problems.append(f"{rel}: bytes differ")

if problems:
    print("\n".join(problems))
    print(f"DIFFERENT: {sum(1 for p in problems if not p.startswith('    '))} item(s)")
    sys.exit(1)
n_logs = sum(1 for f in base_files if f.endswith(".log"))
n_json = sum(1 for f in base_files if f.endswith((".json", ".jsonl")))
print(f"OK ({n_logs} logs, {n_json} json/jsonl files, {len(base_rc)} jobs; tolerance {TOL or 'exact'})")
PY
