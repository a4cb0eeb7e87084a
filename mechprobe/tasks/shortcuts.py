"""Answers read off the input alone, without a model: the shortcuts a model's accuracy must beat
before its probing scores mean much (baselines.chance_check), and the ProofWriter word rules the
fine-tuning report splits its accuracy by (binding_value)."""

import re


def negated(question):
    return bool(re.search(r"\b(not|does not|do not)\b", question.question))


def word_in_facts(question, facts):
    """Whether the question's last word (its predicate or object) occurs in `facts`."""
    word = question.question.rstrip(".").split()[-1]
    return bool(re.search(rf"\b{re.escape(word)}\b", facts))


def word_rule(question, facts):
    """The answer of a rule that needs no binding: True when the question's last word occurs in
    `facts`, flipped by "not". On depth-0 questions it is wrong exactly where the answer depends
    on which statement the word belongs to ("Bob is big. Anne is red." asked "Bob is red.")."""
    return word_in_facts(question, facts) != negated(question)


def binding_value(question):
    """For a depth-0 question whose last word occurs in a fact: whether the atom it asks about
    (the question without "not") holds, "atom_true" or "atom_false"; else None. Word occurrence
    cannot tell the two apart, and neither can the question's wording, since each value holds
    plain and negated questions with opposite answers (atom_false: plain False and negated True,
    which also makes it all that answering "True exactly when not" gets right)."""
    if question.qdep != 0 or not word_in_facts(question, facts_of(question)):
        return None
    return "atom_true" if question.answer != negated(question) else "atom_false"


def facts_of(question):
    return " ".join(s for kind, s in zip(question.kinds, question.statements) if kind == "fact")


def proofwriter_answers(questions):
    """{name: the answer word per question} of ProofWriter shortcuts: the negation word either way
    round, and the word rule (which reads the facts but binds nothing)."""
    questions = list(questions)
    word = {True: "True", False: "False"}
    return {"True exactly when negated": [word[negated(q)] for q in questions],
            "True exactly when not negated": [word[not negated(q)] for q in questions],
            "word rule": [word[word_rule(q, facts_of(q))] for q in questions]}


def ksmallest_answers(indices):
    """{name: the answer per example as an index into the number set} of k-th smallest
    shortcuts: copying the last number (what an untrained GPT-2 with tied embeddings tends to
    say next), or the first."""
    return {"copy the last number": indices[:, -1], "copy the first number": indices[:, 0]}
