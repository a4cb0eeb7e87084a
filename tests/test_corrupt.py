"""Robustness experiment: the corruptions, the binning, and corrupt.py end to end."""

import json

import numpy as np
import pytest
from scipy.stats import spearmanr
from conftest import refused, run_ok

from mechprobe import seeds
from mechprobe.tasks import proofwriter
from mechprobe.analysis.robustness import binned, correct_answers, correlation, summarise
from mechprobe.tasks.corruptions import CORRUPTIONS, corrupt, counterfactual, inner_words


@pytest.mark.parametrize("statement, expected", [
    ("Bob is big.", "That Bob is big is false."),
    ("The cow likes the dog.", "That the cow likes the dog is false."),
    ("If something is red then it is kind.", "That if something is red then it is kind is false."),
    ("All round things are cold.", "That all round things are cold is false."),
    ("Big, red things are kind.", "That big, red things are kind is false."),
])
def test_counterfactual(statement, expected):
    theory = ["Bob is big.", "If Bob is red then Bob is kind.", "The cow is big.", "Dave is red."]
    assert counterfactual(statement, inner_words(theory)) == expected


@pytest.fixture
def question(generated):
    return next(q for q in proofwriter.load(str(generated / "data"), "test")
                if q.qdep == 1 and 0 < sum(q.useful) < len(q.statements))


@pytest.mark.parametrize("kind, wanted", [("useful_counterfactual", 1), ("noise_counterfactual", 0)])
def test_counterfactual_corruption_hits_one_statement_of_the_right_kind(question, kind, wanted):
    corrupted = corrupt(question, kind, np.random.default_rng(0))
    changed = [i for i, (a, b) in enumerate(zip(question.statements, corrupted.statements)) if a != b]
    assert len(changed) == 1 and question.useful[changed[0]] == wanted
    assert corrupted.statements[changed[0]].startswith("That ")
    assert corrupted.statements[changed[0]].endswith(" is false.")
    assert question.statements != corrupted.statements     # the original is left alone


def test_shuffle_moves_labels_with_their_statements(question):
    corrupted = corrupt(question, "shuffle", np.random.default_rng(1))
    assert sorted(corrupted.statements) == sorted(question.statements)
    before = {s: (i, u, d) for s, i, u, d in zip(question.statements, question.statement_ids,
                                                  question.useful, question.depth)}
    for s, i, u, d in zip(corrupted.statements, corrupted.statement_ids, corrupted.useful,
                          corrupted.depth):
        assert before[s] == (i, u, d)


def test_corruption_that_does_not_apply(question):
    all_useful = type(question)(**{**question.__dict__, "useful": [1] * len(question.statements)})
    assert corrupt(all_useful, "noise_counterfactual", np.random.default_rng(0)) is None


def test_correct_answers_read_the_question_choices():
    questions = [type("Q", (), {"choices": ("True", "False"), "target": t})() for t in ("True", "False")]
    scores = np.array([[2.0, 1.0], [2.0, 1.0]])
    assert correct_answers(scores, ["True", "False"], questions).tolist() == [1.0, 0.0]


def test_bins_and_correlations():
    sp2 = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    change = np.array([-0.5, -0.4, -0.2, 0.0, 0.1])
    rows = binned(sp2, {"change": change}, n_bins=4)
    assert [r["subsets"] for r in rows] == [2, 0, 1, 2]
    assert rows[0]["change"] == pytest.approx(-0.45) and rows[1]["change"] is None
    assert rows[-1]["sp2_high"] == 1.0
    assert correlation(sp2, change)["spearman"] == pytest.approx(1.0)
    assert correlation(sp2, np.zeros(5))["pearson"] is None    # constant: undefined, not 0


def test_subsets_with_undefined_sp2_are_left_out_and_counted():
    """Where the random twin's depth probe scores F1 = 1 the subset's S_P2 is None: it cannot be
    binned, and must not end the run."""
    subsets = [{"sp2": sp2, "accuracy": 0.5, **{f"change_{k}": change for k in CORRUPTIONS}}
               for sp2, change in [(0.2, -0.1), (None, 0.3), (0.6, 0.0), (0.9, 0.1)]]
    sp2, changes, bins, correlations, undefined = summarise(subsets, CORRUPTIONS)
    assert undefined == 1 and sp2.tolist() == [0.2, 0.6, 0.9]
    assert sum(b["subsets"] for b in bins) == 3 and changes["shuffle"].tolist() == [-0.1, 0.0, 0.1]
    assert correlations["shuffle"]["spearman"] == pytest.approx(1.0)
    _, _, bins, correlations, undefined = summarise([{**subsets[1]}], CORRUPTIONS)
    assert undefined == 1 and bins == [] and correlations["shuffle"]["pearson"] is None


def test_corrupt_end_to_end(generated, tmp_path):
    out = tmp_path / "corrupt"
    printed = run_ok("corrupt", "--model", generated / "model", "--data", generated / "data",
                     "--split", "train", "--icl", "1", "--repeats", "6", "--min-subset", "8",
                     "--max-subset", "10", "--folds", "2", "--neighbors", "2", "--device", "cpu",
                     "--out", out)
    results = json.loads((out / "results.json").read_text())
    assert len(results["subsets"]) == 6 and len(results["bins"]) == 8
    assert results["subsets_without_sp2"] == sum(s["sp2"] is None for s in results["subsets"])
    assert sum(b["subsets"] for b in results["bins"]) == 6 - results["subsets_without_sp2"]
    assert set(results["correlation"]) == set(results["corrupted_accuracy"]) == {
        "noise_counterfactual", "useful_counterfactual", "shuffle"}
    for row in results["subsets"]:
        # the size drawn from the subset's own generator, the accuracies shares of its questions
        size_rng = seeds.rng(0, seeds.SUBSETS, row["repeat"])
        assert 8 <= row["size"] == int(size_rng.integers(8, min(10, results["n_questions"]) + 1)) <= 10
        for accuracy in [row["accuracy"]] + [row["accuracy"] + row[f"change_{k}"] for k in CORRUPTIONS]:
            assert accuracy * row["size"] == pytest.approx(round(accuracy * row["size"]), abs=1e-9)
    defined = [s for s in results["subsets"] if s["sp2"] is not None]
    for kind in CORRUPTIONS:   # the correlations, recomputed with scipy from the subsets' rows
        change = [s[f"change_{kind}"] for s in defined]
        if len(defined) > 2 and len(set(change)) > 1 and len({s["sp2"] for s in defined}) > 1:
            expected = spearmanr([s["sp2"] for s in defined], change).statistic
            assert results["correlation"][kind]["spearman"] == pytest.approx(expected)
        else:                  # a constant column has no correlation, not 0
            assert results["correlation"][kind]["spearman"] is None
    assert (out / "robustness.png").is_file() and (out / "robustness.pdf").is_file()
    assert "spearman" in printed
    # an untrained model, and "True exactly when not negated" right on every probed question:
    # the caveat, not the near-chance warning (no accuracy could beat that answerer)
    assert results["near_chance"] is True and results["baseline_exact"] is True
    assert "caveat:" in printed and "warning:" not in printed


def test_corrupt_bad_subset_sizes(generated, tmp_path):
    refused("corrupt", "--model", generated / "model", "--data", generated / "data",
            "--min-subset", 5000, "--max-subset", 6000, "--out", tmp_path / "c", words=["--min-subset"])
    assert not (tmp_path / "c").exists()
