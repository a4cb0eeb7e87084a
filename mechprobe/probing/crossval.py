"""Cross-validation of the two probes by example, and the probing score (METHOD.md, 4-6).

Samples are statements. X has shape (samples, layers, per-layer features): one feature per layer
for head-mean attention, one per head with per-head features. `groups` names each sample's
example, so that the statements of one example never straddle a train/test split. Which
classifier is the probe is the config's (probes.py: the kNN by default, a logistic regression,
any scikit-learn classifier); everything here needs only its fit_layers.
"""

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import GroupKFold, cross_val_score

from mechprobe.cli import UserError
from mechprobe.probing.probes import make_probe, probe_device


@dataclass(frozen=True)
class ProbeConfig:
    """Which probe reads the features and how it is cross-validated. The defaults are the
    command line's and RunConfig's (stated once, here)."""

    neighbors: int = 8       # knn: neighbours
    p: int = 2               # knn: Minkowski p, 2 Euclidean (k-th smallest), 1 Manhattan (text tasks)
    folds: int = 5
    seed: int = 0
    probe: object = "knn"    # "knn", "logistic", a probes.Probe or a scikit-learn classifier
    c: float = 1.0           # logistic: inverse regularisation strength
    device: str = "auto"     # where the kNN distances are computed (auto: a GPU when there is one)

    @property
    def classifier(self):
        """The probes.Probe this config names."""
        return make_probe(self.probe, self.neighbors, self.p, self.c)

    def record(self):
        """results.json's "probe": the probe's name and parameters, and the folds."""
        return {**self.classifier.record(), "folds": self.folds}


@dataclass
class Samples:
    """Statement-level samples pooled from many examples."""

    X: np.ndarray            # (n, layers, per-layer features)
    useful: np.ndarray       # (n,) bool
    depth: np.ndarray        # (n,) int class, -1 where not useful
    groups: np.ndarray       # (n,) cross-validation group: the example, or what examples share

    @classmethod
    def from_examples(cls, features, useful, depth, groups=None):
        """Per example: features (S_i, layers, f), useful (S_i,), depth (S_i,) -> one Samples.
        `groups`: a label per example (e.g. its theory); default, each example its own group."""
        # Numbered in order of first appearance: one group per example numbers them as before.
        first = {}
        labels = range(len(features)) if groups is None else [first.setdefault(g, len(first))
                                                              for g in groups]
        groups = np.concatenate([np.full(len(f), label) for label, f in zip(labels, features)])
        return cls(np.concatenate(features).astype(np.float32),
                   np.concatenate(useful).astype(bool), np.concatenate(depth).astype(int), groups)


def cross_validated_f1(X, y, groups, config, reference=False):
    """Macro F1 over folds grouped by example: (mean, std over folds). X: (samples, layers,
    features). The probe's fit on all layers, as the last cumulative layer-wise row gives it;
    `reference`: scikit-learn's cross_val_score of the probe's estimator on the flattened
    features (the tests' reference for the incremental kNN)."""
    check_groups(groups, config)
    if reference:
        scores = cross_val_score(config.classifier.estimator(), X.reshape(len(X), -1), y,
                                 groups=groups, cv=splitter(config), scoring="f1_macro",
                                 error_score="raise")
    else:
        _, cumulative, _ = config.classifier.fit_layers(X, y, folds_of(groups, config),
                                                        probe_device(config.device), only_all=True)
        scores = cumulative[:, -1]
    return float(np.mean(scores)), float(np.std(scores))


def check_groups(groups, config):
    n_groups = len(np.unique(groups))
    if n_groups < config.folds:
        raise UserError(f"only {n_groups} independent examples (examples sharing a context count "
                        f"once) for {config.folds}-fold cross-validation: "
                        "probe more examples (--n-examples) or use fewer --folds")


def splitter(config):
    return GroupKFold(n_splits=config.folds, shuffle=True, random_state=config.seed)


def folds_of(groups, config):
    """(train, test) index pairs of the cross-validation, whole groups on one side."""
    return list(splitter(config).split(np.zeros(len(groups)), groups=groups))


def neighbors_used(samples, config):
    """The k each stage's kNN uses: --neighbors, or the size of the smallest training fold where
    that is smaller (a small bucket; the depth stage sees only useful statements). Recorded in
    results.json and reported, so a clamped k is never silent. None for another probe."""
    if config.probe != "knn":
        return None
    used = {}
    for stage, keep in (("useful", slice(None)), ("depth", samples.useful)):
        groups = samples.groups[keep]
        if stage == "depth" and not depth_applicable(samples) or len(np.unique(groups)) < config.folds:
            used[stage] = None
            continue
        used[stage] = min([config.neighbors] + [len(train) for train, _ in folds_of(groups, config)])
    return used


def depth_applicable(samples):
    """Stage 2 needs at least two height classes among the useful statements."""
    return len(np.unique(samples.depth[samples.useful])) > 1


def probe_stages(samples, config, layers=None, reference=False):
    """{'useful': (mean, std), 'depth': (mean, std) or None} using the given layer positions
    (`reference`: scikit-learn's own cross-validation, see cross_validated_f1)."""
    X = samples.X if layers is None else samples.X[:, layers]
    result = {"useful": cross_validated_f1(X, samples.useful.astype(int), samples.groups, config,
                                           reference),
              "depth": None}
    if depth_applicable(samples):
        keep = samples.useful
        result["depth"] = cross_validated_f1(X[keep], samples.depth[keep], samples.groups[keep],
                                             config, reference)
    return result


def probing_score(f1_model, f1_random):
    """S_P = (F1_model - F1_random) / (1 - F1_random); None where not applicable or undefined."""
    if f1_model is None or f1_random is None or f1_random >= 1.0:
        return None
    return (f1_model - f1_random) / (1.0 - f1_random)


def mean_of(stage):
    return None if stage is None else stage[0]


def compare(model, random, config, layers=None, reference=False):
    """Both stages on the model's and the random model's features, with probing scores."""
    return as_comparison(probe_stages(model, config, layers, reference),
                         probe_stages(random, config, layers, reference))


def layerwise(model, random, config, layer_names, device=None):
    """Rows per layer, mode 'single' (that layer only) and 'cumulative' (layers up to it)."""
    return overall_and_layerwise(model, random, config, layer_names, device)[1]


def overall_and_layerwise(model, random, config, layer_names, device=None):
    """(compare's result on all layers, layerwise's rows) of one setting: the all-layers fit is
    the last cumulative row, so one pass gives both."""
    return overall_layerwise_predictions(model, random, config, layer_names, device)[:2]


def overall_layerwise_predictions(model, random, config, layer_names, device=None):
    """overall_and_layerwise's pair and the all-layers fit's out-of-fold predictions:
    {'model': stages, 'random': stages}, stages {'useful': (labels, fold of each sample),
    'depth': the same over the useful statements, or None}, all from one layer_f1 pass each."""
    trained, untrained = layer_f1(model, config, device), layer_f1(random, config, device)

    def at(f1, mode, position):
        return {stage: None if rows is None else rows[mode][position] for stage, rows in f1.items()}

    def overall(f1):
        return {stage: None if rows is None else rows["overall"] for stage, rows in f1.items()}

    rows = [layer_row(layer, mode, at(trained, mode, position), at(untrained, mode, position))
            for mode in ("single", "cumulative") for position, layer in enumerate(layer_names)]
    return (as_comparison(overall(trained), overall(untrained)), rows,
            {"model": predictions_of(trained), "random": predictions_of(untrained)})


def as_comparison(trained, untrained):
    """compare's dict from each stage's (mean, std) over folds, or None, of model and twin."""
    return {
        "f1": {stage: mean_of(trained[stage]) for stage in trained},
        "f1_spread": {stage: None if trained[stage] is None else trained[stage][1] for stage in trained},
        "f1_random": {stage: mean_of(untrained[stage]) for stage in untrained},
        "f1_random_spread": {stage: None if untrained[stage] is None else untrained[stage][1]
                             for stage in untrained},
        "probing_score": {stage: probing_score(mean_of(trained[stage]), mean_of(untrained[stage]))
                          for stage in trained},
    }


def stage_data(samples):
    """{'useful': (X, labels, groups) of every statement, 'depth': the same of the useful
    statements, or None where probe 2 does not apply}."""
    result = {"useful": (samples.X, samples.useful.astype(int), samples.groups), "depth": None}
    if depth_applicable(samples):
        keep = samples.useful
        result["depth"] = (samples.X[keep], samples.depth[keep], samples.groups[keep])
    return result


def fold_of(folds, n):
    """The test fold of each of n samples."""
    fold = np.zeros(n, dtype=int)
    for index, (_, test) in enumerate(folds):
        fold[test] = index
    return fold


def out_of_fold(samples, config, device=None):
    """Each stage's out-of-fold labels on all layers and test folds, {stage: (labels, folds) or
    None}: the predictions behind the probe's F1."""
    return predictions_of(layer_f1(samples, config, device))


def predictions_of(f1):
    """layer_f1's per-stage out-of-fold (labels, folds), None where a stage did not run."""
    return {stage: None if rows is None else (rows["predicted"], rows["fold"])
            for stage, rows in f1.items()}


def layer_f1(samples, config, device=None):
    """{'useful': {'single': [mean F1 per layer], 'cumulative': [...], 'overall': (mean, std) of
    the last cumulative row, as cross_validated_f1 gives them, 'predicted': each sample's
    out-of-fold label on all layers, 'fold': its test fold}, 'depth': the same or None}.
    `device`: where the kNN's distances are computed (default: the config's)."""
    probe, device = config.classifier, device or probe_device(config.device)
    result = stage_data(samples)
    for stage, data in result.items():
        if data is None:
            continue
        X, y, groups = data
        check_groups(groups, config)
        folds = folds_of(groups, config)
        single, cumulative, predicted = probe.fit_layers(X, y, folds, device)
        # a layer's fold scores as one contiguous 1-D array: the sum cross_validated_f1 takes
        result[stage] = {mode: [float(np.mean(np.ascontiguousarray(scores[:, layer])))
                                for layer in range(X.shape[1])]
                         for mode, scores in (("single", single), ("cumulative", cumulative))}
        last = np.ascontiguousarray(cumulative[:, -1])
        result[stage]["overall"] = (float(np.mean(last)), float(np.std(last)))
        result[stage]["predicted"], result[stage]["fold"] = predicted, fold_of(folds, len(y))
    return result


def layerwise_sklearn(model, random, config, layer_names):
    """layerwise's rows from one scikit-learn fit of the probe's estimator per row: the reference
    the incremental kNN is tested against."""
    rows = []
    for mode in ("single", "cumulative"):
        for position, layer in enumerate(layer_names):
            chosen = [position] if mode == "single" else list(range(position + 1))
            result = compare(model, random, config, chosen, reference=True)
            rows.append(layer_row(layer, mode, result["f1"], result["f1_random"]))
    return rows


def layer_row(layer, mode, f1, f1_random):
    return {"layer": layer, "mode": mode,
            "f1_useful": f1["useful"], "f1_depth": f1["depth"],
            "f1_random_useful": f1_random["useful"], "f1_random_depth": f1_random["depth"],
            "probing_score_useful": probing_score(f1["useful"], f1_random["useful"]),
            "probing_score_depth": probing_score(f1["depth"], f1_random["depth"])}


def best_layer(rows, stage):
    """The single layer with the highest probing score for `stage` ('useful' or 'depth')."""
    scored = [r for r in rows if r["mode"] == "single" and r[f"probing_score_{stage}"] is not None]
    return max(scored, key=lambda r: r[f"probing_score_{stage}"])["layer"] if scored else None
