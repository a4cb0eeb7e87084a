"""The chains task's generator: answers, labels, depth classes, edges, seeding, token batches."""

import numpy as np
import pytest

from mechprobe.tasks import chains
from mechprobe.tasks.base import check_questions
from mechprobe.tasks.registry import task_named
from mechprobe.tasks.trees import heights


def solve(statements, var):
    """Follow `var` back to its constant (a reference reader of the prompt)."""
    defs = dict((s.split()[0], s.split()[2]) for s in statements)
    while var in defs:
        var = defs[var]
    return var


@pytest.mark.parametrize("hops", [1, 2, 3, 4])
def test_labels_depth_and_edges(hops):
    setting = chains.Setting(hops, 4)
    questions = check_questions(chains.generate(setting, 50, seed=3), "chains")
    for q in questions:
        assert len(q.statements) == hops * 4 and q.bucket == f"hops={hops}"
        assert all(len(s.split()) == 4 and s.split()[1] == "=" and s.endswith(";")
                   for s in q.statements)
        asked = q.question.split()[1]
        assert q.answer == solve(q.statements, asked) and q.answer in q.choices
        # the useful statements are the asked chain: following it from the asked variable
        chain, var = [], asked
        while var not in chains.VALUES:
            i = next(i for i, s in enumerate(q.statements) if s.split()[0] == var)
            chain.append(i)
            var = q.statements[i].split()[2]
        assert sorted(chain) == [i for i, u in enumerate(q.useful) if u]
        # depth: the constant's statement 0 ... the asked variable's hops - 1 (METHOD.md sec. 2)
        assert [q.depth[i] for i in reversed(chain)] == list(range(hops))
        assert all(d is None for d, u in zip(q.depth, q.useful) if not u)
        assert sorted(map(tuple, q.edges)) == sorted(zip(chain[1:], chain[:-1]))
        if hops > 1:
            height = heights(chain, q.edges)
            tree_depth = max(height.values())
            assert all(q.depth[i] == tree_depth - height[i] for i in chain)
        # the chains' constants differ: the answer names one chain
        constants = [s.split()[2] for s in q.statements if s.split()[2] in chains.VALUES]
        assert len(constants) == 4 == len(set(constants))


def test_seeded():
    setting = chains.Setting(3, 4)
    first = [q.dump() for q in chains.generate(setting, 20, seed=1)]
    assert first == [q.dump() for q in chains.generate(setting, 20, seed=1)]
    assert first != [q.dump() for q in chains.generate(setting, 20, seed=2)]
    assert first != [q.dump() for q in chains.generate(setting, 20, seed=1, split="train")]


@pytest.mark.parametrize("queries,any_link", [(1, False), (3, False), (6, True)])
def test_token_batch_reads_like_a_prompt(queries, any_link):
    from mechprobe.tiny_models import word_tokenizer

    tokenizer = word_tokenizer(chains.WORDS, 128)
    setting = chains.Setting(3, 4)
    x, y, positions = chains.token_batch(np.random.default_rng(0), setting, 30, queries, any_link)
    assert x.shape == (30, setting.n_tokens + 3 * (queries - 1)) and y.shape == (30, queries)
    assert positions[0] == setting.n_tokens - 1
    q = chains.generate(setting, 1, seed=0)[0]
    ids, _ = chains.encode(tokenizer, [q])
    assert ids.shape == (1, setting.n_tokens)     # the probe's prompt: as long as the first query's
    for row, answers in zip(x, y):
        words = tokenizer.convert_ids_to_tokens(row.tolist())
        statements = [" ".join(words[i:i + 4]) for i in range(0, 4 * setting.n_statements, 4)]
        for position, answer in zip(positions, answers):
            assert words[position - 1] == "?"
            assert solve(statements, words[position]) == tokenizer.convert_ids_to_tokens(int(answer))
            if not any_link:   # a chain's last variable: defined, never used
                assert not any(s.split()[2] == words[position] for s in statements)


def test_registered():
    task = task_named("chains")
    assert task.family == "text"
    questions = task.load("test")
    assert {q.bucket for q in questions} == {f"hops={h}" for h in chains.HOPS}
    shortcut = task.shortcuts(questions)["first constant"]
    assert len(shortcut) == len(questions) and set(shortcut) <= set(chains.VALUES)


def test_token_batch_lookups():
    """What k lookups reach: the variable k links nearer the constant, then the value."""
    from mechprobe.tiny_models import word_tokenizer

    tokenizer = word_tokenizer(chains.WORDS, 128)
    setting = chains.Setting(3, 3)
    x, y, positions, reached = chains.token_batch(np.random.default_rng(1), setting, 20, 4, True, 3)
    assert reached.shape == (20, 4, 3)
    for row, answers, steps in zip(x, y, reached):
        words = tokenizer.convert_ids_to_tokens(row.tolist())
        defs = {words[i]: words[i + 2] for i in range(0, 4 * setting.n_statements, 4)}
        for position, answer, path in zip(positions, answers, steps):
            var, expected = words[position], []
            for _ in range(3):
                var = defs.get(var, var)
                expected.append(var)
            assert tokenizer.convert_ids_to_tokens(path.tolist()) == expected
            assert expected[-1] == tokenizer.convert_ids_to_tokens(int(answer))


def test_probe_py_dumps_the_generated_task_without_data(tmp_path):
    """A generated task needs no --data: probe.py --task chains writes its examples (labels and
    edges) straight away, and a text task that reads files still asks for --data."""
    import json

    from conftest import run_cli

    code, _, err = run_cli("probe", "--task", "chains", "--n-examples", 3,
                           "--dump-examples", tmp_path / "chains.jsonl")
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "chains.jsonl").read_text().splitlines()]
    assert [r["bucket"] for r in rows] == [f"hops={h}" for h in (1, 2, 3, 4) for _ in range(3)]
    assert all(sum(r["useful"]) == int(r["bucket"][-1]) for r in rows)
    code, _, err = run_cli("probe", "--task", "proofwriter", "--dump-examples", tmp_path / "pw.jsonl")
    assert code == 2 and "needs --data" in err
