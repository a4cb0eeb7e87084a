"""Robustness on ProofWriter: relate a model's probing score to how its accuracy survives corruption.

    python corrupt.py --model DIR --data runs/data/proofwriter --out runs/corrupt

Writes OUT/results.json (per-subset rows, the per-bin summary over S_P2, Pearson and Spearman
correlations between S_P2 and the accuracy change, per corruption) and OUT/robustness.{png,pdf}.
"""

import contextlib

from mechprobe.cli import ArgumentParser, add_common_args, count, quiet_libraries, run
from mechprobe.attention.features import POOLS
from mechprobe.outputs import output_dir
from mechprobe.flags import add_prompt_args


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, model_default=None)
    parser.add_argument("--data", help="ProofWriter data (release root, CWA folder, or preprocessed)")
    parser.add_argument("--split", default="test", choices=["train", "dev", "test"])
    parser.add_argument("--icl", type=count(0, 64), default=4, help="in-context examples (paper: 4)")
    add_prompt_args(parser)
    parser.add_argument("--n-examples", type=count(1, 10**6), default=1024,
                        help="depth-1 questions the subsets are drawn from (sampled with the seed)")
    parser.add_argument("--repeats", type=count(1, 10**6), default=128, help="subsets drawn (paper: 1024)")
    parser.add_argument("--min-subset", type=count(2, 10**6), default=64)
    parser.add_argument("--max-subset", type=count(2, 10**6), default=128)
    parser.add_argument("--layers", help="0-based layer subset, e.g. 0-16,19,28 (default: all)")
    parser.add_argument("--query-pool", choices=POOLS, help="default: max with --icl, else mean")
    parser.add_argument("--statement-pool", default="mean", choices=POOLS)
    parser.add_argument("--per-head", action="store_true")
    parser.add_argument("--max-batch-tokens", type=count(1, 2**24), default=1024)
    parser.add_argument("--neighbors", type=count(1, 10**6), default=8)
    parser.add_argument("--p", type=int, choices=[1, 2], help="kNN distance (default 1, Manhattan)")
    parser.add_argument("--folds", type=count(2, 1000), default=5)
    args = parser.parse_args(argv)
    if args.model is None:
        parser.error("--model is required")
    quiet_libraries()
    from mechprobe.analysis.robustness import RobustnessConfig, run as corrupt
    from mechprobe.parallel import finish_processes, is_main_process
    from mechprobe.probing.config import RunConfig

    # Several processes (accelerate launch, torchrun): each runs the model on its share of the
    # prompts; the main one alone probes and writes.
    with output_dir(args.out, args.force, command="corrupt.py") if is_main_process() else contextlib.nullcontext():
        corrupt(RobustnessConfig.from_args(args), RunConfig.from_args(args), args.out)
    finish_processes()


if __name__ == "__main__":
    run(main)
