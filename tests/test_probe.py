"""Features and probes: token-to-statement mapping, pooling, grouped cross-validation, scores."""

import numpy as np
import pytest
from sklearn.metrics import f1_score
from sklearn.model_selection import GroupKFold
from sklearn.neighbors import KNeighborsClassifier
from transformers import AutoTokenizer

from mechprobe.probing import crossval as probe
from mechprobe.attention.features import Example, example_features, segment_tokens
from mechprobe.probing.crossval import ProbeConfig, Samples


def test_segments_survive_bpe_merges(bpe_gpt2_dir):
    tokenizer = AutoTokenizer.from_pretrained(bpe_gpt2_dir)
    # "12" is frequent in the fixture's corpus, so BPE merges the two one-character segments.
    assert len(tokenizer("12")["input_ids"]) == 1
    ids, positions = segment_tokens(tokenizer, ["1", "2", " 345", " 7"])
    assert ids == tokenizer("12 345 7")["input_ids"]
    assert positions[0] == positions[1] == [0]          # the merged token counts for both
    assert all(positions)                                # no segment without a token
    covered = sorted({p for seg in positions for p in seg})
    assert covered == list(range(len(ids)))
    assert positions[2][0] == 1 and positions[3][-1] == len(ids) - 1


def test_example_features_pool_queries_and_statements():
    # layers=2, heads=1, rows R=2, tokens N=4
    weights = np.arange(16, dtype=np.float32).reshape(2, 1, 2, 4)
    example = Example(input_ids=[5, 6, 7, 8], query=[2, 3], statements=[[0, 1], [2]])
    mean = example_features(weights, example)
    # layer 0: rows [0,1,2,3] and [4,5,6,7] -> mean row [2,3,4,5]; statements: mean(2,3), 4
    assert mean.shape == (2, 2, 1)
    assert mean[:, 0, 0].tolist() == [2.5, 4.0]
    assert example_features(weights, example, "max", "sum")[:, 1, 0].tolist() == [12 + 13, 14]


def toy_samples(n_examples, signal, seed=0):
    """8 statements per example; the useful ones (first 3) get feature `signal` in layer 1."""
    rng = np.random.default_rng(seed)
    features, useful, depth = [], [], []
    for _ in range(n_examples):
        x = rng.normal(size=(8, 2, 1)).astype(np.float32)
        u = np.arange(8) < 3
        d = np.where(u, np.r_[0, 0, 1, [-1] * 5], -1)
        x[u, 1, 0] += signal
        x[d == 1, 0, 0] += signal
        features.append(x), useful.append(u), depth.append(d)
    return Samples.from_examples(features, useful, depth)


def test_folds_never_split_an_example(monkeypatch):
    samples = toy_samples(20, signal=3.0)
    seen = []
    from sklearn.neighbors import KNeighborsClassifier
    real_fit = KNeighborsClassifier.fit

    def spy(self, X, y):
        seen.append(X)
        return real_fit(self, X, y)

    monkeypatch.setattr(KNeighborsClassifier, "fit", spy)
    # reference=True: sklearn's kNN, whose fits show the folds (the incremental way uses the same)
    probe.cross_validated_f1(samples.X, samples.useful.astype(int), samples.groups, ProbeConfig(),
                             reference=True)
    assert seen
    flat = samples.X.reshape(len(samples.X), -1)
    for train_X in seen:
        train_rows = {tuple(r) for r in train_X}
        in_train = np.array([tuple(r) in train_rows for r in flat])
        for g in np.unique(samples.groups):  # each example is wholly in or wholly out
            assert len(set(in_train[samples.groups == g])) == 1


def test_scores_and_layerwise():
    config = ProbeConfig(seed=0)
    model, random = toy_samples(40, signal=4.0), toy_samples(40, signal=0.0, seed=1)
    result = probe.compare(model, random, config)
    assert result["f1"]["useful"] > 0.95 and result["f1"]["depth"] > 0.9
    assert result["f1_random"]["useful"] < 0.75
    expected = (result["f1"]["useful"] - result["f1_random"]["useful"]) / (1 - result["f1_random"]["useful"])
    assert result["probing_score"]["useful"] == pytest.approx(expected)
    # mean and spread over folds, recomputed with scikit-learn's own grouped folds and kNN
    X, y = model.X.reshape(len(model.X), -1), model.useful.astype(int)
    folds = GroupKFold(config.folds, shuffle=True, random_state=0).split(X, y, model.groups)
    scores = [f1_score(y[test], KNeighborsClassifier(config.neighbors, weights="distance", p=config.p)
                       .fit(X[train], y[train]).predict(X[test]), average="macro") for train, test in folds]
    assert result["f1"]["useful"] == pytest.approx(np.mean(scores), abs=1e-12)
    assert result["f1_spread"]["useful"] == pytest.approx(np.std(scores), abs=1e-12)
    assert 0 < result["f1_spread"]["useful"] < 0.1    # the folds differ, but little
    rows = probe.layerwise(model, random, config, layer_names=[3, 7])
    assert [(r["layer"], r["mode"]) for r in rows] == [(3, "single"), (7, "single"),
                                                       (3, "cumulative"), (7, "cumulative")]
    # usefulness lives in the second layer only, depth in the first only
    assert rows[1]["f1_useful"] > rows[0]["f1_useful"] + 0.2
    assert rows[0]["f1_depth"] > rows[1]["f1_depth"] + 0.2
    assert probe.best_layer(rows, "useful") == 7 and probe.best_layer(rows, "depth") == 3


def test_single_class_depth_is_not_applicable():
    samples = toy_samples(10, signal=1.0)
    samples.depth[samples.useful] = 0
    result = probe.compare(samples, samples, ProbeConfig())
    assert result["f1"]["depth"] is None and result["probing_score"]["depth"] is None
    assert probe.probing_score(0.5, 1.0) is None


def test_batches_respect_examples_and_tokens():
    examples = [Example([0] * n, [n - 1], [[0]]) for n in (5, 3, 9, 3, 8)]
    from mechprobe.attention.features import batches_by_length
    assert batches_by_length(examples, 2, 100) == [[1, 3], [0, 4], [2]]
    assert batches_by_length(examples, 10, 16) == [[1, 3, 0], [4], [2]]   # 3*5 <= 16 < 2*8
    assert batches_by_length(examples, 10, 4) == [[1], [3], [0], [4], [2]]


def test_batched_features_equal_one_at_a_time(bpe_gpt2_dir):
    from transformers import AutoModelForCausalLM

    from mechprobe.attention.features import extract
    from mechprobe.attention.recorder import Recorder

    tokenizer = AutoTokenizer.from_pretrained(bpe_gpt2_dir)
    texts = [["12", " 7", " 345"], ["9", " 88"], ["1", " 2", " 3", " 4", " 5", " 66"]]
    examples = []
    for segments in texts:
        ids, positions = segment_tokens(tokenizer, segments)
        examples.append(Example(ids, [len(ids) - 2, len(ids) - 1], positions))
    recorder = Recorder(AutoModelForCausalLM.from_pretrained(bpe_gpt2_dir).eval())
    batched, predicted, chosen = extract(recorder, examples, [0, 1], batch_size=8, per_head=True,
                                         query_pool="max", logit_ids=[3, 4])
    single, predicted_1, chosen_1 = extract(recorder, examples, [0, 1], batch_size=1, per_head=True,
                                            query_pool="max", logit_ids=[3, 4])
    for a, b, segments in zip(batched, single, texts):
        assert a.shape == (len(segments), 2, 2)
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert (predicted == predicted_1).all()
    np.testing.assert_allclose(chosen, chosen_1, atol=1e-5)


def test_any_probe_gives_rows_predictions_and_its_record():
    """The seam: a logistic probe and any scikit-learn classifier give the same kinds of rows
    and out-of-fold predictions as the kNN, through the same cross-validation (the folds never
    split an example), and results.json names each."""
    from sklearn.tree import DecisionTreeClassifier

    from mechprobe.probing.crossval import overall_layerwise_predictions

    model, random = toy_samples(40, signal=4.0), toy_samples(40, signal=0.0, seed=1)
    for chosen, name in (("logistic", "logistic"), (DecisionTreeClassifier(random_state=0),
                                                    "DecisionTreeClassifier")):
        config = ProbeConfig(probe=chosen, seed=0)
        overall, rows, predicted = overall_layerwise_predictions(model, random, config, [3, 7])
        assert config.record()["name"] == name and config.record()["folds"] == 5
        assert overall["f1"]["useful"] > 0.9 and overall["f1_random"]["useful"] < 0.75
        assert rows[1]["f1_useful"] > rows[0]["f1_useful"] + 0.2      # usefulness: layer 7
        labels, fold = predicted["model"]["useful"]
        assert len(labels) == len(model.useful) and set(fold) == set(range(5))
        for g in np.unique(model.groups):       # an example's statements share one test fold
            assert len(set(fold[model.groups == g])) == 1
        # the overall F1 is the mean of the out-of-fold predictions' F1 per fold
        y = model.useful.astype(int)
        per_fold = [f1_score(y[fold == f], labels[fold == f], average="macro") for f in range(5)]
        assert overall["f1"]["useful"] == pytest.approx(np.mean(per_fold))


def test_the_logistic_probe_is_scikit_learns_pipeline_fold_by_fold():
    """Each row is scikit-learn's StandardScaler + LogisticRegression fitted on the training
    fold: the all-layers row equals cross_val_score's, the layer-1 row a fit on that layer."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mechprobe.probing.crossval import folds_of, splitter

    samples = toy_samples(30, signal=1.0)
    config = ProbeConfig(probe="logistic", c=0.5)
    X, y = samples.X, samples.useful.astype(int)
    single, cumulative, _ = config.classifier.fit_layers(X, y, folds_of(samples.groups, config))
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=1000))
    for row, features in ((cumulative[:, -1], X.reshape(len(X), -1)), (single[:, 1], X[:, 1])):
        expected = cross_val_score(pipeline, features, y, groups=samples.groups,
                                   cv=splitter(config), scoring="f1_macro")
        np.testing.assert_allclose(row, expected, atol=1e-12)


def test_a_probe_that_is_not_a_classifier_is_refused():
    from mechprobe.cli import ConfigError
    from mechprobe.probing.config import RunConfig

    with pytest.raises(ConfigError, match="RunConfig.probe must be one of"):
        RunConfig(probe="svm")
    with pytest.raises(ConfigError, match="RunConfig.probe_c must be a number above 0"):
        RunConfig(probe="logistic", probe_c=0)
