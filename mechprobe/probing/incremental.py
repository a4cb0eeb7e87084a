"""Layer-wise kNN scores with one distance pass per layer (METHOD.md, section 6).

The layer-wise rows fit a kNN on every layer alone and on every prefix of layers. Fitted one by
one, as scikit-learn fits them, a fold costs features x (L + L(L+1)/2) distance terms per sample
pair: the cumulative prefixes dominate and grow with the square of the layer count. Manhattan
distances and squared Euclidean ones are sums over features, so a fold's distances on layer l,
computed once, are the single row's and, added to the running sum over layers 0..l-1, the
cumulative row's: features x L terms per pair.

The predictions are those of scikit-learn's KNeighborsClassifier(weights="distance", p=p) with k
clamped to the training fold (knn.FoldKNN): weights 1/distance, where a training sample is at
distance 0 only those at distance 0 vote (weight 1 each), and the vote is sklearn's own
weighted_mode over the neighbours nearest first, so tied classes go to the smallest label.
Where this can still differ from sklearn (only at exact or rounding-level ties):
- Distances are float64 sums computed per layer, then added over layers: equal to sklearn's to
  rounding (sklearn sums feature by feature, in float32 for float32 features in its brute-force
  search, and its Euclidean brute force expands |x|^2 - 2xy + |y|^2). Two neighbours whose
  distances differ by less than that rounding can come in the other order.
- Among training samples at exactly the k-th smallest distance, the ones with the lowest index
  are kept (a stable sort). sklearn keeps whichever its search meets first: kd-tree order for
  15 or fewer features, its brute-force heap's order otherwise (the two differ from each other).
- Equally distant neighbours vote here in index order, in sklearn in its search's order: class
  votes equal in exact arithmetic (say 1/6 + 3/7 each) can round to a different winner.
tests/test_knn_incremental.py checks the predictions against sklearn's where no such tie occurs,
and against the rules above where one does.
"""

import numpy as np
import torch
from sklearn.metrics import f1_score
from sklearn.utils.extmath import weighted_mode

# Pairs (test x train samples) per block of test samples: bounds memory at the paper's largest
# shape (a few float64 matrices of this size at once, 128 MB each) without slowing small runs.
BLOCK_PAIRS = 2**24

SUPPORTED_P = (1, 2)


def layerwise_fold_scores(X, y, folds, neighbors, p, device="cpu"):
    """Macro F1 of the kNN on every single layer and on every prefix of layers, per fold, and
    from the same pass each sample's out-of-fold label predicted by the kNN on all layers.

    X: (samples, layers, per-layer features); y: (samples,) class labels; folds: (train, test)
    index pairs; device: where the distances are computed (a CUDA device works). Returns
    (single, cumulative: arrays (folds, layers), predicted: (samples,))."""
    y = np.asarray(y)
    single = np.zeros((len(folds), X.shape[1]))
    cumulative = np.zeros((len(folds), X.shape[1]))
    out_of_fold = np.zeros(len(y), dtype=y.dtype)
    X = as_float64(X, device)
    for fold, (train, test) in enumerate(folds):
        predicted = fold_predictions(X, y, train, test, neighbors, p)
        out_of_fold[test] = predicted[1, -1]
        for layer in range(X.shape[1]):
            for mode, scores in enumerate((single, cumulative)):
                # the f1_macro scorer of cross_val_score: macro over the labels present
                scores[fold, layer] = f1_score(y[test], predicted[mode, layer], average="macro")
    return single, cumulative, out_of_fold


def as_float64(X, device="cpu"):
    """Features as a float64 tensor: exact differences of float32 features, sums rounded as
    little as sklearn's float64 sums."""
    X = np.asarray(X)
    if not np.isfinite(X).all():       # sklearn refuses such input; say so here too
        raise ValueError("Input X contains NaN or infinity.")
    return torch.as_tensor(X).to(device, torch.float64)


def all_layers_fold_f1(X, y, folds, neighbors, p, device="cpu"):
    """Macro F1 per fold of the kNN on all layers together: the last cumulative row of
    layerwise_fold_scores (the same distance sums, so the same numbers), without the other rows."""
    y = np.asarray(y)
    X = as_float64(X, device)
    last = X.shape[1] - 1
    return np.array([f1_score(y[test], fold_predictions(X, y, train, test, neighbors, p,
                                                        only_all=True)[1, last], average="macro")
                     for train, test in folds])


def fold_predictions(X, y, train, test, neighbors, p, only_all=False):
    """One fold's predicted labels of the test samples, (2, layers, test): [0] the kNN on each
    layer alone, [1] on layers 0..l. X: float64 tensor (samples, layers, features). only_all:
    only [1, last] (all layers) is predicted, the rest left 0."""
    if p not in SUPPORTED_P:
        raise ValueError(f"incremental kNN supports p in {SUPPORTED_P}, not {p}")
    # sklearn encodes the training fold's labels as 0..C-1 in sorted order and predicts those
    classes, codes = np.unique(y[train], return_inverse=True)
    k = min(neighbors, len(train))                      # as knn.FoldKNN
    n_layers = X.shape[1]
    predicted = np.zeros((2, n_layers, len(test)), dtype=np.intp)
    train_X = X[torch.as_tensor(train, device=X.device)]
    block = max(1, BLOCK_PAIRS // len(train))
    for start in range(0, len(test), block):
        test_X = X[torch.as_tensor(test[start:start + block], device=X.device)]
        total = None
        for layer in range(n_layers):
            part = powered_distances(test_X[:, layer], train_X[:, layer], p)
            total = part if total is None else total + part
            if only_all and layer < n_layers - 1:
                continue            # only the sum over every layer is wanted
            for mode, powered in [(1, total)] if only_all else [(0, part), (1, total)]:
                distances = powered if p == 1 else powered.sqrt()
                predicted[mode, layer, start:start + len(test_X)] = vote(*nearest(distances, k),
                                                                         codes)
    return classes[predicted]


def powered_distances(test, train, p):
    """(test, train) matrix of sum |x - y|^p over the features: the quantity that adds up over
    layers (Manhattan distance itself for p=1, the squared Euclidean distance for p=2)."""
    if p == 1:
        return torch.cdist(test, train, p=1)
    # torch.cdist(p=2) returns the square root, and squaring it back is not exact: equal sums
    # of squares (frequent with repeated feature values) would no longer tie. Summing the
    # squared differences keeps them exact; blocks of test rows keep the work in cache.
    out = torch.zeros(len(test), len(train), dtype=test.dtype, device=test.device)
    columns = train.T.contiguous()
    rows = max(1, 2**16 // max(1, len(train)))
    for start in range(0, len(test), rows):
        block, result = test[start:start + rows], out[start:start + rows]
        difference = torch.empty_like(result)
        for feature in range(test.shape[1]):
            torch.sub(block[:, feature, None], columns[feature], out=difference)
            result.addcmul_(difference, difference)
    return out


def nearest(distances, k):
    """The k nearest training samples of each test row, nearest first: (distances, indices).
    Ties at the k-th distance keep the lowest indices, and equal distances come in index order."""
    n_train = distances.shape[1]
    values, index = torch.topk(distances, min(k + 1, n_train), dim=1, largest=False)
    if k < n_train:
        # a (k+1)-th neighbour as near as the k-th: topk's choice among the ties is unspecified,
        # so these rows take the first k of a stable sort instead
        tied = (values[:, k] == values[:, k - 1]).nonzero().squeeze(1)
        values, index = values[:, :k], index[:, :k]
        if len(tied):
            values[tied], index[tied] = (part[:, :k] for part in
                                         torch.sort(distances[tied], dim=1, stable=True))
    # nearest first, as sklearn orders them for its vote; equal distances in index order
    index, order = index.sort(dim=1)
    values, order = values.gather(1, order).sort(dim=1, stable=True)
    return values, index.gather(1, order)


def vote(distances, index, codes):
    """sklearn's distance-weighted vote (neighbors._get_weights, then weighted_mode): label codes
    of the winning class per row."""
    distances = distances.cpu().numpy()
    labels = codes[index.cpu().numpy()]
    with np.errstate(divide="ignore"):
        weights = 1.0 / distances
    exact = np.isinf(weights)            # at distance 0: only those neighbours vote, weight 1
    rows = exact.any(axis=1)
    weights[rows] = exact[rows]
    mode, _ = weighted_mode(labels, weights, axis=1)
    return np.asarray(mode.ravel(), dtype=np.intp)
