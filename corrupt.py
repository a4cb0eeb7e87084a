"""Robustness on ProofWriter: relate a model's probing score to how its accuracy survives corruption.

    python corrupt.py --model DIR --data runs/data/proofwriter --out runs/corrupt

Writes OUT/results.json (per-subset rows, the per-bin summary over S_P2, Pearson and Spearman
correlations between S_P2 and the accuracy change, per corruption) and OUT/robustness.{png,pdf}.
"""

from mechprobe.cli import ArgumentParser, add_common_args, quiet_libraries, run
from mechprobe.features import POOLS
from mechprobe.probe_text import add_prompt_args


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, model_default=None)
    parser.add_argument("--data", help="ProofWriter data (release root, CWA folder, or preprocessed)")
    parser.add_argument("--split", default="test", choices=["train", "dev", "test"])
    parser.add_argument("--icl", type=int, default=4, help="in-context examples (paper: 4)")
    add_prompt_args(parser)
    parser.add_argument("--n-examples", type=int, default=1024,
                        help="depth-1 questions the subsets are drawn from (sampled with the seed)")
    parser.add_argument("--repeats", type=int, default=128, help="subsets drawn (paper: 1024)")
    parser.add_argument("--min-subset", type=int, default=64)
    parser.add_argument("--max-subset", type=int, default=128)
    parser.add_argument("--layers", help="0-based layer subset, e.g. 0-16,19,28 (default: all)")
    parser.add_argument("--query-pool", choices=POOLS, help="default: max with --icl, else mean")
    parser.add_argument("--statement-pool", default="mean", choices=POOLS)
    parser.add_argument("--per-head", action="store_true")
    parser.add_argument("--max-batch-tokens", type=int, default=1024)
    parser.add_argument("--neighbors", type=int, default=8)
    parser.add_argument("--p", type=int, choices=[1, 2], help="kNN distance (default 1, Manhattan)")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    if args.model is None:
        parser.error("--model is required")
    if args.icl < 0 or args.repeats < 1 or args.n_examples < 1:
        parser.error("--icl must be 0 or more, --repeats and --n-examples at least 1")
    quiet_libraries()
    from mechprobe.corrupt import run as corrupt

    corrupt(args)


if __name__ == "__main__":
    run(main)
