"""Command-line flags shared by several scripts. Each flag is a config field of the same name
(--n-examples is TextConfig.n_examples; mechprobe/probing/config.py), left unset (None) here so
that the dataclass's default applies: every default is stated once, in its dataclass, and the
same flag means the same thing in probe.py, knockout.py and corrupt.py."""

import argparse
import importlib
import os
import sys

from mechprobe.attention.features import POOLS
from mechprobe.cli import count, number
from mechprobe.probing.probes import PROBES
from mechprobe.tasks.prompts import PROMPT_STYLES, SHOT_MODES


def import_task_modules(argv):
    """Import the modules named by --task-module (before the parser is built, so that the tasks
    they register are --task choices); returns argv without those flags. A module is looked up
    as Python imports it, and in the working directory."""
    argv = list(sys.argv[1:] if argv is None else argv)
    rest, modules = [], []
    while argv:
        arg = argv.pop(0)
        if arg == "--task-module" and argv:
            modules.append(argv.pop(0))
        elif arg.startswith("--task-module="):
            modules.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    if modules and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as err:
            from mechprobe.cli import UserError

            raise UserError(f"--task-module {name}: cannot import it ({err}); give a module "
                            "importable from the working directory, e.g. my_tasks for "
                            "./my_tasks.py") from None
    return rest


def add_task_module_arg(parser):
    """--task-module's help (import_task_modules reads the flag before the parser does)."""
    parser.add_argument("--task-module", metavar="MODULE", action="append",
                        help="import MODULE first (e.g. my_tasks for ./my_tasks.py), so the tasks "
                        "it registers can be named by --task (docs/ADD_A_TASK.md)")


def add_ksmallest_args(parser):
    """Flags naming the k-th smallest examples to analyse (probe, attn_visual, causal, knockout)."""
    parser.add_argument("--k", type=count(0, 1023), help="k-th smallest, 0-based (default: the model's task.json)")
    parser.add_argument("--list-len", type=count(2, 1024), help="numbers per example (default: the model's task)")
    parser.add_argument("--num-set", type=count(2, 10**6), help="number-set size (default: the model's task)")
    parser.add_argument("--n-examples", type=count(1, 10**6),
                        help="k-th smallest: examples probed (default 1024, drawn from a stream "
                        "fine-tuning never uses); text tasks: at most this many per bucket")
    parser.set_defaults(all_k=False)


def bucket_names(text):
    """argparse type: 'm=1,m=4' -> ['m=1', 'm=4']."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give bucket names separated by commas, e.g. m=1,m=4")
    return names


def add_text_args(parser):
    """Flags of a text task's reading (probe.py, knockout.py, corrupt.py): its data, split,
    buckets and in-context prompts."""
    parser.add_argument("--data", help="ProofWriter: the release root, its CWA folder, or the "
                        "folder of the paper's preprocessed {train,dev,test}.json; ARC: the folder "
                        "of STREET's reasoning_annotated_*.jsonl or the preprocessed files; either: "
                        "a download of the authors' dataset repo (its data/<task> is used) or "
                        "hf:yyyyifan/MechanisticProbe_ProofWriter_ARC from the local HF cache; "
                        "jsonl: a .jsonl, .parquet, .csv or .json file, a save_to_disk folder, or "
                        "hf:ORG/NAME from the local HF cache (docs/DATA.md)")
    parser.add_argument("--shots-data", metavar="FILE",
                        help="jsonl with --icl: the file in-context shots come from (default: the "
                        "same file's other lines)")
    parser.add_argument("--buckets", choices=["exact", "upto"],
                        help="ProofWriter depth-1 buckets m=2,4,...,24: 'exact' keeps questions whose "
                        "theory has exactly m statements (the paper), 'upto' puts each in the "
                        "smallest bucket >= m (the earlier grouping)")
    parser.add_argument("--only-buckets", metavar="NAMES", type=bucket_names,
                        help="text tasks: these buckets only, e.g. m=1,m=4 (default: every bucket)")
    parser.add_argument("--split", choices=["train", "dev", "test"],
                        help="split read (default test; in-context shots always come from train)")
    parser.add_argument("--icl", type=count(0, 64),
                        help="text tasks: in-context examples before each question (0 = the "
                        "fine-tuned-model setting)")
    parser.add_argument("--shots", choices=SHOT_MODES,
                        help="with --icl: draw the shots for each question (per-question, the "
                        "default: the paper; seeded by --seed and the question) or use one fixed "
                        "set for every question")
    parser.add_argument("--prompt", choices=PROMPT_STYLES,
                        help="plain (default): the paper's prompt text; chat: the same shots and "
                        "question as turns of the tokenizer's chat template (instruct models)")
    parser.add_argument("--skip-long", action="store_true",
                        help="leave out prompts longer than the model's positions (counted in the "
                        "output) instead of stopping")


def add_reading_args(parser, layers=True):
    """Flags of how attention becomes features (ReadConfig); `layers`: with --layers."""
    if layers:
        parser.add_argument("--layers", help="0-based layer subset, e.g. 0-16,19,28 (default: all)")
    parser.add_argument("--per-head", action="store_true",
                        help="one feature per head instead of the head mean")
    parser.add_argument("--query-pool", choices=POOLS,
                        help="pooling over query tokens (default: max with --icl, else mean)")
    parser.add_argument("--statement-pool", choices=POOLS,
                        help="pooling over a statement's tokens (default: mean)")
    parser.add_argument("--max-batch-tokens", type=count(1, 2**24),
                        help="cap on padded tokens per forward pass (default 1024; memory: raise "
                        "it on a GPU); --batch-size caps examples")


def add_probe_args(parser):
    """Flags of the probe and its cross-validation (RunConfig: probe, neighbors, p, probe_c,
    folds)."""
    parser.add_argument("--probe", choices=PROBES,
                        help="the classifier that reads the tree: knn (default, the paper's) or "
                        "logistic (scikit-learn's LogisticRegression on standardised features)")
    parser.add_argument("--neighbors", type=count(1, 10**6), help="knn: neighbours (default 8)")
    parser.add_argument("--p", type=int, choices=[1, 2],
                        help="knn: distance, 2 Euclidean, 1 Manhattan (default: the task's)")
    parser.add_argument("--probe-c", type=number(0.0), metavar="C",
                        help="logistic: inverse regularisation strength (default 1.0)")
    parser.add_argument("--folds", type=count(2, 1000),
                        help="cross-validation folds (default 5), grouped by example (ProofWriter: "
                        "by theory, since its questions share the context)")
