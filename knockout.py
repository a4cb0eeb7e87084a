"""Does the answer need the statements the probe calls useful? Statement knockout per example.

    python knockout.py --model runs/finetune-tiny/min01/model --out runs/knockout-min01
    python knockout.py --task proofwriter --data runs/data/proofwriter --model runs/models/smollm2 \
        --icl 4 --shots fixed --n-examples 32 --window 10 --out runs/knockout-pw

For each probed example (k-th smallest, or per bucket of any text task: ProofWriter, ARC, a
jsonl file, a registered task), the model runs again with the attention from its question to a
set of statements cut (logits -inf before the softmax): (a) the gold useful statements,
(b) as many gold noise statements at random, (c) the statements the usefulness probe predicts
useful (out of fold), (d) as many it predicts noise, (e) the leaves only, the root only; at the
--knockout-layers and in each window of --window layers. Writes OUT/knockout.{png,pdf} (accuracy
drop per condition and per window; text tasks: knockout_<bucket>.{png,pdf}) and OUT/results.json (`conditions`, `gaps`, `windows`,
`window_gaps`, each drop with a 95% bootstrap interval; text tasks: the same per bucket under
`settings`).
"""

from mechprobe.cli import ArgumentParser, add_common_args, count, quiet_libraries, run
from mechprobe.outputs import output_dir
from mechprobe.flags import (add_ksmallest_args, add_probe_args, add_reading_args,
                             add_task_module_arg, add_text_args, import_task_modules)
from mechprobe.tasks.registry import task_names


def main(argv=None):
    argv = import_task_modules(argv)   # tasks defined outside the package, before --task's choices
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, model_default=None)
    parser.add_argument("--task", default="ksmallest", choices=task_names(),
                        help="as probe.py: the k-th smallest (a fine-tuned model's task.json), or "
                        "a text task with --data (ProofWriter, ARC, jsonl, a registered task)")
    add_task_module_arg(parser)
    add_ksmallest_args(parser)
    add_text_args(parser)
    add_reading_args(parser, layers=False)      # the probe reads every layer
    add_probe_args(parser)
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
    args = parser.parse_args(argv)
    if args.model is None:
        parser.error("--model is required: a fine-tuned model folder (finetune_gpt2.py's OUT/model), "
                     "or for a text task a hub id or folder")
    quiet_libraries()
    from mechprobe.analysis.knockout import KnockoutConfig, run as knockout
    from mechprobe.probing.config import RunConfig
    from mechprobe.probing.parts import part_for

    with output_dir(args.out, args.force, command="knockout.py"):
        config = KnockoutConfig(queries=args.queries, layers=args.knockout_layers,
                                window=args.window, stride=args.stride, bootstrap=args.bootstrap)
        knockout(config, part_for(args.task).from_args(args), RunConfig.from_args(args), args.out)


if __name__ == "__main__":
    run(main)
