"""The probes: which classifier reads the tree from the features (docs/METHOD.md, section 4).

Everything downstream of a probe (F1, S_P, the layer-wise rows, out-of-fold predictions, tree
recovery, bootstrap intervals, the report, knockout's predicted conditions) needs only what
`Probe.fit_layers` returns for given folds: each fold's macro F1 on every single layer and every
prefix of layers, and each sample's out-of-fold label from the fit on all layers. So a probe is
one object with that method, and any scikit-learn classifier is one:

    from sklearn.svm import LinearSVC
    run = mechprobe.RunConfig(probe=LinearSVC())   # or probe="knn" (default), probe="logistic"

- KNNProbe: the paper's kNN. For p 1 or 2 one distance pass per layer gives every row
  (incremental.py); any other p fits scikit-learn's KNeighborsClassifier per row.
- EstimatorProbe: any scikit-learn classifier, cloned and fitted per fold and per row.
- LogisticProbe: scikit-learn's LogisticRegression on standardised features (the linear probe
  of the probing literature, e.g. Hewitt & Liang 2019).
"""

import warnings

import numpy as np
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mechprobe.probing.incremental import SUPPORTED_P, all_layers_fold_f1, layerwise_fold_scores

PROBES = ("knn", "logistic")           # the probes the command line names (--probe)


class FoldKNN(KNeighborsClassifier):
    """A kNN whose k shrinks to the training fold's size: a small bucket's fold can hold fewer
    samples than --neighbors (crossval.neighbors_used reports it)."""

    def fit(self, X, y):
        self.n_neighbors = min(self.n_neighbors, len(X))
        return super().fit(X, y)


def fold_f1(y_true, y_pred):
    """The f1_macro scorer of cross_val_score: macro over the labels present."""
    return f1_score(y_true, y_pred, average="macro")


class Probe:
    """A probe: `fit_layers` and `record`. Subclasses that fit scikit-learn classifiers only
    give `estimator()`; the rows are then one fit per fold and row (EstimatorProbe)."""

    name = "probe"

    def fit_layers(self, X, y, folds, device="cpu", only_all=False):
        """(single, cumulative, predicted): each fold's macro F1 of the probe on every layer
        alone and on layers 0..l, arrays (folds, layers), and each sample's label from the fit
        on all layers while its fold was held out, (samples,). X: (samples, layers, per-layer
        features); folds: (train, test) index pairs. only_all: only cumulative[:, -1] and
        predicted are needed (the rest may be left 0)."""
        raise NotImplementedError

    def record(self):
        """The probe's name and parameters, as results.json keeps them."""
        raise NotImplementedError


class EstimatorProbe(Probe):
    """Any scikit-learn classifier, refitted (a clone) on each fold's training statements for
    every row: the layers of a statement flattened into one vector."""

    name = "estimator"

    def __init__(self, estimator):
        if not (hasattr(estimator, "fit") and hasattr(estimator, "predict")):
            raise ValueError(f"RunConfig.probe must be one of {PROBES}, a probes.Probe or a "
                             f"scikit-learn classifier (with fit and predict), got {estimator!r}")
        self._estimator = estimator

    def estimator(self):
        return clone(self._estimator)

    def fit_layers(self, X, y, folds, device="cpu", only_all=False):
        y = np.asarray(y)
        n_layers = X.shape[1]
        single = np.zeros((len(folds), n_layers))
        cumulative = np.zeros((len(folds), n_layers))
        predicted = np.zeros(len(y), dtype=y.dtype)
        with warnings.catch_warnings():
            # a linear probe that stops at max_iter is still a probe; the F1 says how good
            warnings.simplefilter("ignore", ConvergenceWarning)
            for fold, (train, test) in enumerate(folds):
                for layer in range(n_layers):
                    if not only_all:
                        guess = self.fit_predict(X[:, layer:layer + 1], y, train, test)
                        single[fold, layer] = fold_f1(y[test], guess)
                    if only_all and layer < n_layers - 1:
                        continue
                    guess = self.fit_predict(X[:, :layer + 1], y, train, test)
                    cumulative[fold, layer] = fold_f1(y[test], guess)
                predicted[test] = guess
        return single, cumulative, predicted

    def fit_predict(self, X, y, train, test):
        """The test samples' labels from one fit on the training samples, X's layers flattened."""
        flat = X.reshape(len(X), -1)
        return self.estimator().fit(flat[train], y[train]).predict(flat[test])

    def record(self):
        params = {key: value for key, value in self._estimator.get_params(deep=False).items()
                  if isinstance(value, (int, float, str, bool, type(None)))}
        return {"name": type(self._estimator).__name__, **params}


class LogisticProbe(EstimatorProbe):
    """LogisticRegression(C=c) on standardised features (the scaler fitted on the training
    fold). Each row is a fit from zero: starting a prefix of layers from the previous prefix's
    coefficients gave the same predictions and saved nothing measurable (docs/NOTES.md)."""

    name = "logistic"

    def __init__(self, c=1.0, max_iter=1000):
        self.c, self.max_iter = c, max_iter
        super().__init__(self.estimator())

    def estimator(self):
        return make_pipeline(StandardScaler(),
                             LogisticRegression(C=self.c, max_iter=self.max_iter))

    def record(self):
        return {"name": self.name, "c": self.c, "max_iter": self.max_iter,
                "features": "standardised"}


class KNNProbe(EstimatorProbe):
    """The paper's kNN: KNeighborsClassifier(n_neighbors, weights='distance', p), k clamped to
    the training fold. p 1 or 2: every row from one distance pass per layer (incremental.py),
    the predictions scikit-learn's up to exact ties; any other p: scikit-learn's fit per row."""

    name = "knn"

    def __init__(self, neighbors=8, p=2):
        self.neighbors, self.p = neighbors, p
        super().__init__(self.estimator())

    def estimator(self):
        return FoldKNN(n_neighbors=self.neighbors, weights="distance", p=self.p)

    @property
    def incremental(self):
        return self.p in SUPPORTED_P

    def fit_layers(self, X, y, folds, device="cpu", only_all=False):
        if not self.incremental:
            return super().fit_layers(X, y, folds, device, only_all)
        if only_all:
            scores = all_layers_fold_f1(X, y, folds, self.neighbors, self.p, device)
            cumulative = np.zeros((len(folds), X.shape[1]))
            cumulative[:, -1] = scores
            return np.zeros_like(cumulative), cumulative, None
        return layerwise_fold_scores(X, y, folds, self.neighbors, self.p, device)

    def record(self):
        return {"name": self.name, "neighbors": self.neighbors, "p": self.p}


def make_probe(probe, neighbors=8, p=2, c=1.0):
    """The Probe that RunConfig.probe names: 'knn' (with neighbors, p), 'logistic' (with c), a
    Probe, or a scikit-learn classifier."""
    if isinstance(probe, Probe):
        return probe
    if probe == "knn":
        return KNNProbe(neighbors, p)
    if probe == "logistic":
        return LogisticProbe(c)
    return EstimatorProbe(probe)


def probe_device(device):
    """Where the kNN distances are computed: the run's device; 'auto' is a GPU when there is one
    (so --device cpu keeps the probe on the CPU too)."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)
