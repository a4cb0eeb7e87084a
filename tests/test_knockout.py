"""knockout.py end to end on a tiny model that learned min01, and its pieces."""

import json

import numpy as np
import pytest
import torch
from conftest import refused, run_ok

from mechprobe.probing.bootstrap import draws, mean_interval
from mechprobe.analysis import knockout
from mechprobe.attention.features import Example
from mechprobe.probing.crossval import ProbeConfig, Samples, folds_of
from mechprobe.probing.probes import FoldKNN


def test_knockout_on_a_model_that_learned_min01(learned_min01, tmp_path):
    """Cutting the question off the two smallest numbers breaks the answer; cutting it off two
    other numbers barely matters: the (a)-(b) gap is large and its interval excludes 0."""
    out = tmp_path / "knockout"
    printed = run_ok("knockout", "--model", learned_min01 / "model", "--n-examples", 256,
                     "--bootstrap", 200, "--device", "cpu", "--out", out)
    assert "gap gold_useful-gold_noise" in printed and "per layer window" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["n_examples"] == 256 and results["layers"] == [0, 1]
    rows = {r["condition"]: r for r in results["conditions"]}
    assert list(rows) == list(knockout.CONDITIONS)
    assert rows["gold_useful"]["statements_hidden"] == 2.0 == rows["gold_noise"]["statements_hidden"]
    assert rows["leaves"]["statements_hidden"] == 1.0 == rows["root"]["statements_hidden"]
    assert results["accuracy"] >= 0.7
    # measured: (a) 0.79, (b) 0.10 of 0.86 plain
    assert rows["gold_useful"]["accuracy_drop"] >= 0.5
    assert rows["gold_useful"]["accuracy_drop"] - rows["gold_noise"]["accuracy_drop"] >= 0.4
    for row in rows.values():
        low, high = row["accuracy_drop_ci"]
        assert low <= row["accuracy_drop"] <= high
        assert row["accuracy"] == pytest.approx(results["accuracy"] - row["accuracy_drop"])
    gap = results["gaps"]["gold_useful-gold_noise"]
    assert gap["accuracy_drop_gap"] == pytest.approx(rows["gold_useful"]["accuracy_drop"]
                                                     - rows["gold_noise"]["accuracy_drop"])
    assert gap["accuracy_drop_gap_ci"][0] > 0
    # Two layers, windows of one: each condition cut at layer 0 only and at layer 1 only.
    assert sorted((r["condition"], r["layers"]) for r in results["windows"]) == sorted(
        (name, [layer]) for name in knockout.CONDITIONS for layer in (0, 1))
    for ext in ("png", "pdf"):
        assert (out / f"knockout.{ext}").stat().st_size > 0

    # The same seed gives the same numbers, intervals included.
    again = tmp_path / "again"
    run_ok("knockout", "--model", learned_min01 / "model", "--n-examples", 256, "--bootstrap",
           200, "--device", "cpu", "--knockout-layers", "0-1", "--out", again)
    repeated = json.loads((again / "results.json").read_text())
    assert repeated["conditions"] == results["conditions"]


def test_knockout_bad_input_is_one_line(learned_min01, tmp_path):
    model = learned_min01 / "model"
    refused("knockout", "--model", model, "--knockout-layers", "0-7", "--n-examples", 16,
            "--device", "cpu", "--out", tmp_path / "a", words=["--knockout-layers", "0-1"])
    refused("knockout", "--model", model, "--window", "3", "--n-examples", 16, "--device", "cpu",
            "--out", tmp_path / "b", words=["--window 3"])
    refused("knockout", "--model", model, "--n-examples", 3, "--device", "cpu",
            "--out", tmp_path / "c", words=["--n-examples 3"])
    refused("knockout", "--model", tmp_path / "missing", "--out", tmp_path / "d")
    code, _, err = __import__("conftest").run_cli("knockout", "--out", tmp_path / "e")
    assert code == 2 and "--model is required" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_out_of_fold_predictions_are_sklearns():
    """The incremental kNN's and sklearn's fold predictions agree (no ties in random features),
    and every statement is predicted while its example is in the test fold."""
    rng = np.random.default_rng(0)
    features = [rng.random((6, 3, 1)).astype(np.float32) for _ in range(40)]
    useful = [rng.random(6) < 0.3 for _ in range(40)]
    config = ProbeConfig(neighbors=5, p=2, folds=4, seed=1)
    predicted = knockout.out_of_fold_useful(features, useful, config)
    assert [len(p) for p in predicted] == [6] * 40
    samples = Samples.from_examples(features, useful, [np.full(6, -1)] * 40)
    expected = np.zeros(len(samples.useful), dtype=bool)
    for train, test in folds_of(samples.groups, config):
        fitted = FoldKNN(n_neighbors=5, weights="distance", p=2).fit(
            samples.X[train].reshape(len(train), -1), samples.useful[train])
        expected[test] = fitted.predict(samples.X[test].reshape(len(test), -1))
    assert np.array_equal(np.concatenate(predicted), expected)
    # Another p goes through sklearn itself: the same answer for p=2 written as p=3 would not
    # be; only check it runs and has the shape.
    other = knockout.out_of_fold_useful(features, useful, ProbeConfig(neighbors=5, p=3, folds=4))
    assert [len(p) for p in other] == [6] * 40


def scored(useful, depth):
    n = len(useful)
    return knockout.Scored(Example(list(range(3, 3 + n)), [n - 1], [[i] for i in range(n)]),
                           np.array(useful, dtype=bool), np.array(depth), target=5)


def test_hidden_statement_sets():
    items = [scored([1, 1, 1, 0, 0, 0, 0, 0], [0, 0, 1, -1, -1, -1, -1, -1]),
             scored([0, 1, 0, 1, 0], [-1, 1, -1, 0, -1])]
    guesses = [np.array([1, 1, 0, 1, 0, 0, 0, 0], bool), np.array([0, 0, 0, 0, 0], bool)]
    sets = knockout.hidden_statements(items, guesses, seed=0)
    assert sets["gold_useful"] == [[0, 1, 2], [1, 3]]
    assert sets["predicted_useful"] == [[0, 1, 3], []]
    assert sets["leaves"] == [[0, 1], [3]] and sets["root"] == [[2], [1]]
    for i, item in enumerate(items):     # matched in size, drawn from the other side
        assert len(sets["gold_noise"][i]) == item.useful.sum()
        assert not item.useful[sets["gold_noise"][i]].any()
        assert len(sets["predicted_noise"][i]) == guesses[i].sum()
        assert not guesses[i][sets["predicted_noise"][i]].any()
    assert knockout.hidden_statements(items, guesses, seed=0) == sets
    # A tree that is a root alone has no leaves: the depth conditions are left out.
    roots = [scored([1, 0, 0], [0, -1, -1])]
    assert "leaves" not in knockout.hidden_statements(roots, [np.ones(3, bool)], seed=0)


def test_windows_and_the_batch_knockout():
    assert knockout.windows(4, 1) == [[0], [1], [2], [3]]
    assert knockout.windows(5, 2) == [[0, 1], [2, 3]]
    assert knockout.windows(4, 2, stride=1) == [[0, 1], [1, 2], [2, 3]]
    assert [knockout.span_label(s) for s in ([2], [0, 1, 2], [0, 2, 5])] == ["2", "0-2", "0,2,5"]
    items = [knockout.Scored(Example([3] * 9, [7, 8], [[0, 1], [2], [3, 4]]), None, None, 5),
             knockout.Scored(Example([3] * 6, [5], [[0], [1, 2], [3]]), None, None, 5)]
    cut = knockout.batch_knockout(items, [[0, 2], [1]], 11, [1], "question")
    assert cut.keys.shape == (2, 11)        # the batch's width: padding included
    assert cut.keys[0].nonzero().ravel().tolist() == [0, 1, 3, 4]
    assert cut.keys[1].nonzero().ravel().tolist() == [1, 2]
    assert cut.queries[0].nonzero().ravel().tolist() == list(range(7, 11))
    assert cut.queries[1].nonzero().ravel().tolist() == list(range(5, 11))
    assert cut.layers == frozenset({1})
    assert knockout.batch_knockout(items, [[0], [1]], 11, None, "all").queries is None


def test_bootstrap_intervals_are_seeded_and_paired():
    values = np.r_[np.ones(30), np.zeros(70)]
    counts = draws(100, 500, seed=3)
    assert np.array_equal(counts, draws(100, 500, seed=3))
    low, high = mean_interval(values, counts)
    assert low < 0.3 < high and high - low < 0.25
    assert mean_interval(np.full(100, 0.5), counts) == [0.5, 0.5]
    # Paired: the interval of a difference is that of the per-example differences.
    assert mean_interval(values - values, counts) == [0.0, 0.0]


def test_answer_scores_plain_and_with_nothing_hidden_agree():
    from test_recorder import build, gpt2

    from mechprobe.attention.recorder import Recorder

    recorder = Recorder(build(gpt2, "eager"))
    rng = np.random.default_rng(1)
    items = []
    for length in (7, 10, 9):
        ids = rng.integers(3, 64, size=length).tolist()
        items.append(knockout.Scored(Example(ids, [length - 1], [[i] for i in range(length - 1)]),
                                     None, None, target=int(rng.integers(3, 64))))
    correct, logprob = knockout.answer_scores(recorder, items, batch_size=2)
    nothing, nothing_logprob = knockout.answer_scores(recorder, items, [[], [], []], batch_size=2)
    assert np.array_equal(correct, nothing) and np.allclose(logprob, nothing_logprob, atol=1e-6)
    with torch.no_grad():
        for item, lp in zip(items, logprob):
            logits = recorder.model(torch.tensor([item.example.input_ids])).logits[0, -1]
            assert lp == pytest.approx(float(torch.log_softmax(logits, -1)[item.target]), abs=1e-5)
    hidden, hidden_logprob = knockout.answer_scores(recorder, items, [[0, 1], [2], [0]],
                                                    batch_size=2)
    assert not np.allclose(logprob, hidden_logprob, atol=1e-4)


def test_knockout_on_proofwriter_buckets(generated, tmp_path):
    """The text path: per bucket, folds grouped by theory, fixed shots (their shared prefix run
    once), every condition and window; on a random-weight Llama, so only the bookkeeping is
    checked: each condition hides what it should."""
    from mechprobe.tasks import proofwriter

    out = tmp_path / "pw"
    printed = run_ok("knockout", "--task", "proofwriter", "--data", generated / "data",
                     "--model", generated / "model", "--split", "train", "--icl", 1, "--shots",
                     "fixed", "--n-examples", 12, "--folds", 2, "--neighbors", 2, "--bootstrap",
                     100, "--device", "cpu", "--out", out)
    assert "== bucket" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["settings"] and results["query_pool"] == "max"
    questions = {}
    for q in proofwriter.load(str(generated / "data"), "train"):
        questions.setdefault(q.bucket, []).append(q)
    assert set(results["settings"]) <= set(questions)
    for bucket, body in results["settings"].items():
        rows = {r["condition"]: r for r in body["conditions"]}
        assert 0 <= body["accuracy"] <= 1 and body["layers"] == [0, 1, 2]
        # as many noise statements as useful ones, where the question has that many
        useful = [sum(q.useful) for q in questions[bucket]]
        assert rows["gold_useful"]["statements_hidden"] >= 1
        assert rows["gold_noise"]["statements_hidden"] <= rows["gold_useful"]["statements_hidden"]
        assert rows["gold_useful"]["statements_hidden"] <= max(useful)
        assert len(body["windows"]) == 3 * len(rows)
        for ext in ("png", "pdf"):
            assert (out / f"{body['figure']}.{ext}").stat().st_size > 0
    refused("knockout", "--task", "proofwriter", "--data", generated / "data", "--model",
            generated / "model", "--only-buckets", "m=1,m=99", "--out", tmp_path / "bad",
            words=["--only-buckets m=99", "m=1"])


def test_deeper_trees_get_one_condition_per_middle_class():
    """With three depth classes or more, each class between leaves and root is hidden on its
    own too (which layers read which step); two classes keep the six conditions."""
    from mechprobe.attention.features import Example

    def item(depth):
        depth = np.array(depth)
        return knockout.Scored(Example([0] * 8, [7], [[i] for i in range(len(depth))]),
                               depth >= 0, depth, 0)

    deep = [item([0, 1, 2, -1, 3]), item([-1, 0, 1, 2, -1])]
    guess = [s.useful.copy() for s in deep]
    sets = knockout.hidden_statements(deep, guess, seed=0)
    assert list(sets)[-2:] == ["class_1", "class_2"] and "class_3" not in sets
    assert sets["class_1"] == [[1], [2]] and sets["class_2"] == [[2], [3]]
    assert sets["leaves"] == [[0], [1]] and sets["root"] == [[4], [3]]
    assert knockout.condition_label("class_2") == "(e) depth class 2 only"
    shallow = [item([0, 1, -1]), item([1, -1, 0])]
    assert list(knockout.hidden_statements(shallow, [s.useful for s in shallow], 0)) == list(
        knockout.CONDITIONS)
