"""The kNN probing stage alone, at the paper's largest shape or scaled down, in one run.

    python bench/knn.py                 # 1 bucket x 256 questions, 4 layers: about a minute
    python bench/knn.py --full          # 8 buckets x 1,024 questions x 24 statements, 32 layers
    python bench/knn.py --questions 1024 --layers 32 --buckets 1 --skip-library   # new way only
    python bench/knn.py --full --buckets 1 --skip-library --device cuda            # on a GPU

Features are random, shaped like the paper's largest run: per-head (32 heads) attention features
of 24 statements per question, 32 layers, 1,024 questions in each of 8 buckets, ProofWriter's
probe (Manhattan, 8 neighbours, 5 folds). Per bucket the library's probe_setting
(mechprobe/probing/pipeline.py) fits both stages on the model's and the random twin's features: all layers,
then every layer alone and every prefix of layers (cumulative layer-wise), each a 5-fold
cross-validated sklearn KNeighborsClassifier (mechprobe/probing/knn.py).

Brute-force kNN costs (test x train pairs) x features; a bucket's total over its fits is
sum over fits of pairs x dims, with dims = heads x layers in the fit. The cumulative rows dominate:
heads x L(L+1)/2 of the heads x (2L + L(L+1)/2) dims of a bucket. The scaled run is extrapolated
to full scale in proportion to that sum (measured seconds per pair-feature, times the full run's
pair-features), and the same for the way below.

'incremental' is the alternative measured beside it: distances are sums over features (Manhattan;
squared for Euclidean), so one fold's layer-l distances, computed once as a batched torch.cdist,
serve the single-layer row and are added to the running sum that is the cumulative row (and, at
the last layer, the all-layers fit): heads x L dims per fold instead of heads x (L + 1 + L(L+1)/2).
It picks the same neighbours and votes as sklearn (weights 1/distance, exact matches only where a
distance is 0, ties to the smallest class), on the same GroupKFold folds: the bench prints the
largest F1 difference from the library's over every row.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sklearn.metrics import f1_score  # noqa: E402
from sklearn.model_selection import GroupKFold  # noqa: E402

from mechprobe.cli import format_table  # noqa: E402
from mechprobe.attention.memory import PeakMemory  # noqa: E402
from mechprobe.probing.knn import ProbeConfig, Samples, depth_applicable  # noqa: E402
from mechprobe.probing.pipeline import probe_setting  # noqa: E402

FULL = {"buckets": 8, "questions": 1024, "statements": 24, "layers": 32, "heads": 32}
SCALED = {"buckets": 1, "questions": 256, "statements": 24, "layers": 4, "heads": 32}


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


def library_dims(layers, heads):
    """Features summed over one stage's fits in probe_setting: all layers, each layer, each prefix."""
    return heads * (layers + layers + layers * (layers + 1) // 2)


def pair_features(shape, n_depth, dims):
    """(test x train pairs over the 5 folds) x features, for both stages, model and twin, all
    buckets; dims(layers, heads) is the features one stage's fits go through."""
    n_useful = shape["questions"] * shape["statements"]
    pairs = sum(n * n * 4 / 5 for n in (n_useful, n_depth))
    return shape["buckets"] * 2 * pairs * dims(shape["layers"], shape["heads"])


def knn_predict(distances, y_train, n_classes, k):
    """sklearn's KNeighborsClassifier(weights='distance') prediction from a distance matrix."""
    nearest, index = torch.topk(distances, k, dim=1, largest=False)
    exact = nearest == 0
    weights = torch.where(exact.any(dim=1, keepdim=True), exact.to(nearest.dtype), 1.0 / nearest)
    votes = torch.zeros(len(distances), n_classes, dtype=nearest.dtype, device=nearest.device)
    votes.scatter_add_(1, y_train[index], weights)
    return votes.argmax(dim=1)      # the first of tied classes, as sklearn's weighted_mode


def incremental_stage(X, y, groups, config, device="cpu"):
    """F1 (mean over folds) of every single layer and every layer prefix, in one pass per fold."""
    classes, codes = np.unique(y, return_inverse=True)
    labels = torch.from_numpy(codes).to(device)
    n_layers = X.shape[1]
    single, cumulative = np.zeros((config.folds, n_layers)), np.zeros((config.folds, n_layers))
    splitter = GroupKFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
    X = torch.from_numpy(X).to(device, torch.float64)   # float64 as sklearn's distances
    for fold, (train, test) in enumerate(splitter.split(np.zeros(len(y)), y, groups)):
        total = None
        for layer in range(n_layers):
            # d^p per layer: summing them gives the prefix's d^p (Manhattan: d itself)
            part = torch.cdist(X[test, layer], X[train, layer], p=config.p) ** config.p
            total = part if total is None else total + part
            for scores, powered in ((single, part), (cumulative, total)):
                distances = powered if config.p == 1 else powered.sqrt()
                predicted = knn_predict(distances, labels[train], len(classes), config.neighbors)
                scores[fold, layer] = f1_score(codes[test], predicted.cpu().numpy(), average="macro")
    return single.mean(axis=0), cumulative.mean(axis=0)


def incremental_setting(features, random_features, useful, depth, config, device="cpu"):
    """The F1s probe_setting reports, the incremental way: {(samples, stage): (single, cumulative)}."""
    out = {}
    for name, f in (("model", features), ("random", random_features)):
        samples = Samples.from_examples(f, useful, depth)
        out[name, "useful"] = incremental_stage(samples.X, samples.useful.astype(int),
                                                samples.groups, config, device)
        if depth_applicable(samples):
            keep = samples.useful
            out[name, "depth"] = incremental_stage(samples.X[keep], samples.depth[keep],
                                                   samples.groups[keep], config, device)
    return out


def largest_difference(library, incremental):
    """The largest |F1 difference| over the overall, single and cumulative rows of both stages."""
    differences = []
    for stage in ("useful", "depth"):
        for name, key in (("model", "f1"), ("random", "f1_random")):
            single, cumulative = incremental[name, stage]
            differences.append(abs(library[key][stage] - cumulative[-1]))
            for row in library["layerwise"]:
                mine = single if row["mode"] == "single" else cumulative
                theirs = row[f"f1_{stage}"] if name == "model" else row[f"f1_random_{stage}"]
                differences.append(abs(theirs - mine[row["layer"]]))
    return max(differences)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the paper's largest shape (hours on "
                        "a CPU for the library's way)")
    for name, value in SCALED.items():
        parser.add_argument(f"--{name}", type=int, help=f"default {value} (full: {FULL[name]})")
    parser.add_argument("--skip-library", action="store_true",
                        help="time the incremental way only (for shapes too large for the library)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu", help="where the incremental way runs (cuda: "
                        "its peak memory is the GPU's)")
    args = parser.parse_args()
    shape = {name: getattr(args, name) or (FULL if args.full else SCALED)[name] for name in SCALED}
    torch.set_num_threads(args.threads)
    config = ProbeConfig(neighbors=8, p=1, folds=5, seed=0)     # ProofWriter's probe
    layer_names = list(range(shape["layers"]))
    totals = {"library": 0.0, "incremental": 0.0}
    peaks = {"library": 0, "incremental": 0}
    rows = []
    for bucket in range(shape["buckets"]):
        features, useful, depth = random_bucket(shape, seed=2 * bucket)
        twin = random_bucket(shape, seed=2 * bucket + 1)[0]
        row = {"bucket": bucket}
        with PeakMemory(args.device) as peak:
            started = time.perf_counter()
            mine = incremental_setting(features, twin, useful, depth, config, args.device)
            row["incremental_s"] = time.perf_counter() - started
        peaks["incremental"] = max(peaks["incremental"], peak.extra_bytes or 0)
        totals["incremental"] += row["incremental_s"]
        if not args.skip_library:
            with PeakMemory("cpu") as peak:
                started = time.perf_counter()
                library = probe_setting(features, twin, useful, depth, config, layer_names)
                row["library_s"] = time.perf_counter() - started
            peaks["library"] = max(peaks["library"], peak.extra_bytes or 0)
            totals["library"] += row["library_s"]
            row["library_over_incremental"] = row["library_s"] / row["incremental_s"]
            row["max_f1_diff"] = f"{largest_difference(library, mine):.1e}"
        rows.append(row)
    print(f"kNN stage on random features: {shape['buckets']} bucket(s) x {shape['questions']} "
          f"questions x {shape['statements']} statements, {shape['layers']} layers x "
          f"{shape['heads']} heads, p=1, k=8, 5 folds, {args.threads} threads, incremental on "
          f"{args.device}")
    print(format_table(rows, list(rows[0])))
    n_depth = int(np.sum(np.concatenate(useful)))          # the last bucket's useful statements
    full_depth = n_depth * FULL["questions"] // shape["questions"]
    for way, dims in (("library", library_dims), ("incremental", lambda layers, heads: layers * heads)):
        if way == "library" and args.skip_library:
            continue
        scale = pair_features(FULL, full_depth, dims) / pair_features(shape, n_depth, dims)
        print(f"{way}: {totals[way]:.1f} s here, peak extra {peaks[way] / 2**20:.0f} MB; "
              f"extrapolated to the full shape (x{scale:.0f} pair-features): "
              f"{totals[way] * scale / 3600:.2f} h")
    if not args.skip_library:
        print(f"knn: library_over_incremental={totals['library'] / totals['incremental']:.2f} "
              f"max_f1_diff={max(float(r['max_f1_diff']) for r in rows):.1e}")


if __name__ == "__main__":
    main()
