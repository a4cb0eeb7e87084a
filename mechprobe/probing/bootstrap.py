"""Bootstrap intervals of a setting's scores over examples, without refitting (METHOD.md,
section 5, "Uncertainty").

A replicate draws the cross-validation groups (the examples, or what examples share, such as a
ProofWriter theory) with replacement and keeps every statement's out-of-fold predictions of the
model and of the twin as they are: the probes are not refitted, so an interval shows how the
scores vary with the examples scored, not with the examples trained on. Each replicate
recomputes the scores the way the reported ones are computed: macro F1 per test fold over the
drawn statements it holds, then the mean over folds. With every group drawn once this is the
reported F1, so the intervals are around the printed numbers.

A replicate is a matrix product: each group's counts per (fold, gold class, predicted class)
cell, weighted by how often the replicate draws the group. A thousand replicates take
milliseconds where a run takes minutes.
"""

import time

import numpy as np

from mechprobe import seeds
from mechprobe.probing.crossval import probing_score
from mechprobe.probing.predictions import NO_LABEL
from mechprobe.probing.tree_recovery import recovered

REPLICATES = 1000
LEVEL = 0.95


def draws(n_units, replicates, seed):
    """(replicates, units): how often each replicate draws each unit (sums to n_units)."""
    rng = seeds.rng(seed, seeds.BOOTSTRAP)
    return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=replicates)


def fold_mean_f1(weights, unit, fold, gold, predicted):
    """Per row of `weights` (replicates, units): the mean over folds of the macro F1 over the
    labels present in the fold (sklearn's f1_macro), each sample counted as often as its unit.
    unit, fold, gold, predicted: one entry per sample."""
    classes = np.unique(np.concatenate([gold, predicted]))
    c, n_folds = len(classes), int(fold.max()) + 1
    cell = (fold * c + np.searchsorted(classes, gold)) * c + np.searchsorted(classes, predicted)
    per_unit = np.zeros((weights.shape[1], n_folds * c * c))
    np.add.at(per_unit, (unit, cell), 1)
    counts = (weights @ per_unit).reshape(len(weights), n_folds, c, c)
    hit = np.diagonal(counts, axis1=2, axis2=3)
    both = counts.sum(axis=3) + counts.sum(axis=2)       # gold + predicted count per class
    present = both > 0
    f1 = np.divide(2 * hit, both, out=np.zeros_like(hit), where=present)
    classes_present = present.sum(axis=2)
    per_fold = np.divide(f1.sum(axis=2), classes_present, out=np.zeros(classes_present.shape),
                         where=classes_present > 0)
    folds_present = classes_present > 0
    return (per_fold * folds_present).sum(axis=1) / np.maximum(folds_present.sum(axis=1), 1)


def stage_samples(predictions, stage):
    """(unit, fold, gold, {who: predicted}) of a stage's samples, or None without probe 2."""
    if stage == "useful":
        keep = np.ones(len(predictions.useful), dtype=bool)
        gold = predictions.useful.astype(int)
    elif predictions.depth_probed:
        keep = predictions.depth != NO_LABEL
        gold = predictions.depth[keep]
    else:
        return None
    guesses = {who: np.asarray(p[stage][keep], dtype=int)
               for who, p in predictions.predicted.items()}
    return predictions.group[keep], predictions.fold[stage][keep], gold, guesses


def interval(values, level=LEVEL):
    """The percentile interval [low, high] of the finite values, or None where there are none."""
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def mean_interval(values, counts, level=LEVEL):
    """The interval of the mean of `values` (one per unit) over replicates `counts` (draws'
    (replicates, units)); differences of paired statistics resample with the same counts."""
    values = np.asarray(values, dtype=np.float64)
    return interval(counts @ values / counts.sum(axis=1), level)


def sp_of(f1, f1_random):
    """probing_score per replicate; NaN where it is undefined (the twin's F1 is 1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f1_random < 1.0, (f1 - f1_random) / (1.0 - f1_random), np.nan)


def replicate_scores(predictions, weights):
    """{stage: {'f1': (replicates,), 'f1_random': ..., 'probing_score': ...} or None}."""
    scores = {}
    for stage in ("useful", "depth"):
        samples = stage_samples(predictions, stage)
        if samples is None:
            scores[stage] = None
            continue
        unit, fold, gold, guesses = samples
        f1 = {who: fold_mean_f1(weights, unit, fold, gold, guess) for who, guess in guesses.items()}
        scores[stage] = {"f1": f1["model"], "f1_random": f1["random"],
                         "probing_score": sp_of(f1["model"], f1["random"])}
    return scores


def tree_shares(predictions, weights):
    """{who: {'useful_set': (replicates,), 'tree': ...}}: tree recovery's share per replicate."""
    unit = np.zeros(len(predictions.ids), dtype=int)
    unit[predictions.example] = predictions.group
    examples = weights @ np.bincount(unit, minlength=weights.shape[1])
    shares = {}
    for who in ("model", "random"):
        useful_set, tree = recovered(predictions, who)
        shares[who] = {name: weights @ np.bincount(unit, weights=right, minlength=weights.shape[1])
                       / examples for name, right in (("useful_set", useful_set), ("tree", tree))}
    return shares


def bootstrap(predictions, seed, replicates=REPLICATES, level=LEVEL):
    """The results.json fields of a setting: `interval` (f1, f1_random, probing_score per stage,
    tree_recovery per model/random), `f1_above_random_p` (one-sided bootstrap p-value of
    F1 model > F1 twin per stage), `probing_score_includes_zero` and `bootstrap` (how)."""
    started = time.perf_counter()
    n_units = int(predictions.group.max()) + 1
    weights = draws(n_units, replicates, seed).astype(float)
    scores = replicate_scores(predictions, weights)
    intervals = {name: {stage: None if s is None else interval(s[name], level)
                        for stage, s in scores.items()}
                 for name in ("f1", "f1_random", "probing_score")}
    intervals["tree_recovery"] = {
        who: {name: interval(share, level) for name, share in these.items()}
        for who, these in tree_shares(predictions, weights).items()}
    # The share of replicates where the model does no better than the twin, counted as in a
    # permutation test so that it is never 0 (at best 1 / (replicates + 1)).
    above = {stage: None if s is None else
             float((1 + np.sum(s["f1"] <= s["f1_random"])) / (replicates + 1))
             for stage, s in scores.items()}
    includes_zero = {stage: None if found is None else bool(found[0] <= 0 <= found[1])
                     for stage, found in intervals["probing_score"].items()}
    return {"interval": intervals, "f1_above_random_p": above,
            "probing_score_includes_zero": includes_zero,
            "bootstrap": {"replicates": replicates, "level": level, "seed": seed,
                          "unit": "cross-validation group", "units": n_units,
                          "seconds": round(time.perf_counter() - started, 4)}}


def point_scores(predictions):
    """The scores of the predictions as they are (every group once): the reported F1s and
    S_P, recomputed; what the intervals are around."""
    scores = replicate_scores(predictions, np.ones((1, int(predictions.group.max()) + 1)))
    return {stage: None if s is None else
            {"f1": float(s["f1"][0]), "f1_random": float(s["f1_random"][0]),
             "probing_score": probing_score(float(s["f1"][0]), float(s["f1_random"][0]))}
            for stage, s in scores.items()}
