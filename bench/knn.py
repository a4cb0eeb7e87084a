"""The kNN probing stage alone, at the paper's largest shape or scaled down: the library's
layer-wise rows (incremental distances) against the sklearn reference, side by side in one run.

    python bench/knn.py                 # 1 bucket x 256 questions, 4 layers: about 30 s
    python bench/knn.py --layers 16     # the same at 16 layers (4 min): the reference's L^2 shows
    python bench/knn.py --full          # 8 buckets x 1,024 questions x 24 statements, 32 layers
    python bench/knn.py --full --buckets 1 --incremental-only --device cuda   # on a GPU

Features are random, shaped like the paper's largest run: per-head (32 heads) attention features
of 24 statements per question, 32 layers, 1,024 questions in each of 8 buckets, ProofWriter's
probe (Manhattan, 8 neighbours, 5 folds). Per bucket, on the model's and the random twin's
features, the library (mechprobe/probing/run.py probe_setting) fits both stages on all layers
and the layer-wise rows: every layer alone and every prefix of layers. It takes both from one
pass of mechprobe/probing/incremental.py (`overall_and_layerwise`): a fold's distances on a
layer, computed once (torch.cdist), serve the single row and are added to the running sum that
is the cumulative row; the all-layers fit is the last such sum. The reference,
`compare(..., reference=True)` and `layerwise_sklearn`, fits sklearn's kNN for every row and for
all layers, as the library did before.

Brute-force kNN costs (test x train pairs) x features. Per stage and fold the all-layers fit goes
through heads x L features, the reference's rows through heads x (L + L(L+1)/2), the incremental
pass (all layers and rows) through heads x L. Each part is extrapolated to the full shape in proportion to its
pair-features (measured seconds per pair-feature, times the full run's pair-features). The bench
prints the largest F1 difference between the two ways' rows: 0 unless samples tie at the k-th
distance (incremental.py says where the two may differ).
"""

import argparse
import os
import sys
import time
from functools import partial

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mechprobe.memory import PeakMemory
from mechprobe.cli import format_table
from mechprobe.probing.crossval import (
    ProbeConfig,
    Samples,
    compare,
    layerwise_sklearn,
    overall_and_layerwise,
)

FULL = {"buckets": 8, "questions": 1024, "statements": 24, "layers": 32, "heads": 32}
SCALED = {"buckets": 1, "questions": 256, "statements": 24, "layers": 4, "heads": 32}

# features one stage's fits go through per fold, per part of the stage
DIMS = {"all_layers_sklearn": lambda layers, heads: heads * layers,
        "reference": lambda layers, heads: heads * (layers + layers * (layers + 1) // 2),
        "incremental": lambda layers, heads: heads * layers}


def random_bucket(shape, seed):
    """Per question: features (statements, layers, heads), useful 0/1, depth class or -1."""
    rng = np.random.default_rng(seed)
    features, useful, depth = [], [], []
    for _ in range(shape["questions"]):
        s = shape["statements"]
        features.append(rng.random((s, shape["layers"], shape["heads"]), dtype=np.float32))
        u = rng.random(s) < 0.25          # about a quarter of the statements are in the proof
        useful.append(u)
        depth.append(np.where(u, rng.integers(0, 4, s), -1))
    return features, useful, depth


def pair_features(shape, n_depth, dims):
    """(test x train pairs over the 5 folds) x features, for both stages, model and twin, all
    buckets; dims(layers, heads) is the features one stage's fits go through."""
    n_useful = shape["questions"] * shape["statements"]
    pairs = sum(n * n * 4 / 5 for n in (n_useful, n_depth))
    return shape["buckets"] * 2 * pairs * dims(shape["layers"], shape["heads"])


def largest_difference(rows, reference):
    """The largest |F1 difference| over every row, stage, model and twin."""
    keys = ("f1_useful", "f1_depth", "f1_random_useful", "f1_random_depth")
    return max(abs(a[key] - b[key]) for a, b in zip(rows, reference) for key in keys
               if a[key] is not None)


def timed(device, work):
    """(result, seconds, peak extra bytes) of work()."""
    with PeakMemory(device) as peak:
        started = time.perf_counter()
        result = work()
        seconds = time.perf_counter() - started
    return result, seconds, peak.extra_bytes or 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the paper's largest shape (hours on "
                        "a CPU for the reference)")
    for name, value in SCALED.items():
        parser.add_argument(f"--{name}", type=int, help=f"default {value} (full: {FULL[name]})")
    parser.add_argument("--incremental-only", action="store_true",
                        help="time the library's layer-wise rows only: no sklearn (neither the "
                        "reference rows nor the all-layers fit), for shapes too large for it")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu", help="where the incremental rows run (cuda: "
                        "their peak memory is the GPU's)")
    args = parser.parse_args()
    shape = {name: getattr(args, name) or (FULL if args.full else SCALED)[name] for name in SCALED}
    torch.set_num_threads(args.threads)
    config = ProbeConfig(neighbors=8, p=1, folds=5, seed=0)     # ProofWriter's probe
    layer_names = list(range(shape["layers"]))
    parts = (["incremental"] if args.incremental_only
             else ["incremental", "all_layers_sklearn", "reference"])
    totals, peaks = dict.fromkeys(parts, 0.0), dict.fromkeys(parts, 0)
    rows = []
    for bucket in range(shape["buckets"]):
        features, useful, depth = random_bucket(shape, seed=2 * bucket)
        model = Samples.from_examples(features, useful, depth)
        twin = Samples.from_examples(random_bucket(shape, seed=2 * bucket + 1)[0], useful, depth)
        work = {"all_layers_sklearn": ("cpu", partial(compare, model, twin, config,
                                                      reference=True)),
                "incremental": (args.device, partial(overall_and_layerwise, model, twin, config,
                                                     layer_names, args.device)),
                "reference": ("cpu", partial(layerwise_sklearn, model, twin, config, layer_names))}
        row, out = {"bucket": bucket}, {}
        for part in parts:
            out[part], seconds, peak = timed(*work[part])
            row[f"{part}_s"] = seconds
            totals[part] += seconds
            peaks[part] = max(peaks[part], peak)
        if not args.incremental_only:
            row["reference_over_incremental"] = row["reference_s"] / row["incremental_s"]
            library = row["incremental_s"]
            before = row["all_layers_sklearn_s"] + row["reference_s"]
            row["before_over_library"] = before / library
            row["max_f1_diff"] = f"{largest_difference(out['incremental'][1], out['reference']):.1e}"
        rows.append(row)
    print(f"kNN stage on random features: {shape['buckets']} bucket(s) x {shape['questions']} "
          f"questions x {shape['statements']} statements, {shape['layers']} layers x "
          f"{shape['heads']} heads, p=1, k=8, 5 folds, {args.threads} threads, incremental rows on "
          f"{args.device}")
    print(format_table(rows, list(rows[0])))
    n_depth = int(np.sum(np.concatenate(useful)))          # the last bucket's useful statements
    full_depth = n_depth * FULL["questions"] // shape["questions"]
    extrapolated = {}
    for part in parts:
        scale = (pair_features(FULL, full_depth, DIMS[part])
                 / pair_features(shape, n_depth, DIMS[part]))
        extrapolated[part] = totals[part] * scale / 3600
        print(f"{part}: {totals[part]:.1f} s here, peak extra {peaks[part] / 2**20:.0f} MB; "
              f"extrapolated to the full shape (x{scale:.0f} pair-features): "
              f"{extrapolated[part]:.2f} h")
    if not args.incremental_only:
        library = extrapolated["incremental"]
        before = extrapolated["all_layers_sklearn"] + extrapolated["reference"]
        print(f"full shape, whole stage: library (all layers and rows in one incremental pass) "
              f"{library:.2f} h, before (all layers + rows, sklearn) {before:.2f} h")
        library = totals["incremental"]
        before = totals["all_layers_sklearn"] + totals["reference"]
        print(f"knn: reference_over_incremental={totals['reference'] / totals['incremental']:.2f} "
              f"before_over_library={before / library:.2f} "
              f"max_f1_diff={max(float(r['max_f1_diff']) for r in rows):.1e}")


if __name__ == "__main__":
    main()
