"""Variable chains: a multi-hop lookup task that a tiny GPT-2 learns from scratch on a CPU.

A prompt is `n_chains` chains of variable assignments, every chain `hops` statements long, in
shuffled order, then a question naming the last variable of one chain (2 chains of 3 hops):

    f = e ; k = 3 ; e = 7 ; q = k ; c = f ; m = q ; ? c        answer: 7

    chain asked:   e = 7 ;  ->  f = e ;  ->  c = f ;   (the constant, then one link per hop)
    distractor:    k = 3 ;  ->  q = k ;  ->  m = q ;

Every statement is four word tokens (`lhs = rhs ;`) and every prompt of a setting has the same
length, so a batch needs no padding. Variables are letters drawn without replacement per prompt
(a name means nothing across prompts: the model must bind, not memorise); the chains' constants
are distinct values, so the answer names its chain.

Reasoning tree (docs/METHOD.md section 2): the statements of the asked chain are useful, the
distractor chains are noise. Edges run from premise to conclusion along the chain ([position of
`e = 7 ;`, position of `f = e ;`], ...), the statement defining the asked variable is the root.
A statement's depth class is its hop distance from the constant: the constant's statement is
class 0 (the leaf), the root is class hops - 1 (= the tree's depth). With hops = 1 the tree is
the root alone (one class: probe 2 has nothing to learn, as for k = 0 in the k-th smallest).

The data is generated, not loaded: a split is a seeded stream (`seed`, split), n_examples
questions per hop count, bucket "hops=H".
"""

from dataclasses import dataclass

import numpy as np

from mechprobe.tasks.base import Question, TextTask, register

VARIABLES = tuple("abcdefghijklmnopqrstuvwxyz")
VALUES = tuple(str(n) for n in range(10))
PUNCTUATION = ("=", ";", "?")
WORDS = VARIABLES + VALUES + PUNCTUATION      # the word-level tokenizer's vocabulary, in order
SPLIT_STREAMS = {"train": 0, "dev": 1, "test": 2}
STREAM = 20                                   # the task's own stream (mechprobe/seeds.py style)


@dataclass(frozen=True)
class Setting:
    """The shape of the prompts: hops per chain, chains per prompt."""

    hops: int = 1
    n_chains: int = 4

    def __post_init__(self):
        if self.hops < 1 or self.n_chains < 1:
            raise ValueError(f"hops {self.hops} and n_chains {self.n_chains} must be at least 1")
        if self.hops * self.n_chains > len(VARIABLES):
            raise ValueError(f"{self.hops} x {self.n_chains} statements need more than "
                             f"{len(VARIABLES)} variable names")
        if self.n_chains > len(VALUES):
            raise ValueError(f"{self.n_chains} chains need more than {len(VALUES)} distinct values")

    @property
    def n_statements(self):
        return self.hops * self.n_chains

    @property
    def n_tokens(self):
        """Prompt length in word tokens: 4 per statement, then `? var`."""
        return 4 * self.n_statements + 2


def question(rng, setting, qid="0", group=""):
    """One seeded question of `setting`, drawn by the numpy Generator `rng`."""
    h, n = setting.hops, setting.n_chains
    names = rng.choice(len(VARIABLES), size=h * n, replace=False).reshape(n, h)
    values = rng.choice(len(VALUES), size=n, replace=False)
    asked = int(rng.integers(n))
    order = rng.permutation(h * n)            # order[slot] = (chain * h + link) shown in that slot
    slot_of = np.empty(h * n, dtype=int)
    slot_of[order] = np.arange(h * n)
    statements, useful, depth = [], [], []
    for item in order:
        chain, link = divmod(int(item), h)
        lhs = VARIABLES[names[chain, link]]
        rhs = VALUES[values[chain]] if link == 0 else VARIABLES[names[chain, link - 1]]
        statements.append(f"{lhs} = {rhs} ;")
        useful.append(int(chain == asked))
        depth.append(link if chain == asked else None)
    edges = [[int(slot_of[asked * h + link]), int(slot_of[asked * h + link + 1])]
             for link in range(h - 1)]
    return Question(id=qid, statements=statements, question=f"? {VARIABLES[names[asked, -1]]}",
                    useful=useful, depth=depth, answer=VALUES[values[asked]], choices=VALUES,
                    kinds=["fact" if "=" in s and s.split()[2] in VALUES else "rule"
                           for s in statements],
                    group=group or qid, bucket=f"hops={h}", edges=edges)


def generate(setting, n, seed, split="test"):
    """n questions of `setting` from the stream (seed, split, hops, n_chains): same seed, same data."""
    rng = np.random.default_rng([seed, STREAM, SPLIT_STREAMS[split], setting.hops, setting.n_chains])
    return [question(rng, setting, qid=f"{split}-h{setting.hops}-{i}") for i in range(n)]


def prompt(q):
    """The prompt as the probe writes it (mechprobe/tasks/prompts.py, no shots, no suffix)."""
    return f"{q.context} {q.question}"


def encode(tokenizer, questions):
    """(N, T) prompt token ids and (N,) answer ids of questions of one setting (no padding)."""
    import torch

    ids = tokenizer([prompt(q) for q in questions], add_special_tokens=False)["input_ids"]
    answers = tokenizer.convert_tokens_to_ids([q.answer for q in questions])
    return torch.tensor(ids), torch.tensor(answers)


SPECIALS = ("<pad>", "<unk>")           # mechprobe.tiny_models.word_tokenizer's first ids
TOKEN_ID = {w: len(SPECIALS) + i for i, w in enumerate(WORDS)}


def token_batch(rng, setting, n, queries=1, any_link=False, lookups=0):
    """n prompts of `setting` as token ids, drawn at once (training data; the same distribution
    as `question`, not the same draws), for a word_tokenizer(WORDS).

    Returns (n, T) int64 ids, (n, queries) answer ids and the (queries,) positions whose next
    token is the answer. With queries=1 a row reads like prompt(question) of its own draw. More
    queries (dense supervision) follow as `? var value`, each asking a variable drawn anew (it may
    repeat), the last one's value left out; with `any_link` a query may ask any variable of any chain (a variable
    `j` links from the constant is a (j+1)-hop question), else only the chains' last variables.
    With `lookups` > 0 a fourth array (n, queries, lookups) holds, per query, what k lookups
    reach (k = 1..lookups): the variable k links nearer the constant, or the value once there.
    """
    h, c = setting.hops, setting.n_chains
    names = np.argsort(rng.random((n, len(VARIABLES))), axis=1)[:, :h * c].reshape(n, c, h)
    values = np.argsort(rng.random((n, len(VALUES))), axis=1)[:, :c]
    # Queries are drawn with replacement: drawn without, the last one's answer would be the one
    # value not yet answered (a model learns that elimination long before the lookup).
    if any_link:
        chain, link = np.divmod(rng.integers(h * c, size=(n, queries)), h)
    else:
        chain = rng.integers(c, size=(n, queries))
        link = np.full_like(chain, h - 1)
    order = np.argsort(rng.random((n, h * c)), axis=1)
    var_id = np.array([TOKEN_ID[v] for v in VARIABLES])
    value_id = np.array([TOKEN_ID[v] for v in VALUES])
    lhs = var_id[names]                                            # (n, c, h)
    rhs = np.concatenate([value_id[values][:, :, None], lhs[:, :, :-1]], axis=2)
    lhs, rhs = (np.take_along_axis(a.reshape(n, h * c), order, axis=1) for a in (lhs, rhs))
    tokens = np.stack([lhs, np.full_like(lhs, TOKEN_ID["="]), rhs, np.full_like(lhs, TOKEN_ID[";"])],
                      axis=2).reshape(n, 4 * h * c)
    rows = np.arange(n)[:, None]
    asked = var_id[names[rows, chain, link]]                       # (n, queries)
    answers = value_id[values[rows, chain]]
    tail = np.stack([np.full_like(asked, TOKEN_ID["?"]), asked, answers], axis=2).reshape(n, -1)
    positions = 4 * h * c + 1 + 3 * np.arange(queries)
    x = np.concatenate([tokens, tail[:, :-1]], axis=1)
    if not lookups:
        return x, answers, positions
    k = np.arange(1, lookups + 1)
    nearer = link[:, :, None] - k                                   # (n, queries, lookups)
    reached = np.where(nearer >= 0, var_id[names[rows[:, :, None], chain[:, :, None],
                                                 np.maximum(nearer, 0)]], answers[:, :, None])
    return x, answers, positions, reached


HOPS = (1, 2, 3, 4)          # the probed settings
N_CHAINS = 4                 # distractors included


@register
class Chains(TextTask):
    """The registered task: questions of HOPS hop counts with N_CHAINS chains, generated from the
    run's seed (0; the data option is unused)."""

    name = "chains"
    how_to_get = "generated (mechprobe/tasks/chains.py); train a model with experiments/chains_train.py"
    grouped_by = "example"
    needs_data = False                 # generated: --data is not read
    seed = 0

    def load(self, split):
        n = self.config.n_examples if self.config is not None else 1024
        return [q for h in HOPS for q in generate(Setting(h, N_CHAINS), n, self.seed, split)]

    def shortcuts(self, questions):
        """The value of the first constant in the prompt: a reader that ignores the question."""
        return {"first constant": [next(s.split()[2] for s in q.statements
                                        if s.split()[2] in VALUES) for q in questions]}
