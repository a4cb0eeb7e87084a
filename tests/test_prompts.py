"""In-context prompts of the text tasks: shots drawn per question, and prompts checked against
the model's positions before any forward pass."""

import json
import shutil
import sys

import pytest
from transformers import AutoTokenizer

from mechprobe.tasks import proofwriter
from mechprobe.cli import UserError
from mechprobe.tasks.prompts import choose_shots, prompt, shots_for
from mechprobe.probing.buckets import sample_buckets


def ids(shot_lists):
    return [[s.id for s in shots] for shots in shot_lists]


def test_shots_are_drawn_per_question_seeded_and_balanced(generated):
    train = proofwriter.load(str(generated / "data"), "train")
    questions = proofwriter.load(str(generated / "data"), "test")[:20]
    drawn = ids(shots_for(questions, train, 4, "per-question", seed=0))
    assert len({tuple(d) for d in drawn}) > 10                      # not one set for all
    assert ids(shots_for(questions[5:], train, 4, "per-question", seed=0)) == drawn[5:]
    assert ids(shots_for(questions, train, 4, "per-question", seed=1)) != drawn
    by_id = {q.id: q for q in train}
    for shots in drawn:
        assert sorted(by_id[s].target for s in shots) == ["False", "False", "True", "True"]
    # A probed train question is never its own shot.
    for q, shots in zip(train[:30], ids(shots_for(train[:30], train, 4, "per-question", seed=0))):
        assert q.id not in shots
    fixed = ids(shots_for(questions, train, 4, "fixed", seed=0))
    assert fixed == [[s.id for s in choose_shots(train, 4, 0)]] * len(questions)


@pytest.fixture
def short_model(generated, tmp_path):
    """The generated model with its positions cut to the median prompt length of the test split."""
    tokenizer = AutoTokenizer.from_pretrained(generated / "model")
    questions = proofwriter.load(str(generated / "data"), "test")
    lengths = sorted(len(tokenizer(prompt(q, proofwriter.SUFFIX))["input_ids"]) for q in questions)
    path = tmp_path / "short_model"
    shutil.copytree(generated / "model", path)
    config = json.loads((path / "config.json").read_text())
    config["max_position_embeddings"] = lengths[len(lengths) // 2]
    (path / "config.json").write_text(json.dumps(config))
    return path, config["max_position_embeddings"], questions


def run_entry(monkeypatch, script, *argv):
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *argv])
    __import__(script).main()


def test_over_long_prompts_stop_before_any_forward_pass_or_are_skipped(generated, short_model,
                                                                       monkeypatch, capsys, tmp_path):
    model, limit, questions = short_model
    out = tmp_path / "probe"
    flags = ["--task", "proofwriter", "--data", str(generated / "data"), "--model", str(model),
             "--n-examples", "12", "--layers", "0", "--folds", "2", "--device", "cpu", "--out", str(out)]
    with pytest.raises(UserError, match=rf"the longest question \S+, of \d+ tokens exceed the "
                       rf"model's {limit} positions: .*TextConfig.skip_long") as err:
        run_entry(monkeypatch, "probe", *flags)
    assert "\n" not in str(err.value) and not out.exists()

    run_entry(monkeypatch, "probe", *flags, "--skip-long")
    results = json.loads((out / "results.json").read_text())
    assert results["skipped_long"] > 0 and results["position_limit"] == limit
    assert f"skipped {results['skipped_long']} of" in capsys.readouterr().out
    tokenizer = AutoTokenizer.from_pretrained(model)
    sampled = [q for members in sample_buckets(questions, 12, 0).values() for q in members]
    assert results["skipped_long"] == sum(
        len(tokenizer(prompt(q, proofwriter.SUFFIX))["input_ids"]) > limit for q in sampled)


def test_corrupted_prompts_are_checked_too(generated, tmp_path, monkeypatch):
    """The clean prompts fit exactly; a counterfactual adds words, so its prompt does not."""
    tokenizer = AutoTokenizer.from_pretrained(generated / "model")
    depth1 = [q for q in proofwriter.load(str(generated / "data"), "test") if q.qdep == 1]
    limit = max(len(tokenizer(prompt(q, proofwriter.SUFFIX))["input_ids"]) for q in depth1)
    path = tmp_path / "model"
    shutil.copytree(generated / "model", path)
    config = json.loads((path / "config.json").read_text())
    config["max_position_embeddings"] = limit
    (path / "config.json").write_text(json.dumps(config))
    out = tmp_path / "corrupt"
    with pytest.raises(UserError, match=f"exceed the model's {limit} positions"):
        run_entry(monkeypatch, "corrupt", "--model", str(path), "--data", str(generated / "data"),
                  "--icl", "0", "--min-subset", "2", "--max-subset", "3", "--device", "cpu",
                  "--out", str(out))
    assert not out.exists()


CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_chat_prompt_places_statements_query_and_answers_in_the_template(generated, bpe_gpt2_dir):
    """--prompt chat: shots and question as turns of the tokenizer's chat template; statements
    keep their tokens, the query runs to the assistant's opening, answers are scored as the
    assistant's first word (no leading space)."""
    from mechprobe.tasks.prompts import prompt_answer_ids, to_example

    tokenizer = AutoTokenizer.from_pretrained(bpe_gpt2_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = CHATML
    train = proofwriter.load(str(generated / "data"), "train")
    question = proofwriter.load(str(generated / "data"), "test")[0]
    shots = choose_shots(train, 2, seed=0)
    example = to_example(tokenizer, question, shots, proofwriter.SUFFIX, "chat")
    turns = [t for s in shots for t in ({"role": "user", "content": prompt(s, proofwriter.SUFFIX)},
                                        {"role": "assistant", "content": s.target})]
    turns.append({"role": "user", "content": prompt(question, proofwriter.SUFFIX)})
    rendered = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    assert tokenizer.decode(example.input_ids) == rendered
    start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert example.input_ids.count(start) == 2 * len(shots) + 2     # special tokens, not bytes
    for statement, positions in zip(question.statements, example.statements):
        assert statement in tokenizer.decode([example.input_ids[p] for p in positions])
    query = tokenizer.decode([example.input_ids[p] for p in example.query])
    assert query.startswith(question.question) and query.endswith("<|im_start|>assistant\n")
    assert example.query[-1] == len(example.input_ids) - 1
    true_id, false_id = prompt_answer_ids(tokenizer, question, shots, proofwriter.SUFFIX,
                                          ["True", "False"], "chat")
    assert tokenizer.decode([true_id])[0] == "T" and tokenizer.decode([false_id])[0] == "F"

    tokenizer.chat_template = None
    with pytest.raises(UserError, match="TextConfig.prompt plain"):
        to_example(tokenizer, question, shots, proofwriter.SUFFIX, "chat")


def test_shots_are_dealt_over_the_answers_that_have_questions():
    """ARC's train split may have one question answered A and none answered D: 4 shots then go
    1 A, 2 B, 1 C, never an error while the split has 4 questions to draw."""
    from types import SimpleNamespace

    from mechprobe.tasks.prompts import shot_counts, shot_pools

    train = [SimpleNamespace(id=f"{answer}{i}", target=answer, choices=("A", "B", "C", "D"))
             for answer, n in (("A", 1), ("B", 5), ("C", 5)) for i in range(n)]
    pools = shot_pools(train)
    assert list(pools) == ["A", "B", "C"]
    assert shot_counts(pools, 4) == {"A": 1, "B": 2, "C": 1}
    assert shot_counts(pools, 4, exclude="A0") == {"A": 0, "B": 2, "C": 2}
    two = {a: [SimpleNamespace(id=f"{a}{i}") for i in range(9)] for a in ("True", "False")}
    assert shot_counts(two, 3) == {"True": 2, "False": 1}      # as evenly as before
    with pytest.raises(UserError, match="fewer than TextConfig.icl 12"):
        shot_counts(pools, 12)
