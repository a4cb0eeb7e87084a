"""Accuracy where the input-only shortcut fails (METHOD.md, section 9, "Shortcut control").

On the probed ProofWriter questions (a single proof, no negation as failure) "True exactly when
not negated" is right on every question by construction: under the closed-world assumption a
proved plain question is True and a proved negated one False. Accuracy on them cannot tell a
model that reasons from one that applies that rule. The control is the model's accuracy on
questions of the same depth and bucket that the probes leave out (answered through negation as
failure, or with several proofs) and that the bucket's best input-only answerer gets wrong: the
rule scores 0 there by selection, so accuracy above 0 is the model's own.
"""

from collections import Counter

import numpy as np

from mechprobe import seeds
from mechprobe.attention.features import extract
from mechprobe.attention.recorder import Recorder
from mechprobe.tasks.prompts import chosen_answers


def hard_questions(pool, probed, answerer_name, answerers, limit, seed):
    """Questions of `pool` (one bucket's unprobed questions) whose answer the input-only answerer
    `answerer_name` gets wrong, at most `limit` of them drawn without replacement (file order
    kept). `answerers(questions)` gives {name: answer per question}; the commonest answer of
    the probed questions `probed` stands for 'commonest answer'."""
    if answerer_name == "commonest answer":
        common = Counter(q.target for q in probed).most_common(1)[0][0]
        answers = [common] * len(pool)
    else:
        answers = answerers(pool)[answerer_name]
    wrong = [q for q, a in zip(pool, answers) if a != q.target]
    if len(wrong) > limit:
        rng = seeds.rng(seed, seeds.SHORTCUT_SAMPLE)
        wrong = [wrong[i] for i in sorted(rng.choice(len(wrong), size=limit, replace=False))]
    return wrong


def answered(model, questions, examples, words, word_ids, batch_size, pad_id, max_tokens):
    """Per question: whether the model's highest logit among its choices is its target (the
    accuracy probe_questions computes, without recording attention)."""
    with Recorder(model) as recorder:
        _, _, scores = extract(recorder, examples, [], batch_size, pad_id=pad_id,
                               logit_ids=word_ids, max_tokens=max_tokens, desc="shortcut control")
    return np.array([a == q.target for a, q in zip(chosen_answers(scores, words, questions),
                                                   questions)])


def shortcut_control(model, everything, buckets, settings, answerers, prompts, fits, words,
                     word_ids, read, pad_id, seed):
    """{bucket: the results.json field 'shortcut_control'}: per probed bucket with a best
    answerer, `answerer`, `n` (questions it gets wrong, at most as many as the bucket probes),
    `pool` (its unprobed questions of that bucket) and the model's `accuracy` on the n (null
    where n is 0). `everything`: the split's questions, probed or not; `prompts(questions)`
    their Examples; `fits(questions, examples)` the indices whose prompts fit the model."""
    probed_ids = {q.id for members in buckets.values() for q in members}
    chosen = {}
    for bucket, members in buckets.items():
        if bucket not in settings or "baseline" not in settings[bucket]:
            continue
        pool = [q for q in everything if q.bucket == bucket and q.id not in probed_ids]
        hard = hard_questions(pool, members, settings[bucket]["baseline"], answerers,
                              len(members), seed)
        chosen[bucket] = (pool, hard)
    flat = [q for _, hard in chosen.values() for q in hard]
    examples = prompts(flat)
    keep = set(fits(flat, examples))
    flat_index = {id(q): i for i, q in enumerate(flat)}
    scored = [i for i in range(len(flat)) if i in keep]
    correct = dict(zip(scored, answered(model, [flat[i] for i in scored],
                                        [examples[i] for i in scored], words, word_ids,
                                        read.batch_size, pad_id, read.max_batch_tokens)
                       if scored else []))
    result = {}
    for bucket, (pool, hard) in chosen.items():
        right = [correct[flat_index[id(q)]] for q in hard if flat_index[id(q)] in correct]
        result[bucket] = {"answerer": settings[bucket]["baseline"], "n": len(right),
                          "pool": len(pool),
                          "accuracy": float(np.mean(right)) if right else None}
    return result
