"""Does the answer need the statements the probe calls useful? Statement knockout per example.

    python knockout.py --model runs/finetune-tiny/min01/model --out runs/knockout-min01
    python knockout.py --task proofwriter --data runs/data/proofwriter --model runs/models/smollm2 \
        --icl 4 --shots fixed --n-examples 32 --window 10 --out runs/knockout-pw

For each probed example (k-th smallest, or per bucket of ProofWriter, ARC or a jsonl file), the model runs again with the attention from its question
to a set of statements cut (logits -inf before the softmax): (a) the gold useful statements,
(b) as many gold noise statements at random, (c) the statements the usefulness probe predicts
useful (out of fold), (d) as many it predicts noise, (e) the leaves only, the root only; at the
--knockout-layers and in each window of --window layers. Writes OUT/knockout.{png,pdf} (accuracy
drop per condition and per window; text tasks: knockout_<bucket>.{png,pdf}) and OUT/results.json (`conditions`, `gaps`, `windows`,
`window_gaps`, each drop with a 95% bootstrap interval; text tasks: the same per bucket under
`settings`).
"""

from mechprobe.attention.features import POOLS
from mechprobe.cli import ArgumentParser, add_common_args, count, quiet_libraries, run
from mechprobe.outputs import output_dir
from mechprobe.flags import add_ksmallest_args, add_prompt_args


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, model_default=None)
    parser.add_argument("--task", default="ksmallest",
                        choices=["ksmallest", "proofwriter", "arc", "jsonl"],
                        help="as probe.py: the k-th smallest (a fine-tuned model's task.json), or "
                        "a text task with --data")
    add_ksmallest_args(parser)
    parser.add_argument("--data", help="text tasks: the data, as probe.py --data")
    parser.add_argument("--shots-data", metavar="FILE",
                        help="jsonl with --icl: the file in-context shots come from")
    parser.add_argument("--buckets", default="exact", choices=["exact", "upto"],
                        help="ProofWriter depth-1 buckets, as probe.py")
    parser.add_argument("--only-buckets", metavar="NAMES",
                        help="text tasks: run these buckets only, e.g. m=1,m=4 (default: every bucket)")
    parser.add_argument("--split", default="test", choices=["train", "dev", "test"],
                        help="split used (in-context shots always come from train)")
    parser.add_argument("--icl", type=count(0), default=0,
                        help="text tasks: in-context examples before each question")
    add_prompt_args(parser)
    parser.add_argument("--query-pool", choices=POOLS,
                        help="the probe's pooling over query tokens (default: max with --icl, else mean)")
    parser.add_argument("--statement-pool", default="mean", choices=POOLS,
                        help="the probe's pooling over a statement's tokens")
    parser.add_argument("--p", type=int, choices=[1, 2],
                        help="the probe's kNN distance: 2 Euclidean, 1 Manhattan (default: the task's)")
    parser.add_argument("--queries", choices=["question", "all"], default="question",
                        help="which positions lose the statements: from the question (the query "
                        "tokens) on, or every position")
    parser.add_argument("--knockout-layers", metavar="LAYERS",
                        help="layers of the whole-model conditions, e.g. 0-3 (0-based; default all)")
    parser.add_argument("--window", type=count(1), default=1,
                        help="layers per window: each condition is also run cut at [l, l+window) only")
    parser.add_argument("--stride", type=count(1), help="between window starts (default: --window)")
    parser.add_argument("--bootstrap", type=count(100), default=1000,
                        help="bootstrap draws of the examples for the 95%% intervals")
    parser.add_argument("--neighbors", type=count(1), default=8, help="kNN neighbours of the probe")
    parser.add_argument("--folds", type=count(2), default=5,
                        help="folds of the out-of-fold usefulness predictions")
    parser.add_argument("--max-batch-tokens", type=count(1), default=1024,
                        help="padded tokens per forward pass")
    args = parser.parse_args(argv)
    if args.model is None:
        parser.error("--model is required: a fine-tuned model folder (finetune_gpt2.py's OUT/model), "
                     "or for a text task a hub id or folder")
    quiet_libraries()
    from mechprobe.analysis.knockout import KnockoutConfig, run_ksmallest, run_text
    from mechprobe.probing.config import KSmallestConfig, RunConfig, TextConfig

    with output_dir(args.out, args.force, command="knockout.py"):
        config = RunConfig.from_args(args)
        knockout = KnockoutConfig(queries=args.queries, layers=args.knockout_layers,
                                  window=args.window, stride=args.stride, bootstrap=args.bootstrap)
        if args.task == "ksmallest":
            run_ksmallest(knockout, KSmallestConfig.from_args(args), config, args.out)
        else:
            only = args.only_buckets.split(",") if args.only_buckets else None
            run_text(knockout, TextConfig.from_args(args), config, args.out, only)


if __name__ == "__main__":
    run(main)
