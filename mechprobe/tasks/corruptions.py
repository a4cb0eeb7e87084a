"""Corrupted questions for the robustness experiment (docs/METHOD.md). Any text task: a noise
statement (not in the tree) or a useful one replaced by a statement drawn from another question
of the task, or the statements shuffled (TextTask.corrupt). ProofWriter: the noise or useful
statement made counterfactual instead ("That the cow is big is false."), as in the paper."""

import dataclasses

CORRUPTIONS = ("noise_counterfactual", "useful_counterfactual", "shuffle")   # ProofWriter's
REPLACEMENTS = ("noise_replaced", "useful_replaced", "shuffle")              # any text task's


def shuffled(question, rng):
    """The question with its statements in a random order: labels, kinds and the tree's edges
    follow their statements."""
    order = rng.permutation(len(question.statements))
    where = {int(old): new for new, old in enumerate(order)}
    return dataclasses.replace(
        question, statements=[question.statements[i] for i in order],
        useful=[question.useful[i] for i in order], depth=[question.depth[i] for i in order],
        kinds=[question.kinds[i] for i in order],
        edges=[[where[a], where[b]] for a, b in question.edges])


def replaced(question, kind, rng, pool):
    """The question with one noise (kind noise_replaced) or useful (useful_replaced) statement
    replaced by a statement of another question of `pool` that it does not hold; None where it
    has no such statement, or the pool none to give."""
    if kind == "shuffle":
        return shuffled(question, rng)
    wanted = 1 if kind == "useful_replaced" else 0
    candidates = [i for i, u in enumerate(question.useful) if u == wanted]
    if not candidates:
        return None
    index = candidates[rng.integers(len(candidates))]
    own = set(question.statements)
    others = [s for q in pool if q.id != question.id for s in q.statements if s not in own]
    if not others:
        return None
    statements = list(question.statements)
    statements[index] = others[rng.integers(len(others))]
    return dataclasses.replace(question, statements=statements)

COUNTERFACTUAL_WORDS = ("That", "is", "false")   # what counterfactual() adds to a statement
OPENERS = {"The", "If", "All", "Something", "Someone", "Everything", "Everyone"}


def counterfactual(statement, lower_words=frozenset()):
    """'The cow is big.' -> 'That the cow is big is false.'

    The first letter is lower-cased unless the first word is a name: a name is a capitalised word
    that is not a usual opener and never occurs in lower case in `lower_words` (the theory's
    words past sentence starts), so 'Bob is big.' keeps 'Bob' and 'Big things are red.' does not
    keep 'Big'.
    """
    body = statement.rstrip(". ")
    first = body.split(" ", 1)[0].rstrip(",")
    if first in OPENERS or first.lower() in lower_words or not first[:1].isupper():
        body = body[:1].lower() + body[1:]
    return f"That {body} is false."


def inner_words(texts):
    """Words of the texts that do not start a sentence."""
    return frozenset(w.strip(".,?!") for t in texts for w in t.split()[1:])


def corrupt(question, kind, rng):
    """A corrupted copy of a ProofWriter question (CORRUPTIONS), or None where the corruption
    does not apply."""
    statements = list(question.statements)
    if kind == "shuffle":
        order = rng.permutation(len(statements))
        return dataclasses.replace(
            question, statements=[statements[i] for i in order],
            statement_ids=[question.statement_ids[i] for i in order],
            useful=[question.useful[i] for i in order], depth=[question.depth[i] for i in order])
    wanted = 1 if kind == "useful_counterfactual" else 0
    candidates = [i for i, u in enumerate(question.useful) if u == wanted]
    if not candidates:
        return None
    index = candidates[rng.integers(len(candidates))]
    words = inner_words(statements + [question.question])
    statements[index] = counterfactual(statements[index], words)
    return dataclasses.replace(question, statements=statements)
