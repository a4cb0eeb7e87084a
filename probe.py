"""MechanisticProbe: recover the reasoning tree from a model's attention and score it.

    python probe.py --task ksmallest --model runs/tiny-min01/model --out runs/probe-tiny-min01
    python probe.py --task ksmallest --model gpt2 --all-k --out runs/probe-gpt2-pretrained
    python probe.py --task ksmallest --k 1 --dump-examples examples.jsonl   # no model needed
    python probe.py --task proofwriter --data data/pw --model DIR --icl 4 --out runs/probe-pw
    python probe.py --task jsonl --data my_questions.jsonl --model DIR --out runs/probe-mine
    accelerate launch --num_processes 8 probe.py ...    # each GPU reads its share of the examples

Writes OUT/results.json (per setting: f1, f1_random, probing_score, fold spread, layer-wise rows,
tree recovery, bootstrap intervals), OUT/predictions.jsonl (per statement), OUT/report.html,
OUT/layerwise_<setting>.{png,pdf}, and prints the layer-wise and summary tables.
"""

import os
from contextlib import ExitStack

from mechprobe.cli import ArgumentParser, add_common_args, path_text, quiet_libraries, run
from mechprobe.outputs import check_output_file, output_dir, removed_on_failure
from mechprobe.flags import (add_config_flags, add_ksmallest_args, add_probe_args,
                             add_reading_args, add_task_module_arg, add_text_args,
                             import_task_modules)
from mechprobe.probing.config import KSmallestConfig
from mechprobe.tasks.registry import task_names


def main(argv=None):
    argv = import_task_modules(argv)   # tasks defined outside the package, before --task's choices
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, model_default=None, out_required=False)  # --dump-examples needs no --out
    parser.add_argument("--task", default="ksmallest", choices=task_names(),
                        help="jsonl: your own data, one JSON object per line (docs/DATA.md); "
                        "a task of your own: docs/ADD_A_TASK.md")
    add_task_module_arg(parser)
    add_ksmallest_args(parser)
    add_text_args(parser)
    add_config_flags(parser, KSmallestConfig, ["all_k"])
    add_reading_args(parser)
    add_probe_args(parser)
    parser.add_argument("--feature-cache", default="on", choices=["on", "off", "strict"],
                        help="keep the features in OUT/features and reuse them when model, examples "
                        "and reading match, so probing again with other --layers/--probe/"
                        "--neighbors/--p/--folds skips the model (strict: a damaged cache file is "
                        "an error)")
    parser.add_argument("--dump-examples", metavar="FILE", type=path_text,
                        help="write one JSON line per example with its statements and labels; with "
                        "--model also its prompt's token ids and each statement's and the query's "
                        "token span")
    args = parser.parse_args(argv)
    if args.model is not None and args.out is None:
        parser.error("--out DIR is required when a model is probed")
    if args.out and args.feature_cache != "off" and os.path.lexists(
            os.path.join(args.out, "features")) and not os.path.isdir(
            os.path.join(args.out, "features")):
        parser.error(f"{os.path.join(args.out, 'features')} is a file where the feature cache "
                     "goes: move it away, or pass --feature-cache off")
    quiet_libraries()
    if args.dump_examples:
        check_output_file(args.dump_examples, "--dump-examples", args.force,
                          inputs=[("--data", args.data), ("--shots-data", args.shots_data)])
    from mechprobe.parallel import finish_processes, is_main_process
    from mechprobe.probing.config import RunConfig
    from mechprobe.probing.parts import part_for
    from mechprobe.probing.run import run_command

    run_config = RunConfig.from_args(args) if args.model else None
    part = part_for(args.task).from_args(args)
    if not is_main_process():   # started as several processes: the main one alone writes
        args.dump_examples = None
    with ExitStack() as guards:
        if args.out and is_main_process():
            guards.enter_context(output_dir(args.out, args.force, command="probe.py"))
        if args.dump_examples:
            guards.enter_context(removed_on_failure(args.dump_examples))
        run_command(part, run_config, args.out, args.dump_examples, args.feature_cache)
    finish_processes()


if __name__ == "__main__":
    run(main)
