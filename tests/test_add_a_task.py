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


class LongToy(Toy):
    """The toy with every third question made long by noise statements (skip_long's case)."""

    name = "longtoy"

    def load(self, split):
        questions = super().load(split)
        for q in questions[::3]:
            extra = [f"{name} is {colour}." for name in NAMES[:4] for colour in COLOURS[4:]]
            q.statements, q.kinds = q.statements + extra, q.kinds + ["fact"] * len(extra)
            q.useful, q.depth = q.useful + [0] * len(extra), q.depth + [None] * len(extra)
        return questions


def test_knockout_and_robustness_read_a_task_defined_here(toy_task, toy_model, tmp_path):
    """Both analyses take a task registered by this test file through the same part as
    probe.py: knockout per bucket, corrupt.py with the task's generic corruptions (a statement
    replaced by another question's, the statements shuffled with their labels)."""
    from conftest import run_ok

    common = ["--task", "toy", "--data", "-", "--model", toy_model, "--device", "cpu",
              "--folds", 3, "--icl", 1, "--shots", "fixed"]
    printed = run_ok("knockout", *common, "--bootstrap", 100, "--out", tmp_path / "ko")
    assert "== bucket two steps" in printed
    results = json.loads((tmp_path / "ko" / "results.json").read_text())
    assert results["task"] == "toy" and list(results["settings"]) == ["two steps"]
    conditions = {r["condition"] for r in results["conditions"]}    # one setting: at the top too
    assert {"gold_useful", "gold_noise", "leaves", "root"} <= conditions
    printed = run_ok("corrupt", *common, "--min-subset", 10, "--max-subset", 20, "--repeats", 4,
                     "--out", tmp_path / "rb")
    assert "30 multi-level questions" in printed
    results = json.loads((tmp_path / "rb" / "results.json").read_text())
    assert results["task"] == "toy" and len(results["subsets"]) == 4
    assert set(results["corrupted_accuracy"]) == {"noise_replaced", "useful_replaced", "shuffle"}


def test_generic_corruptions_keep_the_labels_with_their_statements():
    from mechprobe.tasks.corruptions import replaced

    questions = toy_questions(5, 3)
    rng = np.random.default_rng(0)
    q = questions[0]
    shuffled = replaced(q, "shuffle", rng, questions)
    for text, useful, depth, kind in zip(q.statements, q.useful, q.depth, q.kinds):
        at = shuffled.statements.index(text)
        assert (shuffled.useful[at], shuffled.depth[at], shuffled.kinds[at]) == (useful, depth, kind)
    (a, b), = q.edges
    assert shuffled.edges == [[shuffled.statements.index(q.statements[a]),
                               shuffled.statements.index(q.statements[b])]]
    for kind, wanted in (("noise_replaced", 0), ("useful_replaced", 1)):
        changed = replaced(q, kind, rng, questions)
        moved = [i for i, (x, y) in enumerate(zip(q.statements, changed.statements)) if x != y]
        assert len(moved) == 1 and q.useful[moved[0]] == wanted
        assert changed.statements[moved[0]] in {s for o in questions[1:] for s in o.statements}
        assert changed.useful == q.useful and q.statements[moved[0]] not in changed.statements


def test_skip_long_means_the_same_in_probe_and_knockout(tmp_path):
    """--skip-long leaves the long prompts out in every analysis (knockout used to refuse them
    with advice to pass the flag it had been given)."""
    from conftest import run_cli
    from mechprobe.tiny_models import build_word_llama

    register(LongToy)
    try:
        questions = LongToy().load("test")
        texts = [s for q in questions + toy_questions(10, 1) for s in q.statements + [q.question]]
        model, tokenizer = build_word_llama(texts, hidden=32, layers=2, heads=4, kv_heads=2,
                                            intermediate=64, max_positions=64)
        folder = tmp_path / "model"
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        common = ["--task", "longtoy", "--data", "-", "--model", folder, "--device", "cpu",
                  "--folds", 3]
        for script, extra in (("probe", []), ("knockout", ["--bootstrap", 100])):
            code, _, err = run_cli(script, *common, *extra, "--out", tmp_path / f"{script}-1")
            assert code == 2 and "--skip-long" in err, (script, err)
            code, out, err = run_cli(script, *common, *extra, "--skip-long",
                                     "--out", tmp_path / f"{script}-2")
            assert code == 0, (script, err)
            assert "skipped 10 of 30 prompts longer than the model's 64 positions" in out
            results = json.loads((tmp_path / f"{script}-2" / "results.json").read_text())
            assert results["skipped_long"] == 10
    finally:
        TASKS.pop("longtoy")


def test_a_task_defined_outside_the_package_runs_with_task_module(tmp_path, monkeypatch):
    """probe.py --task-module my_tasks imports ./my_tasks.py before reading --task."""
    import sys

    from conftest import run_cli

    (tmp_path / "my_tasks.py").write_text(
        "from mechprobe.tasks.base import Question, TextTask, register\n\n"
        "@register\nclass Mine(TextTask):\n    name = 'mine'\n\n"
        "    def load(self, split):\n"
        "        return [Question(id=str(i), statements=['a is b.', 'b is c.', 'd is e.'],\n"
        "                         question='a is c.', useful=[1, 1, 0], depth=[0, 1, None],\n"
        "                         bucket='all') for i in range(6)]\n")
    monkeypatch.chdir(tmp_path)
    try:
        code, out, err = run_cli("probe", "--task-module", "my_tasks", "--task", "mine", "--data",
                                 "-", "--dump-examples", tmp_path / "mine.jsonl")
        assert code == 0, err
        rows = [json.loads(line) for line in (tmp_path / "mine.jsonl").read_text().splitlines()]
        assert len(rows) == 6 and rows[0]["useful"] == [1, 1, 0]
        code, _, err = run_cli("probe", "--task-module", "not_there", "--task", "mine")
        assert code == 2 and "--task-module not_there: cannot import it" in err
    finally:
        TASKS.pop("mine", None)
        sys.modules.pop("my_tasks", None)
