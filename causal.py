"""Which heads does the answer depend on? Head entropy, pruning curves and an attention flow.

    python causal.py --model runs/tiny-min01/model --out runs/causal-tiny-min01

Writes OUT/entropy_position.{png,pdf} and OUT/entropy_size.{png,pdf} (normalised entropy per
head), OUT/pruning.{png,pdf} (test accuracy with 10%..90% of heads pruned at random, lowest
position entropy first, lowest size entropy first), OUT/attention_flow.{png,pdf} (the case study:
40% lowest-position-entropy heads pruned, smallest and second smallest at positions 8 and 12),
and OUT/results.json (`entropy`, `pruning.random`, `pruning.min_position_entropy`,
`pruning.min_size_entropy`, `case_study`).
"""

import contextlib

from mechprobe.cli import ArgumentParser, add_common_args, count, quiet_libraries, run
from mechprobe.outputs import output_dir
from mechprobe.flags import add_ksmallest_args


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, model_default=None)
    add_ksmallest_args(parser)
    parser.add_argument("--random-repeats", type=count(1, 10**4), default=10,
                        help="random pruning draws per level (mean and spread are reported)")
    parser.add_argument("--case-examples", type=count(1, 10**6), default=256,
                        help="examples in the attention-flow case study")
    args = parser.parse_args(argv)
    if args.model is None:
        parser.error("--model is required: a fine-tuned model folder (finetune_gpt2.py's OUT/model)")
    quiet_libraries()
    from mechprobe.analysis.causal import CausalConfig, run as causal
    from mechprobe.parallel import finish_processes, is_main_process
    from mechprobe.probing.config import RunConfig

    # Several processes (accelerate launch, torchrun): each runs the model on its share of the
    # examples; the main one alone writes.
    with output_dir(args.out, args.force, command="causal.py") if is_main_process() else contextlib.nullcontext():
        causal(CausalConfig.from_args(args), RunConfig.from_args(args), args.out)
    finish_processes()


if __name__ == "__main__":
    run(main)
