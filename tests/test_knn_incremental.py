"""The layer-wise rows' incremental kNN (mechprobe/probing/incremental.py) against sklearn's."""

import math

import numpy as np
import pytest
from sklearn.utils.extmath import weighted_mode

from mechprobe.probing import incremental
from mechprobe.probing.probes import FoldKNN
from mechprobe.probing.crossval import (
    ProbeConfig,
    Samples,
    folds_of,
    layerwise,
    layerwise_sklearn,
)

LAYERS = 4


def bucket(seed, per_layer, integer, examples=30, statements=6):
    """Features (statements, layers, per_layer) per example, about half the statements useful,
    three depth classes. `integer`: values in {0, 1, 2}, so that many samples are exact
    duplicates in a layer and many distances are equal; the first statement of each example
    repeats one of the previous example's, so whole samples recur across folds."""
    rng = np.random.default_rng(seed)
    features, useful, depth = [], [], []
    for _ in range(examples):
        shape = (statements, LAYERS, per_layer)
        x = rng.integers(0, 3, shape) if integer else rng.random(shape)
        if integer and features:
            x[0] = features[-1][1]
        u = rng.random(statements) < 0.5
        features.append(x.astype(np.float32)), useful.append(u)
        depth.append(np.where(u, rng.integers(0, 3, statements), -1))
    return features, useful, depth


def model_and_twin(per_layer, integer):
    features, useful, depth = bucket(0, per_layer, integer)
    twin = bucket(1, per_layer, integer)[0]
    return (Samples.from_examples(features, useful, depth),
            Samples.from_examples(twin, useful, depth))


def assert_same_rows(mine, reference):
    assert [(r["layer"], r["mode"]) for r in mine] == [(r["layer"], r["mode"]) for r in reference]
    for a, b in zip(mine, reference):
        for key in a:
            if key.startswith(("f1", "probing_score")):
                assert a[key] == pytest.approx(b[key], abs=1e-12), (a["layer"], a["mode"], key)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("per_layer", [1, 20])   # sklearn: kd-tree up to 15 features, else brute
@pytest.mark.parametrize("neighbors", [3, 500])  # 500: more than a training fold holds
def test_rows_equal_sklearn_on_random_features(p, per_layer, neighbors):
    model, twin = model_and_twin(per_layer, integer=False)
    config = ProbeConfig(neighbors=neighbors, p=p, folds=5, seed=0)
    names = [2, 5, 7, 9]
    rows = layerwise(model, twin, config, names)
    assert all(r["f1_depth"] is not None for r in rows)
    assert_same_rows(rows, layerwise_sklearn(model, twin, config, names))


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("per_layer", [1, 3])
def test_rows_equal_sklearn_on_ties_when_every_training_sample_votes(p, per_layer):
    # With k above the fold size there is no choice among samples at the k-th distance, so
    # duplicates (the distance-0 rule), equal distances and tied class votes must all come out
    # exactly as sklearn's.
    model, twin = model_and_twin(per_layer, integer=True)
    flat = model.X.reshape(len(model.X), -1)
    assert len(np.unique(flat, axis=0)) < len(flat)              # exact duplicates
    assert len(np.unique(model.X[:, 0], axis=0)) <= 27          # a layer has few distinct values
    config = ProbeConfig(neighbors=500, p=p, folds=5, seed=3)
    assert_same_rows(layerwise(model, twin, config, list(range(LAYERS))),
                     layerwise_sklearn(model, twin, config, list(range(LAYERS))))


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("per_layer", [1, 3])
def test_ties_at_the_kth_distance(p, per_layer):
    # sklearn keeps whichever samples at the k-th distance its search meets first (kd-tree or
    # brute-force heap order, which differ from each other), and adds the votes of equally
    # distant neighbours in that order too, so votes equal in exact arithmetic can round either
    # way. The incremental kNN keeps the lowest indices and adds in (distance, index) order. So:
    # its predictions are sklearn's wherever neither kind of tie occurs, and everywhere they are
    # sklearn's vote over the k nearest in (distance, index) order.
    model, _ = model_and_twin(per_layer, integer=True)
    y, k = model.useful.astype(int), 8
    X = incremental.as_float64(model.X)
    counts = {"unambiguous": 0, "tied": 0}
    for train, test in folds_of(model.groups, ProbeConfig()):
        predicted = incremental.fold_predictions(X, y, train, test, k, p)
        for mode, layers in [(0, [layer]) for layer in range(LAYERS)] + [(1, list(range(LAYERS)))]:
            flat = model.X[:, layers].reshape(len(model.X), -1).astype(np.float64)
            whole = FoldKNN(n_neighbors=k, weights="distance", p=p).fit(flat[train], y[train])
            whole = whole.predict(flat[test])
            for row, sample in enumerate(test):
                distances = (np.abs(flat[train] - flat[sample]) ** p).sum(axis=1) ** (1 / p)
                order = np.lexsort((np.arange(len(train)), distances))[:k + 1]
                nearest, labels = distances[order[:k]], y[train][order[:k]]
                weights = (nearest == 0).astype(float) if (nearest == 0).any() else 1 / nearest
                mine = predicted[mode, layers[-1], row]
                assert mine == weighted_mode(labels, weights)[0][0]
                votes = sorted(math.fsum(weights[labels == c]) for c in np.unique(labels))
                if distances[order[k]] > nearest[-1] and (len(votes) == 1
                                                          or votes[-1] - votes[-2] > 1e-9):
                    counts["unambiguous"] += 1
                    assert mine == whole[row]
                else:
                    counts["tied"] += 1
    assert counts["tied"] > 50 and counts["unambiguous"] > 5


def test_nearest_keeps_the_lowest_index_among_ties():
    distances = torch_tensor([[3.0, 1.0, 2.0, 1.0, 2.0, 2.0, 0.5]])
    values, index = incremental.nearest(distances, 4)
    assert index.tolist() == [[6, 1, 3, 2]] and values.tolist() == [[0.5, 1.0, 1.0, 2.0]]
    values, index = incremental.nearest(distances, 7)        # all: nearest first, ties by index
    assert index.tolist() == [[6, 1, 3, 2, 4, 5, 0]]


def test_vote_is_sklearns():
    distances = torch_tensor([[0.0, 0.0, 1.0], [1.0, 2.0, 2.0], [1.0, 1.0, 3.0]])
    index = torch_tensor([[0, 1, 2], [0, 1, 2], [0, 1, 2]]).long()
    codes = np.array([1, 0, 0])
    # row 0: only the two at distance 0 vote, one each: the smaller label wins the tie;
    # row 1: 1 against 1/2 + 1/2, tied: the smaller label; row 2: 1 + 1/3 against 1
    assert incremental.vote(distances, index, codes).tolist() == [0, 0, 0]
    assert incremental.vote(distances, index, np.array([1, 1, 0])).tolist() == [1, 1, 1]


def test_other_p_falls_back_to_sklearn():
    model, twin = model_and_twin(2, integer=False)
    config = ProbeConfig(neighbors=5, p=3)
    assert layerwise(model, twin, config, [0, 1, 2, 3]) == layerwise_sklearn(model, twin, config,
                                                                            [0, 1, 2, 3])
    with pytest.raises(ValueError, match="p in"):
        incremental.fold_predictions(incremental.as_float64(model.X), model.useful,
                                     np.arange(10), np.arange(10, 20), 5, 3)


def torch_tensor(rows):
    import torch
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize("p", [1, 2])
def test_all_layers_fit_is_the_last_cumulative_row_and_sklearns(p):
    """compare's all-layers F1 comes from the same layer-by-layer distance sums as the rows, so it
    equals the last cumulative row exactly; on random features it is also sklearn's."""
    from mechprobe.probing.crossval import compare

    model, twin = model_and_twin(per_layer=3, integer=False)
    config = ProbeConfig(neighbors=5, p=p, folds=3, seed=0)
    names = list(range(LAYERS))
    result = compare(model, twin, config)
    last = layerwise(model, twin, config, names)[-1]
    assert last["mode"] == "cumulative"
    assert result["f1"]["useful"] == last["f1_useful"]
    assert result["f1_random"]["depth"] == last["f1_random_depth"]
    reference = compare(model, twin, config, reference=True)
    for key in ("f1", "f1_random", "f1_spread"):
        for stage in ("useful", "depth"):
            assert result[key][stage] == pytest.approx(reference[key][stage], abs=1e-12)


def test_one_pass_gives_compare_and_the_rows():
    """probe_setting's all-layers scores and rows from one pass equal compare and layerwise."""
    from mechprobe.probing.crossval import compare, overall_and_layerwise

    model, twin = model_and_twin(per_layer=2, integer=False)
    config = ProbeConfig(neighbors=4, p=1, folds=3, seed=1)
    overall, rows = overall_and_layerwise(model, twin, config, list(range(LAYERS)))
    assert overall == compare(model, twin, config)
    assert rows == layerwise(model, twin, config, list(range(LAYERS)))
