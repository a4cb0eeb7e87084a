"""Per-statement predictions, tree recovery and bootstrap intervals (predictions.py,
tree_recovery.py, bootstrap.py), on small synthetic settings: no model is loaded."""

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score
from test_knn_incremental import bucket

from mechprobe.probing.bootstrap import bootstrap, draws, fold_mean_f1, point_scores
from mechprobe.probing.crossval import ProbeConfig
from mechprobe.probing.result import ProbeResult
from mechprobe.probing.run import probe_setting
from mechprobe.probing.predictions import NO_LABEL, SettingPredictions, read_predictions
from mechprobe.probing.tree_recovery import recovered, tree_recovery


def setting(p=2, examples=40, seed=0):
    """probe_setting on a synthetic bucket whose model features carry the labels a little."""
    features, useful, depth = bucket(seed, 3, integer=False, examples=examples)
    twin = bucket(seed + 1, 3, integer=False, examples=examples)[0]
    # the model's feature: the gold labels, blurred, in layer 0 (so F1 is well above the twin's)
    features = [f.copy() for f in features]
    noise = np.random.default_rng(seed + 2)
    for f, u, d in zip(features, useful, depth):
        f[:, 0, 0] = u + 0.3 * d + noise.normal(0, 0.3, len(u))
    config = ProbeConfig(neighbors=5, p=p, folds=5, seed=0)
    return probe_setting(features, twin, useful, depth, config, [0, 1, 2, 3]), useful, depth


def hand_built(useful_guess, depth_guess, depth_probed=True):
    """Two examples of three statements: example 0 gold useful [1, 1, 0] at depths [0, 1, -],
    example 1 gold [0, 1, 1] at [-, 0, 1]; the twin guesses nothing useful."""
    useful = np.array([1, 1, 0, 0, 1, 1], dtype=bool)
    depth = np.array([0, 1, NO_LABEL, NO_LABEL, 0, 1])
    if not depth_probed:
        depth = np.where(useful, 0, NO_LABEL)
    n = len(useful)
    guess_depth = np.where(useful, depth_guess, NO_LABEL) if depth_probed else np.full(n, NO_LABEL)
    return SettingPredictions(
        ids=["a", "b"], example=np.array([0, 0, 0, 1, 1, 1]), statement=np.array([0, 1, 2] * 2),
        group=np.array([0, 0, 0, 1, 1, 1]), useful=useful, depth=depth,
        predicted={"model": {"useful": np.array(useful_guess, dtype=bool), "depth": guess_depth},
                   "random": {"useful": np.zeros(n, dtype=bool), "depth": np.full(n, NO_LABEL)}},
        fold={"useful": np.array([0, 0, 0, 1, 1, 1]), "depth": np.where(useful, [0, 0, 0, 1, 1, 1],
                                                                         NO_LABEL)},
        depth_probed=depth_probed, features=np.zeros((n, 1, 1)), random_features=np.zeros((n, 1, 1)),
        layers=[0])


def test_tree_recovery_on_hand_built_predictions():
    # example a: useful set and depths right; example b: useful set right, one depth wrong
    right = hand_built([1, 1, 0, 0, 1, 1], [0, 1, 9, 9, 1, 1])
    assert [list(r) for r in recovered(right, "model")] == [[True, True], [True, False]]
    assert tree_recovery(right)["model"] == {"useful_set": 1.0, "tree": 0.5}
    assert tree_recovery(right)["random"] == {"useful_set": 0.0, "tree": 0.0}
    # one extra statement called useful in b: b's tree is lost even with its depths right
    extra = hand_built([1, 1, 0, 1, 1, 1], [0, 1, 9, 9, 0, 1])
    assert tree_recovery(extra)["model"] == {"useful_set": 0.5, "tree": 0.5}
    # a depth wrong on a statement the useful probe misses does not count twice
    missed = hand_built([1, 0, 0, 0, 1, 1], [0, 0, 9, 9, 0, 1])
    assert [list(r) for r in recovered(missed, "model")] == [[False, True], [False, True]]


def test_without_probe_2_the_tree_is_the_useful_set():
    shallow = hand_built([1, 1, 0, 1, 1, 1], None, depth_probed=False)
    useful_set, tree = recovered(shallow, "model")
    assert list(useful_set) == list(tree) == [True, False]


def test_fold_mean_f1_equals_sklearn_with_weights():
    """Each replicate is sklearn's f1_macro per fold, samples weighted by their unit's draws,
    averaged over folds: checked on random labels and random draws."""
    rng = np.random.default_rng(3)
    unit = np.repeat(np.arange(30), 4)
    fold = unit % 3
    gold, predicted = rng.integers(0, 3, len(unit)), rng.integers(0, 4, len(unit))
    weights = draws(30, 20, seed=1).astype(float)
    got = fold_mean_f1(weights, unit, fold, gold, predicted)
    for row, weight in zip(got, weights):
        per_fold = []
        for f in range(3):
            keep = (fold == f) & (weight[unit] > 0)
            if keep.any():
                per_fold.append(f1_score(gold[keep], predicted[keep], average="macro",
                                         sample_weight=weight[unit][keep]))
        assert row == pytest.approx(np.mean(per_fold), abs=1e-12)


@pytest.mark.parametrize("p", [2, 3])     # 3: sklearn's kNN, refitted once for the predictions
def test_predictions_give_back_the_reported_scores(p):
    result, useful, depth = setting(p)
    predictions = result["predictions"]
    assert len(predictions.useful) == result["n_statements"] == sum(len(u) for u in useful)
    assert predictions.depth_probed
    again = point_scores(predictions)
    for stage in ("useful", "depth"):
        assert again[stage]["f1"] == pytest.approx(result["f1"][stage], abs=1e-12)
        assert again[stage]["f1_random"] == pytest.approx(result["f1_random"][stage], abs=1e-12)
        assert again[stage]["probing_score"] == pytest.approx(result["probing_score"][stage],
                                                              abs=1e-12)
    # out-of-fold: every statement of an example is predicted from the same held-out fold
    for e in range(len(useful)):
        assert len(set(predictions.fold["useful"][predictions.example == e])) == 1


def test_predictions_jsonl_has_a_row_per_statement_and_its_f1(tmp_path):
    result, useful, depth = setting()
    probed = ProbeResult({"task": "test"}, {"s": result})
    assert "predictions" not in probed.settings["s"] and "s" in probed.predictions
    saved = probed.save(str(tmp_path))
    assert "predictions" not in json.dumps(saved)
    rows = read_predictions(tmp_path / "predictions.jsonl")
    assert len(rows) == result["n_statements"]
    assert [r["useful"] for r in rows] == [int(x) for u in useful for x in u]
    assert [r["depth"] for r in rows] == [None if x < 0 else int(x) for d in depth for x in d]
    assert {r["example"] for r in rows} == {str(i) for i in range(len(useful))}
    assert len(rows[0]["feature"]) == 4 and len(rows[0]["feature"][0]) == 3   # layers x features
    # the reported F1: the mean over folds of macro F1 of the rows' out-of-fold predictions
    for who, key in (("model", "f1"), ("random", "f1_random")):
        per_fold = [f1_score([r["useful"] for r in rows if r["fold"]["useful"] == f],
                             [r[who]["useful"] for r in rows if r["fold"]["useful"] == f],
                             average="macro") for f in range(5)]
        assert np.mean(per_fold) == pytest.approx(result[key]["useful"], abs=1e-12)
        depth_rows = [r for r in rows if r["depth"] is not None]
        per_fold = [f1_score([r["depth"] for r in depth_rows if r["fold"]["depth"] == f],
                             [r[who]["depth"] for r in depth_rows if r["fold"]["depth"] == f],
                             average="macro") for f in range(5)]
        assert np.mean(per_fold) == pytest.approx(result[key]["depth"], abs=1e-12)


def test_bootstrap_is_seeded_and_its_intervals_hold_the_scores():
    result, _, _ = setting()
    predictions = result["predictions"]
    first, second = bootstrap(predictions, seed=0), bootstrap(predictions, seed=0)
    other = bootstrap(predictions, seed=1)
    for found in (first, second, other):
        found["bootstrap"].pop("seconds")
    assert first == second and first["interval"] != other["interval"]
    for stage in ("useful", "depth"):
        for key in ("f1", "f1_random", "probing_score"):
            low, high = first["interval"][key][stage]
            assert low <= result[key][stage] <= high and low < high, (stage, key)
        p = first["f1_above_random_p"][stage]
        assert 1 / 1001 <= p <= 1
    # the model's features carry the labels, the twin's do not: F1 above the twin, S_P above 0
    assert first["f1_above_random_p"]["useful"] < 0.01
    assert first["probing_score_includes_zero"]["useful"] is False
    for who in ("model", "random"):
        low, high = first["interval"]["tree_recovery"][who]["useful_set"]
        assert low <= result["tree_recovery"][who]["useful_set"] <= high


def test_a_twin_as_good_as_the_model_is_flagged():
    """The twin's predictions copied from the model's: S_P is 0, its interval includes 0, and
    the one-sided test does not find the model better (p = 1)."""
    result, _, _ = setting()
    predictions = result["predictions"]
    predictions.predicted["random"] = {k: v.copy() for k, v in predictions.predicted["model"].items()}
    found = bootstrap(predictions, seed=0)
    assert found["probing_score_includes_zero"] == {"useful": True, "depth": True}
    assert found["f1_above_random_p"] == {"useful": 1.0, "depth": 1.0}
    printed = ProbeResult({}, {"s": {**result, **found,
                                     "tree_recovery": tree_recovery(predictions)}}).report()
    assert "flag: the S_P interval includes 0 in s (S_P1, S_P2)" in printed
    assert "S_P1_95" in printed and "tree_rand" in printed
