"""A new task is one class: this file defines one, registers it, and probes it through probe.py's
own code path, touching nothing in the library (docs/ADD_A_TASK.md)."""

import json

import numpy as np
import pytest

from mechprobe.cli import UserError
from mechprobe.tasks.base import TASKS, Question, TextTask, register

NAMES = ["Anne", "Bob", "Carl", "Dave", "Erin", "Fay"]
COLOURS = ["red", "blue", "green", "kind", "big", "round"]


def toy_questions(n, seed):
    """Two-step questions: a fact, a rule that turns it into the asked property, and noise.
    The tree: the fact (depth class 0) feeds the rule (class 1); the rest is not useful."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        name, other = rng.choice(NAMES, 2, replace=False)
        first, second, noise = rng.choice(COLOURS, 3, replace=False)
        true = bool(i % 2)
        statements = [f"{name} is {first}.", f"If someone is {first} then they are {second}.",
                      f"{other} is {noise}.", f"If someone is {noise} then they are {first}."]
        useful, depth = [1, 1, 0, 0], [0, 1, None, None]
        order = rng.permutation(4)
        out.append(Question(
            id=f"toy-{seed}-{i}", statements=[statements[j] for j in order],
            kinds=[["fact", "rule", "fact", "rule"][j] for j in order],
            question=f"{name if true else other} is {second}.",
            useful=[useful[j] for j in order], depth=[depth[j] for j in order],
            answer="True" if true else "False", choices=("True", "False"), bucket="two steps",
            edges=[[int(np.flatnonzero(order == 0)[0]), int(np.flatnonzero(order == 1)[0])]]))
    return out


class Toy(TextTask):
    """The whole task: a name, a prompt suffix, and its questions per split."""

    name = "toy"
    suffix = ": True or False?"

    def load(self, split):
        return toy_questions(30 if split == "test" else 10, {"train": 1, "dev": 2, "test": 3}[split])


@pytest.fixture
def toy_task():
    register(Toy)
    yield Toy
    TASKS.pop("toy")


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    from mechprobe.tiny_models import build_word_llama

    texts = [s for q in toy_questions(30, 3) + toy_questions(10, 1) for s in q.statements + [q.question]]
    model, tokenizer = build_word_llama(texts, hidden=32, layers=2, heads=4, kv_heads=2,
                                        intermediate=64)
    folder = tmp_path_factory.mktemp("toy") / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_task_of_one_class_probes_through_probe_py(toy_task, toy_model, tmp_path, capsys):
    import probe

    out = tmp_path / "run"
    probe.main(["--task", "toy", "--data", "-", "--model", str(toy_model), "--out", str(out),
                "--device", "cpu", "--folds", "3", "--icl", "2", "--shots", "fixed"])
    printed = capsys.readouterr().out
    assert "test: questions per bucket: two steps 30" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "toy" and results["icl"] == 2 and list(results["settings"]) == ["two steps"]
    scores = results["settings"]["two steps"]
    assert scores["n_examples"] == 30 and scores["n_statements"] == 120
    assert 0 <= scores["accuracy"] <= 1 and "S_P1" not in scores and "probing_score" in scores
    # The statement kinds reach the text-only control: the toy's useful statements are one fact
    # and one rule, its noise too, so kind alone cannot tell them apart, but position and overlap
    # with the question can partly; the control is measured, not skipped.
    assert set(scores["f1_text_control"]) == {"useful", "depth"}
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 120 and {r["setting"] for r in rows} == {"two steps"}
    report = (out / "report.html").read_text()
    assert "toy-3-0" in report and '"edges"' in report


def test_a_task_breaking_the_contract_is_named(toy_task, toy_model, tmp_path):
    import probe

    class Broken(Toy):
        name = "broken"

        def load(self, split):
            questions = super().load(split)
            questions[4].kinds = ["fact"]          # one kind for four statements
            return questions

    register(Broken)
    try:
        with pytest.raises(UserError, match="task broken, question toy-3-4: kinds holds 1 values for 4"):
            probe.main(["--task", "broken", "--data", "-", "--model", str(toy_model),
                        "--out", str(tmp_path / "b"), "--device", "cpu", "--folds", "3"])
    finally:
        TASKS.pop("broken")
    assert not (tmp_path / "b").exists()
