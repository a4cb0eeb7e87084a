"""The text-only control: the same probes on features read off the text alone (statement kind,
word overlap with the question, position), so a score the wording explains is seen as such."""

import re

import numpy as np


def words(text):
    return set(re.findall(r"\w+", text.lower()))


def text_features(question):
    """The text-only control: per statement, whether it is a rule, its word overlap with the
    question (Jaccard), and its relative position; shape (statements, 1, 3) like attention features."""
    asked = words(question.question)
    n = len(question.statements)
    rows = []
    for index, (kind, statement) in enumerate(zip(question.kinds, question.statements)):
        said = words(statement)
        overlap = len(said & asked) / max(1, len(said | asked))
        rows.append([float(kind == "rule"), overlap, index / max(1, n - 1)])
    return np.array(rows, dtype=np.float32)[:, None, :]
