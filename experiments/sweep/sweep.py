"""Adversarial sweep: every entry point with bad, hostile or edge-case input.

    SWEEP_REPO=/path/to/checkout python experiments/sweep/sweep.py [REGEX]

Fixtures live in /tmp/sw_fx, made beforehand with the repository's own commands: pw/ and arc/
(make_data.py proofwriter and arc), ft/ (finetune_gpt2.py with the FT flags below) and llama/ (a
word-level Llama over pw's words, tiny_models.build_word_llama). Each case runs in its own folder
/tmp/sw_cases/NNN, which is also the command's working directory (so a command that deletes its
working directory is caught and harms nothing else). A case is clean if: exit 2 with exactly one
stderr line starting 'error:' (progress bars aside), the case's folder and the fixtures unchanged,
no *.partial, no new empty folder; or (valid input) exit 0 and the case's check passes; or
(interrupt) exit 130 with one 'interrupted:' line and nothing new left.
"""

import fcntl
import hashlib
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time

REPO = os.environ.get("SWEEP_REPO", "/tmp/sw_repo")
PY = os.path.join(REPO, ".venv", "bin", "python")
FX = "/tmp/sw_fx"
CASES_DIR = "/tmp/sw_cases"
PW, ARC, M, L = f"{FX}/pw", f"{FX}/arc", f"{FX}/ft/model", f"{FX}/llama"
TINY = ["--tiny-layers", "2", "--tiny-heads", "2", "--tiny-dim", "32", "--device", "cpu"]
FT = ["finetune_gpt2.py", "--task", "min01", "--n-train", "300", "--n-eval", "32", "--steps", "2",
      "--batch-size", "16", *TINY]
PK = ["probe.py", "--task", "ksmallest", "--model", M, "--n-examples", "64", "--device", "cpu"]
PP = ["probe.py", "--task", "proofwriter", "--model", L, "--device", "cpu"]
CASES = []


def case(name, cmd, expect="err", setup=None, check=None, env=None, sig=None, delay=2.0,
         concurrent=False, after=None, timeout=300):
    CASES.append(dict(name=name, cmd=cmd, expect=expect, setup=setup, check=check, env=env or {},
                      sig=sig, delay=delay, concurrent=concurrent, after=after, timeout=timeout))


# ---- setup helpers -------------------------------------------------------------------------
def write(path, data, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(data)


def foreign(S, name="mine"):
    write(f"{S}/{name}/notes.txt", "my notes\n")
    write(f"{S}/{name}/sub/x.txt", "x\n")


def copy(src, dst):
    shutil.copytree(src, dst, symlinks=True)


def evil_pickle(target):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {target}",))
    return pickle.dumps(Evil())


def pw_copy(S):
    copy(PW, f"{S}/pw")
    return f"{S}/pw/CWA/depth-1/meta-test.jsonl"


def edit_jsonl(path, fn, line=0):
    with open(path) as f:
        lines = f.read().splitlines()
    rec = json.loads(lines[line])
    out = fn(rec)
    lines[line] = out if isinstance(out, str) else json.dumps(rec)
    write(path, "\n".join(lines) + "\n")


def arc_copy(S, fn, line=0):
    copy(ARC, f"{S}/arc")
    for split in ("train", "dev", "test"):
        edit_jsonl(f"{S}/arc/reasoning_annotated_{split}.jsonl", fn, line)


def model_copy(S, src=M, name="m"):
    copy(src, f"{S}/{name}")
    return f"{S}/{name}"


def empty_splits(S):
    copy(PW, f"{S}/pw")
    for d in (0, 1, 2, 3, 5):
        open(f"{S}/pw/CWA/depth-{d}/meta-test.jsonl", "w").close()


PRE_REC = {"context": "Bob is big. If someone is big then they are red.",
           "triples": {"triple1": "Bob is big."},
           "rules": {"rule1": "If someone is big then they are red."},
           "question": "Bob is red.", "answer": True, "proof": "[(((triple1) -> rule1))]"}


def preprocessed(S, content_fn):
    for split in ("train", "dev", "test"):
        write(f"{S}/pre/{split}.json", content_fn(split))


# ---- checks for valid runs -----------------------------------------------------------------
def has(*names):
    def check(S, procs):
        missing = [n.format(S=S) for n in names if not os.path.exists(n.format(S=S))]
        return f"missing {missing}" if missing else None
    return check


def results_ok(path):
    def check(S, procs):
        p = path.format(S=S)
        try:
            r = json.load(open(p))
        except Exception as e:
            return f"{p}: {e}"
        return None if r.get("settings") or r.get("task") else f"{p} has no settings"
    return check


def dump_ok(path, min_lines=1):
    def check(S, procs):
        p = path.format(S=S)
        try:
            lines = [json.loads(line) for line in open(p)]
        except Exception as e:
            return f"{p}: {e}"
        if len(lines) < min_lines:
            return f"{p}: {len(lines)} lines"
        for r in lines:
            if len(r["statements"]) != len(r["useful"]):
                return f"{p}: statements/useful lengths differ"
        return None
    return check


# ---- the cases ---------------------------------------------------------------------------
def md(*a):
    return ["make_data.py", *a]


for v in ["0", "-5", "1e12", "99999999999999999999999", "nan", "14", "200001", "", "0x10"]:
    case(f"make_data proofwriter --n-theories {v!r}", md("proofwriter", "--out", "{S}/o", "--n-theories", v))
for v in ["-1", "4294967296", "1.5", "inf"]:
    case(f"make_data proofwriter --seed {v}", md("proofwriter", "--out", "{S}/o", "--n-theories", "15", "--seed", v))
case("make_data proofwriter --out existing file", md("proofwriter", "--out", "{S}/f.txt", "--n-theories", "15"),
     setup=lambda S: write(f"{S}/f.txt", "mine"))
case("make_data proofwriter --out inside a file", md("proofwriter", "--out", "{S}/f.txt/sub", "--n-theories", "15"),
     setup=lambda S: write(f"{S}/f.txt", "mine"))
case("make_data proofwriter --out foreign folder", md("proofwriter", "--out", "{S}/mine", "--n-theories", "15"),
     setup=foreign)
case("make_data proofwriter --out foreign --force", md("proofwriter", "--out", "{S}/mine", "--n-theories", "15", "--force"),
     expect="ok", setup=foreign, check=has("{S}/mine/notes.txt", "{S}/mine/sub/x.txt", "{S}/mine/CWA/depth-1/meta-test.jsonl"))
case("make_data proofwriter --out /proc/x", md("proofwriter", "--out", "/proc/x", "--n-theories", "15"))
case("make_data proofwriter --out /proc/self/x/y", md("proofwriter", "--out", "/proc/self/x/y", "--n-theories", "15"))
case("make_data proofwriter --out /sys/x", md("proofwriter", "--out", "/sys/x", "--n-theories", "15"))
# The working directory (the case folder) holds the user's files: these must survive.
for script in (md("proofwriter", "--n-theories", "15"), md("arc"), [*PK], [*FT],
               ["attn_visual.py", "--model", M, "--n-examples", "16", "--device", "cpu"]):
    case(f"{script[0]} {script[1] if script[0] == 'make_data.py' else ''} --out '' (cwd holds user files)",
         [*script, "--out", ""], setup=foreign)
case("make_data proofwriter --out nope/.. (resolves to cwd)", md("proofwriter", "--out", "nope/..", "--n-theories", "15"),
     setup=foreign, expect="either", check=has("{S}/mine/notes.txt"))
case("make_data proofwriter --out nope/../mine (a user folder via a missing one)",
     md("proofwriter", "--out", "nope/../mine", "--n-theories", "15"), setup=foreign)
case("probe --out nope/../mine with a failing run", [*PK, "--out", "nope/../mine", "--neighbors", "60"], setup=foreign)
case("probe --dump-examples ''", ["probe.py", "--k", "1", "--dump-examples", ""], setup=foreign)
case("make_data proofwriter --out name with spaces/unicode", md("proofwriter", "--out", "{S}/ré sult ✓", "--n-theories", "15"),
     expect="ok", check=has("{S}/ré sult ✓/CWA/depth-1/meta-test.jsonl"))
case("make_data proofwriter --out symlink to foreign folder", md("proofwriter", "--out", "{S}/link", "--n-theories", "15"),
     setup=lambda S: (foreign(S), os.symlink(f"{S}/mine", f"{S}/link")))
case("make_data proofwriter --out dangling symlink", md("proofwriter", "--out", "{S}/link", "--n-theories", "15"),
     expect="either", setup=lambda S: os.symlink(f"{S}/nowhere", f"{S}/link"))
case("make_data proofwriter --out symlink to a file", md("proofwriter", "--out", "{S}/link", "--n-theories", "15"),
     setup=lambda S: (write(f"{S}/f.txt", "mine"), os.symlink(f"{S}/f.txt", f"{S}/link")))


def rerun_identical(S, procs):
    a = open(f"{S}/o/CWA/depth-1/meta-test.jsonl", "rb").read()
    p = subprocess.run([PY, f"{REPO}/make_data.py", "proofwriter", "--out", f"{S}/o", "--n-theories", "15"],
                       cwd=S, capture_output=True)
    if p.returncode:
        return f"rerun failed {p.returncode}: {p.stderr[-300:]}"
    return None if open(f"{S}/o/CWA/depth-1/meta-test.jsonl", "rb").read() == a else "rerun differs"


case("make_data proofwriter rerun into own out: identical", md("proofwriter", "--out", "{S}/o", "--n-theories", "15"),
     expect="ok", check=rerun_identical)
case("make_data proofwriter SIGINT mid-run", md("proofwriter", "--out", "{S}/o", "--n-theories", "200000"),
     expect="int", sig=signal.SIGINT, delay=3)
case("make_data proofwriter SIGTERM mid-run (existing own out kept)", md("proofwriter", "--out", "{S}/o", "--n-theories", "200000"),
     expect="int", sig=signal.SIGTERM, delay=3,
     setup=lambda S: subprocess.run([PY, f"{REPO}/make_data.py", "proofwriter", "--out", f"{S}/o", "--n-theories", "15"],
                                    cwd=S, capture_output=True))
case("make_data proofwriter two concurrent runs into one --out", md("proofwriter", "--out", "{S}/o", "--n-theories", "30000"),
     expect="concurrent", concurrent=True)
case("make_data arc --out foreign", md("arc", "--out", "{S}/mine"), setup=foreign)
case("make_data arc --out file", md("arc", "--out", "{S}/f.txt"), setup=lambda S: write(f"{S}/f.txt", "mine"))
case("make_data arc valid", md("arc", "--out", "{S}/a"), expect="ok", check=has("{S}/a/reasoning_annotated_test.jsonl"))
case("make_data llama --data missing", md("llama", "--data", "{S}/nope", "--out", "{S}/o"))
case("make_data llama --data empty folder", md("llama", "--data", "{S}/empty", "--out", "{S}/o"),
     setup=lambda S: os.makedirs(f"{S}/empty"))
case("make_data llama --data a file", md("llama", "--data", "{S}/f.txt", "--out", "{S}/o"),
     setup=lambda S: write(f"{S}/f.txt", "x"))
case("make_data llama --out foreign folder", md("llama", "--data", PW, "--out", "{S}/mine"), setup=foreign)
case("make_data llama --out existing file", md("llama", "--data", PW, "--out", "{S}/f.txt"),
     setup=lambda S: write(f"{S}/f.txt", "mine"))
case("make_data llama --data truncated jsonl line", md("llama", "--data", "{S}/pw", "--out", "{S}/o"),
     setup=lambda S: edit_jsonl(pw_copy(S), lambda r: json.dumps(r)[:200]))
case("make_data llama --data invalid UTF-8", md("llama", "--data", "{S}/pw", "--out", "{S}/o"),
     setup=lambda S: write(pw_copy(S), b"\xff\xfe garbage\n", "ab"))
case("make_data llama --data QDep 'x'", md("llama", "--data", "{S}/pw", "--out", "{S}/o"),
     setup=lambda S: edit_jsonl(pw_copy(S), lambda r: [q.update(QDep="x") for q in r["questions"].values()]))
case("make_data llama --data record is a list", md("llama", "--data", "{S}/pw", "--out", "{S}/o"),
     setup=lambda S: edit_jsonl(pw_copy(S), lambda r: "[1, 2]"))
case("make_data llama --data ARC empty answer", md("llama", "--data", "{S}/arc", "--out", "{S}/o"),
     setup=lambda S: arc_copy(S, lambda r: r.update(answer="")))
case("make_data llama valid into new out", md("llama", "--data", PW, "--out", "{S}/o"), expect="ok",
     check=has("{S}/o/config.json", "{S}/o/model.safetensors", "{S}/o/tokenizer.json"), timeout=600)
EMPTY_LINKS = "/tmp/sw_empty_links"
os.makedirs(EMPTY_LINKS, exist_ok=True)
NOPIP = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": EMPTY_LINKS}
case("make_data smollm2 without a registry", md("smollm2", "--out", "{S}/o"), env=NOPIP)
case("make_data smollm2 without a registry, existing own empty out", md("smollm2", "--out", "{S}/o"), env=NOPIP,
     setup=lambda S: (os.makedirs(f"{S}/o"), write(f"{S}/o/.mechprobe", "")))
case("make_data smollm2 --out foreign", md("smollm2", "--out", "{S}/mine"), env=NOPIP, setup=foreign)
case("make_data no subcommand", ["make_data.py"])
case("make_data unknown subcommand", ["make_data.py", "squad", "--out", "{S}/o"])

# ---- finetune ----
for flag, v in [("--steps", "0"), ("--batch-size", "0"), ("--batch-size", "-1"), ("--lr", "nan"), ("--lr", "inf"),
                ("--lr", "0"), ("--lr", "-1e-3"), ("--lr", "abc"), ("--tiny-heads", "3"), ("--tiny-heads", "0"),
                ("--tiny-dim", "0"), ("--eval-every", "0"), ("--n-train", "0"), ("--n-eval", "0"),
                ("--curriculum", "1.5"), ("--curriculum", "nan"), ("--warmup", "-1"), ("--list-len", "1"),
                ("--num-set", "1"), ("--epochs", "0"), ("--lm-weight", "-1"), ("--tiny-layers", "0"),
                ("--seed", "-1"), ("--steps", "99999999999999999999999"), ("--max-qdep", "-1")]:
    case(f"finetune {flag} {v}", [*FT, "--out", "{S}/o", flag, v])
case("finetune --tiny-heads 64 --tiny-dim 64 (head size 1)", [*FT, "--out", "{S}/o", "--tiny-heads", "64", "--tiny-dim", "64"])
case("finetune --task min99", [*FT, "--out", "{S}/o", "--task", "min99"])
case("finetune --task min08 (k = L/2)", [*FT, "--out", "{S}/o", "--task", "min08"])
case("finetune --task foo", [*FT, "--out", "{S}/o", "--task", "foo"])
case("finetune --task min1", [*FT, "--out", "{S}/o", "--task", "min1"], expect="either")
case("finetune --num-set 8 --list-len 16 (fewer numbers than a list)", [*FT, "--out", "{S}/o", "--num-set", "8"])
case("finetune --task proofwriter no --data", [*FT, "--out", "{S}/o", "--task", "proofwriter"])
case("finetune --task proofwriter --data missing", [*FT, "--out", "{S}/o", "--task", "proofwriter", "--data", "{S}/nope"])
case("finetune --task proofwriter --data ARC folder", [*FT, "--out", "{S}/o", "--task", "proofwriter", "--data", ARC])
case("finetune --model path-like missing", [*FT, "--out", "{S}/o", "--model", "{S}/nope"], timeout=60)
case("finetune --model runs/nope (one slash, runs/ exists)", [*FT, "--out", "{S}/o", "--model", "runs/nope"], timeout=60,
     setup=lambda S: os.makedirs(f"{S}/runs"))
case("finetune --model org/name offline", [*FT, "--out", "{S}/o", "--model", "someorg/somemodel"],
     env={"HF_HUB_OFFLINE": "1"}, timeout=60)
case("finetune --model folder without config.json", [*FT, "--out", "{S}/o", "--model", "{S}/m"],
     setup=lambda S: os.remove(f"{model_copy(S)}/config.json"))
case("finetune --model truncated safetensors", [*FT, "--out", "{S}/o", "--model", "{S}/m"],
     setup=lambda S: os.truncate(f"{model_copy(S)}/model.safetensors", 100))
case("finetune --model garbage safetensors", [*FT, "--out", "{S}/o", "--model", "{S}/m"],
     setup=lambda S: write(f"{model_copy(S)}/model.safetensors", os.urandom(5000), "wb"))
case("finetune --model malformed config.json", [*FT, "--out", "{S}/o", "--model", "{S}/m"],
     setup=lambda S: write(f"{model_copy(S)}/config.json", "{not json"))
case("finetune --model config.json a list", [*FT, "--out", "{S}/o", "--model", "{S}/m"],
     setup=lambda S: write(f"{model_copy(S)}/config.json", "[1]"))
case("finetune --model truncated tokenizer.json", [*FT, "--out", "{S}/o", "--model", "{S}/m"],
     setup=lambda S: os.truncate(f"{model_copy(S)}/tokenizer.json", 50))


def evil_bin(S):
    m = model_copy(S)
    os.remove(f"{m}/model.safetensors")
    write(f"{m}/pytorch_model.bin", evil_pickle(f"{CASES_DIR}/PWNED_{os.path.basename(S)}"), "wb")


case("finetune --model malicious pytorch_model.bin", [*FT, "--out", "{S}/o", "--model", "{S}/m"], setup=evil_bin)


def interrupted_ft(S):
    subprocess.run([PY, f"{REPO}/finetune_gpt2.py", *FT[1:], "--steps", "4", "--out", f"{S}/o", "--stop-after", "1"],
                   cwd=S, capture_output=True)
    assert os.path.isdir(f"{S}/o/checkpoint"), os.listdir(f"{S}/o")


def evil_ckpt(S):
    interrupted_ft(S)
    write(f"{S}/o/checkpoint/state.pt", evil_pickle(f"{CASES_DIR}/PWNED_{os.path.basename(S)}"), "wb")


case("finetune resume with crafted state.pt", [*FT, "--steps", "4", "--out", "{S}/o"], setup=evil_ckpt)
case("finetune resume with truncated state.pt", [*FT, "--steps", "4", "--out", "{S}/o"],
     setup=lambda S: (interrupted_ft(S), os.truncate(f"{S}/o/checkpoint/state.pt", 100)))
case("finetune resume with other settings", [*FT, "--steps", "4", "--out", "{S}/o", "--lr", "0.01"], setup=interrupted_ft)
case("finetune resume valid", [*FT, "--steps", "4", "--out", "{S}/o"], setup=interrupted_ft, expect="ok",
     check=lambda S, p: None if (os.path.exists(f"{S}/o/model/model.safetensors") and not os.path.exists(f"{S}/o/checkpoint"))
     else f"after resume: {os.listdir(S + '/o')}")
case("finetune --out existing file", [*FT, "--out", "{S}/f.txt"], setup=lambda S: write(f"{S}/f.txt", "mine"))
case("finetune --out foreign", [*FT, "--out", "{S}/mine"], setup=foreign)
case("finetune --out /proc/x", [*FT, "--out", "/proc/x"])
case("finetune --device cuda (none here)", [*FT, "--out", "{S}/o", "--device", "cuda"], timeout=120)
case("finetune --device bogus", [*FT, "--out", "{S}/o", "--device", "bogus"], timeout=120)
case("finetune --device cuda:99", [*FT, "--out", "{S}/o", "--device", "cuda:99"], timeout=120)
case("finetune SIGINT mid-run then rerun resumes", [*FT, "--steps", "400", "--out", "{S}/o"], expect="int", sig=signal.SIGINT,
     delay=12, after="resume")
case("finetune SIGTERM mid-run", [*FT, "--steps", "400", "--out", "{S}/o"], expect="int", sig=signal.SIGTERM, delay=12)
case("finetune two concurrent into one --out", [*FT, "--steps", "30", "--out", "{S}/o"], expect="concurrent", concurrent=True,
     delay=4)
case("finetune proofwriter tiny valid", ["finetune_gpt2.py", "--task", "proofwriter", "--data", PW, "--steps", "2",
                                         "--n-eval", "8", "--batch-size", "4", *TINY, "--out", "{S}/o"],
     expect="ok", check=has("{S}/o/model/config.json", "{S}/o/results.json"))
case("finetune proofwriter --data damaged jsonl", ["finetune_gpt2.py", "--task", "proofwriter", "--data", "{S}/pw", "--steps", "2",
                                                   *TINY, "--out", "{S}/o"],
     setup=lambda S: edit_jsonl(f"{pw_copy(S)[:-len('meta-test.jsonl')]}meta-train.jsonl", lambda r: "{oops"))

# ---- probe ----
case("probe ksmallest dump, no model", ["probe.py", "--k", "1", "--dump-examples", "{S}/d.jsonl", "--n-examples", "32"],
     expect="ok", check=dump_ok("{S}/d.jsonl", 32))
case("probe --dump-examples a folder", ["probe.py", "--k", "1", "--dump-examples", "{S}"])
case("probe --dump-examples missing parent", ["probe.py", "--k", "1", "--dump-examples", "{S}/no/d.jsonl"])
case("probe --dump-examples foreign file", ["probe.py", "--k", "1", "--dump-examples", "{S}/f.jsonl"],
     setup=lambda S: write(f"{S}/f.jsonl", '{"a": 1}\n'))
case("probe --dump-examples /proc/x.jsonl", ["probe.py", "--k", "1", "--dump-examples", "/proc/x.jsonl"])
case("probe --dump-examples /proc/self/status (existing)", ["probe.py", "--k", "1", "--dump-examples", "/proc/self/status"])
case("probe --dump-examples symlink to foreign file", ["probe.py", "--k", "1", "--dump-examples", "{S}/l.jsonl"],
     setup=lambda S: (write(f"{S}/f.jsonl", '{"a": 1}\n'), os.symlink(f"{S}/f.jsonl", f"{S}/l.jsonl")))
case("probe --model without --out", PK)
for flag, v in [("--folds", "1"), ("--neighbors", "0"), ("--neighbors", "100000"), ("--batch-size", "0"),
                ("--max-batch-tokens", "0"), ("--n-examples", "0"), ("--k", "-1"), ("--k", "100"),
                ("--list-len", "1"), ("--num-set", "1"), ("--layers", "3-1"), ("--layers", "99"),
                ("--layers", "abc"), ("--layers", ""), ("--layers", "-1"), ("--folds", "1000"),
                ("--p", "3"), ("--seed", "1e3"), ("--list-len", "100000"), ("--n-examples", "nan")]:
    case(f"probe ksmallest {flag} {v!r}", [*PK, "--out", "{S}/o", flag, v])
case("probe ksmallest --model M --k 0", [*PK, "--out", "{S}/o", "--k", "0"], expect="either",
     check=results_ok("{S}/o/results.json"))
case("probe ksmallest valid", [*PK, "--out", "{S}/o"], expect="ok", check=results_ok("{S}/o/results.json"))
case("probe ksmallest --all-k valid", [*PK, "--out", "{S}/o", "--all-k"], expect="ok", check=results_ok("{S}/o/results.json"))
case("probe ksmallest --num-set 600 (numbers outside the model's vocabulary)", [*PK, "--out", "{S}/o", "--num-set", "600"])
case("probe ksmallest --list-len 40", [*PK, "--out", "{S}/o", "--list-len", "40"], expect="either",
     check=results_ok("{S}/o/results.json"))
MC = [*PK[:4], "{S}/m", *PK[5:], "--out", "{S}/o"]
case("probe --model task.json malformed", MC, setup=lambda S: write(f"{model_copy(S)}/task.json", "{"))
case("probe --model task.json a list", MC, setup=lambda S: write(f"{model_copy(S)}/task.json", "[1]"))
case("probe --model task.json k 'x'", MC,
     setup=lambda S: write(f"{model_copy(S)}/task.json", json.dumps({"task": "min01", "k": "x", "list_len": 16, "num_set": 512})))
case("probe --model task.json k 99", MC,
     setup=lambda S: write(f"{model_copy(S)}/task.json", json.dumps({"task": "min99", "k": 99, "list_len": 16, "num_set": 512})))
case("probe --model task.json numbers not in vocab", MC,
     setup=lambda S: write(f"{model_copy(S)}/task.json", json.dumps({"task": "min01", "k": 1, "list_len": 16, "num_set": 512,
                                                                    "numbers": list(range(10000, 10512))})))
case("probe --model truncated safetensors", MC, setup=lambda S: os.truncate(f"{model_copy(S)}/model.safetensors", 100))
case("probe --model safetensors header lies", MC,
     setup=lambda S: write(f"{model_copy(S)}/model.safetensors", (10**6).to_bytes(8, "little") + b"{}", "wb"))
case("probe --model a file", [*PK[:4], "{S}/f", *PK[5:], "--out", "{S}/o"], setup=lambda S: write(f"{S}/f", "x"))
case("probe --model empty folder", [*PK[:4], "{S}/e", *PK[5:], "--out", "{S}/o"], setup=lambda S: os.makedirs(f"{S}/e"))
case("probe --model /proc/1/map_files (unreadable)", [*PK[:4], "/proc/1/map_files", *PK[5:], "--out", "{S}/o"])
case("probe --model config.json model_type unknown", MC,
     setup=lambda S: (lambda m: write(f"{m}/config.json", json.dumps({**json.load(open(f"{m}/config.json")), "model_type": "nosuch"})))(model_copy(S)))
case("probe --model config n_layer -1", MC,
     setup=lambda S: (lambda m: write(f"{m}/config.json", json.dumps({**json.load(open(f"{m}/config.json")), "n_layer": -1})))(model_copy(S)))


def bert(S):
    from transformers import BertConfig, BertForMaskedLM
    m = model_copy(S)
    for n in ("model.safetensors", "config.json", "generation_config.json"):
        os.remove(f"{m}/{n}")
    tok = json.load(open(f"{m}/tokenizer.json"))
    vocab = len(tok["model"]["vocab"]) + 16
    BertForMaskedLM(BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64)).save_pretrained(m)


case("probe --model BERT (not causal)", MC, setup=bert)
case("probe --out /proc/x", [*PK, "--out", "/proc/x"])
case("probe --out foreign", [*PK, "--out", "{S}/mine"], setup=foreign)
case("probe --out file", [*PK, "--out", "{S}/f"], setup=lambda S: write(f"{S}/f", "x"))
case("probe --device cuda (none)", [*PK, "--out", "{S}/o", "--device", "cuda"])
case("probe --dtype float16 on cpu", [*PK, "--out", "{S}/o", "--dtype", "float16"], expect="either",
     check=results_ok("{S}/o/results.json"))
case("probe SIGINT mid-run", [*PK[:-4], "--n-examples", "4000", "--out", "{S}/o", "--all-k"], expect="int", sig=signal.SIGINT, delay=10)
case("probe SIGTERM mid-run with --dump-examples", [*PK[:-4], "--n-examples", "4000", "--out", "{S}/o", "--all-k",
                                                    "--dump-examples", "{S}/d.jsonl"], expect="int", sig=signal.SIGTERM, delay=10)
case("probe two concurrent into one --out", [*PK[:-4], "--n-examples", "1000", "--out", "{S}/o"], expect="concurrent",
     concurrent=True, delay=4)
case("probe failing after --dump-examples (--neighbors 60)", [*PK, "--out", "{S}/o", "--dump-examples", "{S}/d.jsonl",
                                                              "--neighbors", "60"])
# text tasks
case("probe proofwriter valid icl 0", [*PP, "--data", PW, "--out", "{S}/o"], expect="ok", check=results_ok("{S}/o/results.json"))
case("probe proofwriter valid icl 2 + dump", [*PP, "--data", PW, "--out", "{S}/o", "--icl", "2", "--dump-examples", "{S}/d.jsonl"],
     expect="ok", check=dump_ok("{S}/d.jsonl"))
case("probe proofwriter --icl 1000", [*PP, "--data", PW, "--out", "{S}/o", "--icl", "1000"], expect="either",
     check=results_ok("{S}/o/results.json"))
case("probe proofwriter --icl -1", [*PP, "--data", PW, "--out", "{S}/o", "--icl", "-1"])
case("probe proofwriter --data missing", [*PP, "--data", "{S}/nope", "--out", "{S}/o"])
case("probe proofwriter --data a file", [*PP, "--data", "{S}/f", "--out", "{S}/o"], setup=lambda S: write(f"{S}/f", "x"))
case("probe proofwriter --data empty folder", [*PP, "--data", "{S}/e", "--out", "{S}/o"], setup=lambda S: os.makedirs(f"{S}/e"))
case("probe proofwriter no --data", [*PP, "--out", "{S}/o"])
case("probe proofwriter --data ARC folder", [*PP, "--data", ARC, "--out", "{S}/o"])
case("probe proofwriter truncated jsonl line", [*PP, "--data", "{S}/pw", "--out", "{S}/o"],
     setup=lambda S: edit_jsonl(pw_copy(S), lambda r: json.dumps(r)[:300]))
case("probe proofwriter invalid UTF-8", [*PP, "--data", "{S}/pw", "--out", "{S}/o"],
     setup=lambda S: write(pw_copy(S), b'{"id": "\xff\xfe"}\n', "ab"))
case("probe proofwriter QDep 'x'", [*PP, "--data", "{S}/pw", "--out", "{S}/o"],
     setup=lambda S: edit_jsonl(pw_copy(S), lambda r: [q.update(QDep="x") for q in r["questions"].values()]))
case("probe proofwriter questions a list", [*PP, "--data", "{S}/pw", "--out", "{S}/o"],
     setup=lambda S: edit_jsonl(pw_copy(S), lambda r: r.update(questions=[1, 2])))
case("probe proofwriter triples missing", [*PP, "--data", "{S}/pw", "--out", "{S}/o"],
     setup=lambda S: edit_jsonl(pw_copy(S), lambda r: r.pop("triples")))
case("probe proofwriter proof references unknown rule", [*PP, "--data", "{S}/pw", "--out", "{S}/o"], expect="either",
     setup=lambda S: edit_jsonl(pw_copy(S), lambda r: [q.update(proofs="[(((triple1) -> rule99))]") for q in r["questions"].values()]),
     check=results_ok("{S}/o/results.json"))
case("probe proofwriter malformed proof string", [*PP, "--data", "{S}/pw", "--out", "{S}/o"], expect="either",
     setup=lambda S: edit_jsonl(pw_copy(S), lambda r: [q.update(proofs="[((((") for q in r["questions"].values()]),
     check=results_ok("{S}/o/results.json"))
case("probe proofwriter duplicate question ids", [*PP, "--data", "{S}/pw", "--out", "{S}/o"],
     setup=lambda S: (lambda p: write(p, open(p).read() + open(p).read().splitlines()[0] + "\n"))(pw_copy(S)))
case("probe proofwriter empty test split", [*PP, "--data", "{S}/pw", "--out", "{S}/o"], setup=empty_splits)
case("probe proofwriter empty test split, dump only", ["probe.py", "--task", "proofwriter", "--data", "{S}/pw",
                                                       "--dump-examples", "{S}/d.jsonl"], setup=empty_splits)
case("probe proofwriter BOM-prefixed jsonl", [*PP, "--data", "{S}/pw", "--out", "{S}/o"], expect="either",
     setup=lambda S: (lambda p: write(p, "\ufeff" + open(p).read()))(pw_copy(S)), check=results_ok("{S}/o/results.json"))
case("probe proofwriter CRLF jsonl", [*PP, "--data", "{S}/pw", "--out", "{S}/o"], expect="ok",
     setup=lambda S: (lambda p: write(p, open(p).read().replace("\n", "\r\n")))(pw_copy(S)), check=results_ok("{S}/o/results.json"))
case("probe proofwriter symlinked data folder", [*PP, "--data", "{S}/link", "--out", "{S}/o"], expect="ok",
     setup=lambda S: os.symlink(PW, f"{S}/link"), check=results_ok("{S}/o/results.json"))
case("probe proofwriter data with spaces/unicode path", [*PP, "--data", "{S}/dä ta", "--out", "{S}/ö ut"], expect="ok",
     setup=lambda S: copy(PW, f"{S}/dä ta"), check=results_ok("{S}/ö ut/results.json"))
case("probe proofwriter preprocessed top-level list", [*PP, "--data", "{S}/pre", "--out", "{S}/o"],
     setup=lambda S: preprocessed(S, lambda s: json.dumps([PRE_REC])))
case("probe proofwriter preprocessed depth key d1", [*PP, "--data", "{S}/pre", "--out", "{S}/o"],
     setup=lambda S: preprocessed(S, lambda s: json.dumps({"d1": [PRE_REC]})))
case("probe proofwriter preprocessed truncated", [*PP, "--data", "{S}/pre", "--out", "{S}/o"],
     setup=lambda S: preprocessed(S, lambda s: json.dumps({"1": [PRE_REC]})[:50]))
case("probe proofwriter preprocessed answer 'yes'", [*PP, "--data", "{S}/pre", "--out", "{S}/o"],
     setup=lambda S: preprocessed(S, lambda s: json.dumps({"1": [{**PRE_REC, "answer": "yes"}] * 3})))
case("probe proofwriter preprocessed cycle proof dump", ["probe.py", "--task", "proofwriter", "--data", "{S}/pre",
                                                                      "--dump-examples", "{S}/d.jsonl"],
     expect="ok", check=dump_ok("{S}/d.jsonl", 1),
     setup=lambda S: preprocessed(S, lambda s: json.dumps({"1": [PRE_REC], "3": [{**PRE_REC,
                                                           "rules": {"rule1": "r1.", "rule2": "r2."},
                                                           "proof": "[(((((((triple1) -> rule1)) -> rule2)) -> rule1))]"}]})))
# ARC
PA = ["probe.py", "--task", "arc", "--model", L, "--device", "cpu"]
case("probe arc valid icl 0", [*PA, "--data", ARC, "--out", "{S}/o", "--folds", "2", "--neighbors", "1"], expect="either",
     check=results_ok("{S}/o/results.json"))
case("probe arc dump only", ["probe.py", "--task", "arc", "--data", ARC, "--dump-examples", "{S}/d.jsonl"], expect="ok",
     check=dump_ok("{S}/d.jsonl"))
for label, fn in [("empty answer", lambda r: r.update(answer="")), ("empty option", lambda r: r["options"].__setitem__(0, "")),
                  ("answer letter Z", lambda r: r.update(answer="Z")), ("edges to unknown unit", lambda r: r.update(
                      reasoning_graph_edges=[{"antecedents": [99], "consequent": 98}])),
                  ("units a list", lambda r: r.update(textual_logical_units=["a", "b"])),
                  ("options missing", lambda r: r.pop("options")), ("record a string", lambda r: '"hello"'),
                  ("cyclic edges", lambda r: r.update(reasoning_graph_edges=[{"antecedents": [1], "consequent": 2},
                                                                             {"antecedents": [2], "consequent": 1}]))]:
    case(f"probe arc {label}", ["probe.py", "--task", "arc", "--data", "{S}/arc", "--dump-examples", "{S}/d.jsonl"],
         setup=lambda S, fn=fn: arc_copy(S, fn), expect="either", check=dump_ok("{S}/d.jsonl"))
# jsonl
PJ = ["probe.py", "--task", "jsonl", "--model", L, "--device", "cpu", "--folds", "2", "--neighbors", "1"]


def pw_dump(S):
    subprocess.run([PY, f"{REPO}/probe.py", "--task", "proofwriter", "--data", PW, "--split", "train", "--dump-examples",
                    f"{S}/d.jsonl"], cwd=S, capture_output=True, check=True)


case("probe jsonl from a dump (valid)", [*PJ, "--data", "{S}/d.jsonl", "--out", "{S}/o"], setup=pw_dump, expect="ok",
     check=results_ok("{S}/o/results.json"))
case("probe jsonl missing file", [*PJ, "--data", "{S}/nope.jsonl", "--out", "{S}/o"])
case("probe jsonl empty file", [*PJ, "--data", "{S}/e.jsonl", "--out", "{S}/o"], setup=lambda S: write(f"{S}/e.jsonl", ""))
case("probe jsonl a folder", [*PJ, "--data", "{S}", "--out", "{S}/o"])
case("probe jsonl non-object lines", [*PJ, "--data", "{S}/e.jsonl", "--out", "{S}/o"], setup=lambda S: write(f"{S}/e.jsonl", "1\n2\n"))
case("probe jsonl missing useful", [*PJ, "--data", "{S}/d.jsonl", "--out", "{S}/o"],
     setup=lambda S: (pw_dump(S), edit_jsonl(f"{S}/d.jsonl", lambda r: r.pop("useful"))))
case("probe jsonl useful length mismatch", [*PJ, "--data", "{S}/d.jsonl", "--out", "{S}/o"],
     setup=lambda S: (pw_dump(S), edit_jsonl(f"{S}/d.jsonl", lambda r: r.update(useful=[1]))))
case("probe jsonl useful 'x'", [*PJ, "--data", "{S}/d.jsonl", "--out", "{S}/o"],
     setup=lambda S: (pw_dump(S), edit_jsonl(f"{S}/d.jsonl", lambda r: r.update(useful=["x"] * len(r["useful"])))))
case("probe jsonl statements empty list", [*PJ, "--data", "{S}/d.jsonl", "--out", "{S}/o"],
     setup=lambda S: (pw_dump(S), edit_jsonl(f"{S}/d.jsonl", lambda r: r.update(statements=[], useful=[], depth=[]))))
case("probe jsonl statement span out of range", [*PJ, "--data", "{S}/d.jsonl", "--out", "{S}/o"], expect="either",
     setup=lambda S: (pw_dump(S), edit_jsonl(f"{S}/d.jsonl", lambda r: r.update(statement_spans=[[0, 10**9]] * len(r["statements"])))),
     check=results_ok("{S}/o/results.json"))
case("probe jsonl answer not in choices", [*PJ, "--data", "{S}/d.jsonl", "--out", "{S}/o"],
     setup=lambda S: (pw_dump(S), edit_jsonl(f"{S}/d.jsonl", lambda r: r.update(answer="Maybe"))))
case("probe jsonl --shots-data missing", [*PJ, "--data", "{S}/d.jsonl", "--out", "{S}/o", "--icl", "1", "--shots-data", "{S}/no"],
     setup=pw_dump)
# ---- attn_visual / causal / corrupt ----
AV = ["attn_visual.py", "--model", M, "--device", "cpu", "--n-examples", "32"]
case("attn_visual no --model", ["attn_visual.py", "--out", "{S}/o"])
case("attn_visual --n-examples 0", [*AV, "--out", "{S}/o", "--n-examples", "0"])
case("attn_visual --out foreign", [*AV, "--out", "{S}/mine"], setup=foreign)
case("attn_visual --k 50", [*AV, "--out", "{S}/o", "--k", "50"])
case("attn_visual valid", [*AV, "--out", "{S}/o"], expect="ok", check=results_ok("{S}/o/results.json"))
case("attn_visual --random-init valid", [*AV, "--out", "{S}/o", "--random-init"], expect="ok", check=has("{S}/o/results.json"))
case("attn_visual --model llama (words, no task.json)", ["attn_visual.py", "--model", L, "--device", "cpu", "--out", "{S}/o"])
CA = ["causal.py", "--model", M, "--device", "cpu", "--n-examples", "32", "--random-repeats", "1", "--case-examples", "8"]
case("causal --list-len 3", [*CA, "--out", "{S}/o", "--list-len", "3"])
case("causal --n-examples 0", [*CA, "--out", "{S}/o", "--n-examples", "0"])
case("causal --random-repeats 0", [*CA, "--out", "{S}/o", "--random-repeats", "0"])
case("causal --case-examples -1", [*CA, "--out", "{S}/o", "--case-examples", "-1"])
case("causal valid", [*CA, "--out", "{S}/o"], expect="ok", check=results_ok("{S}/o/results.json"))
case("causal --list-len 10", [*CA, "--out", "{S}/o", "--list-len", "10"], expect="either", check=has("{S}/o/results.json"))
case("causal --out /proc/x", [*CA, "--out", "/proc/x"])
CO = ["corrupt.py", "--model", L, "--device", "cpu", "--data", PW, "--icl", "0", "--n-examples", "20", "--repeats", "2",
      "--min-subset", "6", "--max-subset", "8", "--folds", "2", "--neighbors", "1"]
case("corrupt no --model", ["corrupt.py", "--data", PW, "--out", "{S}/o"])
case("corrupt no --data", ["corrupt.py", "--model", L, "--out", "{S}/o"])
case("corrupt --data missing", [*CO[:6], "{S}/nope", *CO[7:], "--out", "{S}/o"])
case("corrupt --min-subset 8 --max-subset 6", [*CO, "--out", "{S}/o", "--min-subset", "8", "--max-subset", "6"])
case("corrupt --repeats 0", [*CO, "--out", "{S}/o", "--repeats", "0"])
case("corrupt --max-subset 10000", [*CO, "--out", "{S}/o", "--max-subset", "10000"], expect="either",
     check=results_ok("{S}/o/results.json"))
case("corrupt valid small", [*CO, "--out", "{S}/o"], expect="either", check=results_ok("{S}/o/results.json"))
case("corrupt --model ksmallest GPT-2 (word vocab of numbers)", [*CO[:2], M, *CO[3:], "--out", "{S}/o"])
case("corrupt --out foreign", [*CO, "--out", "{S}/mine"], setup=foreign)


# ---- runner --------------------------------------------------------------------------------
def snapshot(folder):
    found = {}
    for root, dirs, files in os.walk(folder):
        for n in dirs:
            p = os.path.join(root, n)
            found[p] = "link" if os.path.islink(p) else "dir"
        for n in files:
            p = os.path.join(root, n)
            if os.path.islink(p):
                found[p] = "link->" + os.readlink(p)
            else:
                found[p] = hashlib.md5(open(p, "rb").read()).hexdigest()
    return found


def lines_of(err):
    return [x for x in re.split(r"[\r\n]", err) if x.strip() and "|" not in x]


def one_line(err, prefix):
    lines = lines_of(err)
    return len(lines) == 1 and lines[0].startswith(prefix)


def fmt(cmd, S):
    return [c.replace("{S}", S) for c in cmd]


def start(cmd, S, env):
    argv = fmt(cmd, S)
    return subprocess.Popen([PY, os.path.join(REPO, argv[0]), *argv[1:]], cwd=S, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
                            # a background shell starts us with SIGINT ignored; a user's terminal does not
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def judge(c, S, before, fx_before, procs):
    problems = []
    after = snapshot(S) if os.path.isdir(S) else {}
    if not os.path.isdir(S):
        problems.append("THE WORKING DIRECTORY WAS DELETED")
    partial = [p for p in after if ".partial" in os.path.basename(p)]
    if partial:
        problems.append(f"leftover {partial[:3]}")
    pwned = [p for p in os.listdir(CASES_DIR) if p.startswith("PWNED")]
    if pwned:
        problems.append(f"CODE RAN: {pwned}")
    if snapshot(FX) != fx_before:
        problems.append("fixtures changed")
    (rc, out, err) = procs[0]
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    lost = {k for k in before if before.get(k) != after.get(k)}
    empty_new = [k for k in after if k not in before and after[k] == "dir" and not os.listdir(k)]
    kind = c["expect"]
    if kind == "either":
        kind = "err" if rc != 0 else "ok"
    if kind == "err":
        if rc != 2:
            problems.append(f"exit {rc}")
        if not one_line(err, "error:"):
            problems.append(f"stderr {len(lines_of(err))} lines: {lines_of(err)[-1][:160] if lines_of(err) else ''!r}")
        if changed:
            problems.append(f"changed {sorted(changed)[:3]}")
    elif kind == "ok":
        if rc != 0:
            problems.append(f"exit {rc}: {lines_of(err)[-1][:200] if lines_of(err) else ''}")
        elif c["check"]:
            msg = c["check"](S, procs)
            if msg:
                problems.append(msg)
        if lost:
            problems.append(f"user files changed {sorted(lost)[:3]}")
        if empty_new:
            problems.append(f"empty folders {empty_new[:3]}")
    elif kind == "int":
        if rc != 130:
            problems.append(f"exit {rc}")
        if not one_line(err, "interrupted:"):
            problems.append(f"stderr: {lines_of(err)[-3:]}")
        if c["cmd"][0] != "finetune_gpt2.py":
            new = {k for k in after if k not in before}
            if new or lost:
                problems.append(f"changed after interrupt: new {sorted(new)[:3]} lost {sorted(lost)[:3]}")
        if c["after"] == "resume":
            p = start(c["cmd"], S, c["env"])
            o, e = p.communicate(timeout=c["timeout"] * 3)
            if p.returncode != 0:
                problems.append(f"rerun exit {p.returncode}: {lines_of(e)[-1:]}")
            elif "resum" not in (o + e).lower():
                problems.append("rerun did not say it resumed")
    elif kind == "concurrent":
        codes = sorted(p[0] for p in procs)
        refused = [p for p in procs if p[0] == 2]
        if codes != [0, 2]:
            problems.append(f"exits {codes}: {[lines_of(p[2])[-1:] for p in procs]}")
        elif not (one_line(refused[0][2], "error:") and "another run" in refused[0][2]):
            problems.append(f"refusal: {lines_of(refused[0][2])}")
    return problems


def run_case(i, c):
    S = os.path.join(CASES_DIR, f"{i:03d}")
    shutil.rmtree(S, ignore_errors=True)
    os.makedirs(S)
    if c["setup"]:
        c["setup"](S)
    before, fx_before = snapshot(S), snapshot(FX)
    t0 = time.time()
    if c["concurrent"]:
        a = start(c["cmd"], S, c["env"])
        time.sleep(c["delay"])
        b = start(c["cmd"], S, c["env"])
        outs = [p.communicate(timeout=c["timeout"]) for p in (a, b)]
        procs = [(p.returncode, o, e) for p, (o, e) in zip((a, b), outs)]
    else:
        p = start(c["cmd"], S, c["env"])
        if c["sig"]:
            time.sleep(c["delay"])
            if p.poll() is not None:
                o, e = p.communicate()
                return S, time.time() - t0, [f"finished before the signal (exit {p.returncode})"], (p.returncode, o, e)
            p.send_signal(c["sig"])
        try:
            o, e = p.communicate(timeout=c["timeout"])
        except subprocess.TimeoutExpired:
            p.kill()
            o, e = p.communicate()
            return S, time.time() - t0, [f"timed out after {c['timeout']} s"], (None, o, e)
        procs = [(p.returncode, o, e)]
    problems = judge(c, S, before, fx_before, procs)
    return S, time.time() - t0, problems, procs[0]


def main():
    pattern = sys.argv[1] if len(sys.argv) > 1 else ""
    os.makedirs(CASES_DIR, exist_ok=True)
    results = []
    log = open(os.environ.get("SWEEP_LOG", "/tmp/sw_results.jsonl"), "a")
    for i, c in enumerate(CASES):
        if pattern and not re.search(pattern, c["name"]):
            continue
        with open("/tmp/cpu.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                S, secs, problems, (rc, out, err) = run_case(i, c)
            except Exception as exc:
                S, secs, problems, rc, err = "", 0, [f"sweep error {exc!r}"], None, ""
        clean = not problems
        results.append(clean)
        msg = "clean" if clean else "NOT CLEAN: " + "; ".join(problems)
        print(f"[{i:03d}] {c['name']} ({secs:.0f}s, exit {rc}): {msg}", flush=True)
        if not clean or os.environ.get("SHOW"):
            print("      cmd: python " + " ".join(repr(a) if " " in a or not a else a for a in fmt(c["cmd"], S))
                  + f"   (cwd {S})", flush=True)
            print("      stderr tail: " + " / ".join(lines_of(err)[-3:])[:600], flush=True)
        log.write(json.dumps({"i": i, "name": c["name"], "clean": clean, "problems": problems, "rc": rc,
                              "stderr": err[-2000:], "cmd": fmt(c["cmd"], S)}) + "\n")
        log.flush()
    print(f"\n{sum(results)} clean of {len(results)}")


if __name__ == "__main__":
    main()
