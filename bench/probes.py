"""The probing stage with each probe, side by side in one run: the kNN (its incremental layer-wise
pass) against the logistic probe (scikit-learn, one fit per fold and row), on features shaped
like the demo's and like the paper's.

    python bench/probes.py                    # the demo's shape, and one paper-shaped bucket
    python bench/probes.py --per-head         # the paper's bucket with 32 heads per layer

Shapes: "demo": 1,024 examples x 16 numbers, 4 layers of head-mean attention (the tiny GPT-2's
k-th smallest run, Euclidean kNN). "paper": one bucket of 1,024 questions x 24 statements, 32
layers of head-mean attention (LLaMA-7B's ProofWriter run, Manhattan kNN); --per-head: 32
features per layer. Features are random (the cost does not depend on their values, except the
logistic regression's iterations, which converge faster on structure than on noise: this is an
upper end). Per shape, on the model's and the twin's features, both stages (usefulness on every
statement, depth on the useful ones), all layers and every layer-wise row, 5 folds
(crossval.overall_layerwise_predictions, the call a probing run makes). Prints seconds per probe
and the ratio logistic / kNN.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mechprobe.cli import format_table
from mechprobe.probing.crossval import ProbeConfig, Samples, overall_layerwise_predictions

SHAPES = {"demo": {"examples": 1024, "statements": 16, "layers": 4, "heads": 1, "p": 2,
                   "depth_classes": 2},
          "paper": {"examples": 1024, "statements": 24, "layers": 32, "heads": 1, "p": 1,
                    "depth_classes": 2}}


def random_setting(shape, seed):
    """Samples of one setting: features (statements, layers, heads) per example, about a quarter
    of the statements useful, `depth_classes` depth classes among them."""
    rng = np.random.default_rng(seed)
    features, useful, depth = [], [], []
    for _ in range(shape["examples"]):
        s = shape["statements"]
        features.append(rng.random((s, shape["layers"], shape["heads"]), dtype=np.float32))
        u = rng.random(s) < 0.25
        u[:2] = True                 # at least one statement of two classes
        useful.append(u)
        depth.append(np.where(u, rng.integers(0, shape["depth_classes"], s), -1))
    return features, useful, depth


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="demo,paper", help="which shapes (demo, paper)")
    parser.add_argument("--per-head", action="store_true", help="the paper shape with 32 heads")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.shapes.split(","):
        shape = dict(SHAPES[name])
        if args.per_head and name == "paper":
            shape["heads"] = 32
        features, useful, depth = random_setting(shape, seed=0)
        model = Samples.from_examples(features, useful, depth)
        twin = Samples.from_examples(random_setting(shape, seed=1)[0], useful, depth)
        layers = list(range(shape["layers"]))
        row = {"shape": name, "statements": len(model.useful),
               "features": shape["layers"] * shape["heads"]}
        for probe in ("knn", "logistic"):
            config = ProbeConfig(probe=probe, p=shape["p"], seed=0, device="cpu")
            started = time.perf_counter()
            overall, _, _ = overall_layerwise_predictions(model, twin, config, layers)
            row[f"{probe}_s"] = time.perf_counter() - started
            row[f"{probe}_f1_useful"] = overall["f1"]["useful"]
        row["logistic_over_knn"] = row["logistic_s"] / row["knn_s"]
        rows.append(row)
    print(f"probing stage (both stages, model and twin, all layers and every layer-wise row, 5 "
          f"folds), {args.threads} threads, random features")
    print(format_table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
