"""The k-th smallest element task (METHOD.md, Task 1): data, number set and reasoning tree.

An example is L numbers drawn with replacement from a number set of size S; the target is the
k-th smallest (0-based k) as the next token. Numbers are handled as indices into the number set,
which is sorted ascending, so comparing indices compares values.
"""

import os
import re
from dataclasses import dataclass

import numpy as np

from mechprobe import seeds
from mechprobe.cli import UserError
from mechprobe.jsonfiles import read_json
from mechprobe.tasks import base

TASK_FILE = "task.json"  # written beside a fine-tuned model: which task it was trained on

TASK_PATTERN = re.compile(r"^min(\d{2})$")
# How far to look for single-token numbers before giving up (GPT-2 has about 1,600 below 10^4).
NUMBER_SCAN_LIMIT = 100_000


@dataclass(frozen=True)
class Spec:
    """One k-th smallest task: its k (0-based), list length and number-set size (minKK)."""

    k: int
    list_len: int = 16
    num_set: int = 512

    @property
    def name(self):
        return f"min{self.k:02d}"

    def to_json(self):
        return {"task": self.name, "k": self.k, "list_len": self.list_len, "num_set": self.num_set}


def parse_task(name, list_len=16, num_set=512):
    """Validate a task name like 'min01' against the list length and number-set size."""
    match = TASK_PATTERN.match(name)
    if not match:
        raise UserError(f"unknown task '{name}': use minKK with a two-digit 0-based k, "
                        "e.g. min00 (smallest) or min01 (second smallest)")
    k = int(match.group(1))
    if list_len < 2:
        raise UserError(f"--list-len {list_len} is too short: use at least 2 numbers")
    if k >= list_len:
        raise UserError(f"task {name} asks for element {k} (0-based) of a {list_len}-number list: "
                        f"use k < --list-len (min00..min{list_len - 1:02d}) or raise --list-len")
    if num_set < 2:
        raise UserError(f"--num-set {num_set} is too small: use at least 2 numbers")
    return Spec(k=k, list_len=list_len, num_set=num_set)


class SpaceJoined:
    """Numbers written as decimals joined by single spaces (the task's input text)."""

    def text(self, indices):
        """One example's indices -> its input text, as a tokenizer would see it."""
        return " ".join(str(n) for n in self.numbers[indices])


@dataclass(frozen=True)
class NumberSet(SpaceJoined):
    """The numbers that are one token each, and their token ids at the start and after a space."""

    numbers: np.ndarray      # (S,) ascending integers
    first_ids: np.ndarray    # (S,) token id of "n" at the start of the input
    later_ids: np.ndarray    # (S,) token id of " n" after a space (also the answer token)
    prefix: tuple = ()       # what the tokenizer puts before any text (a BOS), kept in every input

    def encode(self, indices):
        """(N, L) indices into the set -> (N, len(prefix) + L) token ids of the space-joined
        numbers, after the tokenizer's own prefix: number j is at position len(prefix) + j."""
        ids = self.later_ids[indices]
        ids[:, 0] = self.first_ids[indices[:, 0]]
        prefix = np.broadcast_to(np.asarray(self.prefix, dtype=ids.dtype), (len(ids), len(self.prefix)))
        return np.concatenate([prefix, ids], axis=1)


def special_prefix(tokenizer):
    """The token ids the tokenizer adds before a text (OPT's and LLaMA's BOS), as a tuple.

    What it adds after a text (an EOS, rare for causal LMs) is left out: the answer comes next.
    """
    plain = tokenizer("0 1", add_special_tokens=False)["input_ids"]
    full = tokenizer("0 1")["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return tuple(full[:start])
    return ()


@dataclass(frozen=True)
class MultiTokenNumbers(SpaceJoined):
    """0..S-1 as text, for a tokenizer that writes numbers as several tokens (LLaMA and SmolLM2
    split them into digits): a number is then a statement of several tokens, as in the text tasks."""

    numbers: np.ndarray      # (S,) 0..S-1


def multi_token_numbers(tokenizer, size):
    """MultiTokenNumbers of 0..size-1, refused if any of them would be an unknown token."""
    unk = tokenizer.unk_token_id
    if unk is not None:
        encoded = tokenizer([str(n) for n in range(size)], add_special_tokens=False)["input_ids"]
        lost = [n for n, ids in enumerate(encoded) if unk in ids]
        if lost:
            raise UserError(f"this tokenizer writes {lost[0]} as an unknown token: use "
                            f"--num-set {lost[0]} or less")
    return MultiTokenNumbers(np.arange(size))


class TooFewNumbers(UserError):
    """The tokenizer has fewer single-token numbers than the number set needs."""

    def __init__(self, message, available):
        super().__init__(message)
        self.available = available


def number_set(tokenizer, size):
    """The first `size` non-negative integers n for which "n n" encodes to exactly two tokens.

    Unknown-token encodings do not count: a word-level tokenizer maps every unseen number to
    one <unk> token, which would pass the length test while losing the number.
    """
    unk = tokenizer.unk_token_id
    numbers, first, later = [], [], []
    chunk = 4096
    for start in range(0, NUMBER_SCAN_LIMIT, chunk):
        candidates = range(start, start + chunk)
        encoded = tokenizer([f"{n} {n}" for n in candidates], add_special_tokens=False)["input_ids"]
        for n, ids in zip(candidates, encoded):
            if len(ids) == 2 and unk not in ids:
                numbers.append(n)
                first.append(ids[0])
                later.append(ids[1])
                if len(numbers) == size:
                    return NumberSet(np.array(numbers), np.array(first), np.array(later),
                                     special_prefix(tokenizer))
    raise TooFewNumbers(f"--num-set {size} is larger than this tokenizer can supply: it has only "
                        f"{len(numbers)} single-token numbers below {NUMBER_SCAN_LIMIT}; "
                        f"use --num-set {len(numbers)} or less", len(numbers))


def generate(task, n_examples, seed):
    """(N, L) indices into the number set, drawn uniformly with replacement; same seed, same data."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, task.num_set, size=(n_examples, task.list_len))


def probe_examples(task, n_examples, seed):
    """Examples for probing and analysis: the stream seeds.PROBE_EXAMPLES, which fine-tuning (whose
    splits come from [seed]) never draws from."""
    return generate(task, n_examples, seeds.rng(seed, seeds.PROBE_EXAMPLES))


def ranks(indices):
    """Rank of each position when sorted by (value, position): ties go to the earlier position."""
    order = np.argsort(indices, axis=-1, kind="stable")
    return np.argsort(order, axis=-1, kind="stable")


def answers(task, indices):
    """Index (into the number set) of the k-th smallest of each example."""
    return np.sort(indices, axis=-1)[..., task.k]


def reasoning_tree(task, indices):
    """Per-position labels: useful (ranks 0..k) and depth class (leaves 0, root 1; -1 = not useful).

    With k = 0 the tree is the root alone, a single class, so depth is 0 there (stage 2 is then
    not applicable, METHOD.md).
    """
    rank = ranks(indices)
    useful = rank <= task.k
    root_class = 1 if task.k > 0 else 0
    depth = np.where(rank < task.k, 0, np.where(rank == task.k, root_class, -1))
    return useful, depth


@dataclass
class Splits:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def make_splits(task, n_train, n_eval, seed):
    """One generated pool cut into train/val/test; n_eval = n_train // 98 gives the paper's 98/1/1."""
    if n_train < 1 or n_eval < 1:
        raise UserError(f"need at least one training and one evaluation example (got --n-train "
                        f"{n_train}, {n_eval} for validation and test): raise --n-train")
    pool = generate(task, n_train + 2 * n_eval, seed)
    return Splits(pool[:n_train], pool[n_train:n_train + n_eval], pool[n_train + n_eval:])


def read_task_file(model_dir):
    """The task a fine-tuned model was trained on (its task.json), or None for other models."""
    path = os.path.join(model_dir, TASK_FILE)
    if not os.path.isfile(path):
        return None
    task = read_json(path)
    if not isinstance(task, dict) or not all(
            isinstance(task.get(key, 0), int) and task.get(key, 0) >= 0
            for key in ("k", "list_len", "num_set")):
        raise UserError(f"{path} is not a JSON object naming the task: fine-tune the model again, "
                        "or delete the file and pass --k/--list-len/--num-set")
    return task


@base.register
class KSmallest(base.Task):
    """The k-th smallest task in the registry: its examples are number lists, drawn here rather
    than loaded (mechprobe/probing/ksmallest.py reads them)."""

    name = "ksmallest"
    family = "numbers"
