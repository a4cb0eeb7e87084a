import contextlib

import numpy as np
import pytest

from mechprobe.tasks import ksmallest
from mechprobe.cli import UserError
from mechprobe.probing.config import ReadConfig


def test_parse_task():
    task = ksmallest.parse_task("min03", list_len=16, num_set=512)
    assert (task.k, task.list_len, task.num_set, task.name) == (3, 16, 512, "min03")


@pytest.mark.parametrize("name", ["min1", "max01", "min001", "minAB", ""])
def test_parse_task_rejects_unknown_names(name):
    with pytest.raises(UserError, match="unknown task"):
        ksmallest.parse_task(name)


def test_parse_task_rejects_k_beyond_list():
    with pytest.raises(UserError, match="use k < --list-len"):
        ksmallest.parse_task("min16", list_len=16)
    assert ksmallest.parse_task("min15", list_len=16).k == 15


def test_ranks_break_ties_by_position():
    values = np.array([[5, 3, 5, 1, 3]])
    # sorted by (value, position): 1@3, 3@1, 3@4, 5@0, 5@2
    assert ksmallest.ranks(values).tolist() == [[3, 1, 4, 0, 2]]


def test_reasoning_tree_with_ties():
    task = ksmallest.Spec(k=2, list_len=6, num_set=10)
    values = np.array([[4, 2, 2, 7, 2, 0]])
    useful, depth = ksmallest.reasoning_tree(task, values)
    # ranks: 0@5 (r0), 2@1 (r1), 2@2 (r2 = root), 2@4 (r3, a tie with the root but later: noise)
    assert useful.tolist() == [[False, True, True, False, False, True]]
    assert depth.tolist() == [[-1, 0, 1, -1, -1, 0]]
    assert ksmallest.answers(task, values).tolist() == [2]


def test_reasoning_tree_all_equal_values():
    task = ksmallest.Spec(k=1, list_len=4, num_set=10)
    useful, depth = ksmallest.reasoning_tree(task, np.array([[7, 7, 7, 7]]))
    assert useful.tolist() == [[True, True, False, False]]
    assert depth.tolist() == [[0, 1, -1, -1]]


def test_k0_tree_is_a_single_class():
    task = ksmallest.Spec(k=0, list_len=4, num_set=10)
    useful, depth = ksmallest.reasoning_tree(task, np.array([[3, 1, 1, 2]]))
    assert useful.tolist() == [[False, True, False, False]]
    assert depth.tolist() == [[-1, 0, -1, -1]]


def test_generation_is_deterministic_and_splits_98_1_1():
    task = ksmallest.Spec(k=1, list_len=16, num_set=512)
    a = ksmallest.make_splits(task, n_train=980, n_eval=10, seed=7)
    b = ksmallest.make_splits(task, n_train=980, n_eval=10, seed=7)
    c = ksmallest.make_splits(task, n_train=980, n_eval=10, seed=8)
    assert (len(a.train), len(a.val), len(a.test)) == (980, 10, 10)
    assert np.array_equal(a.test, b.test) and not np.array_equal(a.test, c.test)
    assert a.train.min() >= 0 and a.train.max() < 512 and a.train.shape[1] == 16
    # drawn with replacement over the whole set
    assert len(np.unique(a.train)) > 500


def test_answers_match_python_sorting():
    task = ksmallest.Spec(k=4, list_len=9, num_set=20)
    values = ksmallest.generate(task, 50, seed=1)
    expected = [sorted(row)[4] for row in values.tolist()]
    assert ksmallest.answers(task, values).tolist() == expected


def test_multi_token_examples_and_greedy_scoring(monkeypatch):
    """Numbers written digit by digit after a BOS; an answer counts only when greedy decoding
    writes all of its digits and then stops the number."""
    from test_probe_cli import digit_tokenizer

    from mechprobe.probing import ksmallest as probe_ksmallest

    tokenizer = digit_tokenizer()
    with pytest.raises(UserError):
        ksmallest.number_set(tokenizer, 20)          # only 0..9 are single tokens
    numbers = ksmallest.multi_token_numbers(tokenizer, 200)
    indices = np.array([[3, 145, 7], [12, 5, 150], [40, 41, 42], [199, 108, 9]])
    examples = probe_ksmallest.multi_token_examples(tokenizer, numbers, indices)
    digit = {str(d): d + 3 for d in range(10)}
    assert examples[0].input_ids == [2, digit["3"], digit["1"], digit["4"], digit["5"], digit["7"]]
    assert examples[0].statements == [[1], [2, 3, 4], [5]] and examples[0].query == [5]
    answers = np.array([145, 12, 41, 108])
    targets = [[digit[c] for c in str(a)] for a in answers]
    # Per example, what the fake model writes after the prompt: right then stops; right then
    # one more digit; wrong first digit; wrong second digit.
    writes = [targets[0] + [0], targets[1] + [digit["0"]], [digit["9"]], [digit["1"], digit["9"]]]

    def oracle(ids):
        i = next(i for i, e in enumerate(examples) if ids[:len(e.input_ids)] == e.input_ids)
        step = len(ids) - len(examples[i].input_ids)
        return writes[i][step] if step < len(writes[i]) else 0

    monkeypatch.setattr(probe_ksmallest, "Recorder", lambda model: contextlib.nullcontext())
    monkeypatch.setattr(probe_ksmallest, "extract", lambda recorder, fed, *a, **k: (
        None, np.array([oracle(e.input_ids) for e in fed]), None))
    read = ReadConfig(batch_size=8)
    first = [oracle(e.input_ids) for e in examples]
    correct = probe_ksmallest.multi_token_correct(None, tokenizer, numbers, examples, indices,
                                                  answers, first, read, pad_id=0)
    assert correct.tolist() == [True, False, False, False]


def test_bos_is_kept_in_single_token_prompts():
    """A tokenizer that adds a BOS (OPT, LLaMA) keeps it before the numbers."""
    from tokenizers import processors

    from mechprobe.tiny_models import word_tokenizer
    from mechprobe.probing.ksmallest import to_examples

    tokenizer = word_tokenizer([str(n) for n in range(30)], 64, specials=("<pad>", "<unk>", "<s>"))
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", 2)])
    numbers = ksmallest.number_set(tokenizer, 30)
    assert numbers.prefix == (2,)
    indices = np.array([[4, 17, 0]])
    ids = numbers.encode(indices)
    assert ids.tolist() == [tokenizer(numbers.text(indices[0]))["input_ids"]] == [[2, 7, 20, 3]]
    example = to_examples(numbers, indices)[0]
    assert example.statements == [[1], [2], [3]] and example.query == [3]
