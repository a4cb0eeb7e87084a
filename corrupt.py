"""Robustness: relate a model's probing score to how its accuracy survives corruption.

    python corrupt.py --model DIR --data runs/data/proofwriter --out runs/corrupt
    python corrupt.py --task jsonl --data mine.jsonl --model DIR --out runs/corrupt-mine

Writes OUT/results.json (per-subset rows, the per-bin summary over S_P2, Pearson and Spearman
correlations between S_P2 and the accuracy change, per corruption) and OUT/robustness.{png,pdf}.
"""

import contextlib

from mechprobe.analysis.robustness import RobustnessConfig
from mechprobe.cli import ArgumentParser, add_common_args, quiet_libraries, run
from mechprobe.outputs import output_dir
from mechprobe.flags import (add_config_flags, add_probe_args, add_reading_args,
                             add_task_module_arg, add_text_args, import_task_modules)
from mechprobe.probing.config import TextConfig
from mechprobe.tasks.base import TASKS
from mechprobe.tasks.registry import task_names


def main(argv=None):
    argv = import_task_modules(argv)   # tasks defined outside the package, before --task's choices
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, model_default=None)
    parser.add_argument("--task", default="proofwriter",
                        choices=[name for name in task_names() if TASKS[name].family == "text"],
                        help="a text task (default proofwriter, the paper's; its depth-1 questions "
                        "are the pool); any other: questions whose tree has two levels or more")
    add_task_module_arg(parser)
    # the paper's robustness experiment is in-context: 4 shots unless --icl says otherwise
    add_text_args(parser, help={"icl": "in-context examples before each question (default 4, "
                                "the paper's)"})
    parser.set_defaults(icl=4)
    add_config_flags(parser, TextConfig, ["n_examples"], help={
        "n_examples": "questions the subsets are drawn from, sampled with the seed (default "
                      "1024)"})
    add_config_flags(parser, RobustnessConfig, ["repeats", "min_subset", "max_subset"])
    add_reading_args(parser)
    add_probe_args(parser)
    args = parser.parse_args(argv)
    if args.model is None:
        parser.error("--model is required")
    quiet_libraries()
    from mechprobe.analysis.robustness import run as corrupt
    from mechprobe.parallel import finish_processes, is_main_process
    from mechprobe.probing.config import RunConfig
    from mechprobe.probing.text import TextPart

    # Several processes (accelerate launch, torchrun): each runs the model on its share of the
    # prompts; the main one alone probes and writes.
    with output_dir(args.out, args.force, command="corrupt.py") if is_main_process() else contextlib.nullcontext():
        corrupt(RobustnessConfig.from_args(args), TextPart(TextConfig.from_args(args)),
                RunConfig.from_args(args), args.out)
    finish_processes()


if __name__ == "__main__":
    run(main)
