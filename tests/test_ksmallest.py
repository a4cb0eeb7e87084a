import numpy as np
import pytest

from mechprobe import ksmallest
from mechprobe.cli import UserError


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
    task = ksmallest.Task(k=2, list_len=6, num_set=10)
    values = np.array([[4, 2, 2, 7, 2, 0]])
    useful, depth = ksmallest.reasoning_tree(task, values)
    # ranks: 0@5 (r0), 2@1 (r1), 2@2 (r2 = root), 2@4 (r3, a tie with the root but later: noise)
    assert useful.tolist() == [[False, True, True, False, False, True]]
    assert depth.tolist() == [[-1, 0, 1, -1, -1, 0]]
    assert ksmallest.answers(task, values).tolist() == [2]


def test_reasoning_tree_all_equal_values():
    task = ksmallest.Task(k=1, list_len=4, num_set=10)
    useful, depth = ksmallest.reasoning_tree(task, np.array([[7, 7, 7, 7]]))
    assert useful.tolist() == [[True, True, False, False]]
    assert depth.tolist() == [[0, 1, -1, -1]]


def test_k0_tree_is_a_single_class():
    task = ksmallest.Task(k=0, list_len=4, num_set=10)
    useful, depth = ksmallest.reasoning_tree(task, np.array([[3, 1, 1, 2]]))
    assert useful.tolist() == [[False, True, False, False]]
    assert depth.tolist() == [[-1, 0, -1, -1]]


def test_generation_is_deterministic_and_splits_98_1_1():
    task = ksmallest.Task(k=1, list_len=16, num_set=512)
    a = ksmallest.make_splits(task, n_train=980, n_eval=10, seed=7)
    b = ksmallest.make_splits(task, n_train=980, n_eval=10, seed=7)
    c = ksmallest.make_splits(task, n_train=980, n_eval=10, seed=8)
    assert (len(a.train), len(a.val), len(a.test)) == (980, 10, 10)
    assert np.array_equal(a.test, b.test) and not np.array_equal(a.test, c.test)
    assert a.train.min() >= 0 and a.train.max() < 512 and a.train.shape[1] == 16
    # drawn with replacement over the whole set
    assert len(np.unique(a.train)) > 500


def test_answers_match_python_sorting():
    task = ksmallest.Task(k=4, list_len=9, num_set=20)
    values = ksmallest.generate(task, 50, seed=1)
    expected = [sorted(row)[4] for row in values.tolist()]
    assert ksmallest.answers(task, values).tolist() == expected
