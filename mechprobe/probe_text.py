"""Probing on text tasks, ProofWriter and ARC (METHOD.md Tasks 2 and 3): statements in a prompt,
the fine-tuned setting (no shots, mean over question tokens) and the in-context setting (--icl N
shots from train, max over question tokens).

A task is its data module (mechprobe.proofwriter or mechprobe.arc): load(root, split) returning
labelled questions with .statements, .question, .target, .choices and .bucket; SUFFIX; HOW_TO_GET.
"""

import json
import os
import re
import time

import numpy as np

from . import arc, proofwriter
from .cli import UserError
from .features import Example, segment_tokens
from .memory import PeakMemory, model_bytes
from .probe import ProbeConfig, Samples, mean_of, probe_stages
from .probing import (features_of, load_model, majority_rate, parse_layers, probe_setting,
                      random_twin, report)

TASKS = {"proofwriter": proofwriter, "arc": arc}


def prompt(question, suffix):
    return f"{question.context} {question.question}{suffix}"


def shot_text(question, suffix):
    return f"{prompt(question, suffix)} {question.target}\n"


def choose_shots(train, n_shots, seed):
    """n_shots training questions spread evenly over the answers (True/False, or option letters
    in order), fixed by seed, then shuffled."""
    rng = np.random.default_rng([seed, 3])
    answers = list(dict.fromkeys(c for q in train for c in q.choices))
    counts = {a: n_shots // len(answers) + (i < n_shots % len(answers)) for i, a in enumerate(answers)}
    shots = []
    for answer, count in counts.items():
        pool = [q for q in train if q.target == answer]
        if len(pool) < count:
            raise UserError(f"the train split has {len(pool)} questions answered {answer}, fewer "
                            f"than --icl {n_shots} needs: use fewer shots")
        shots += [pool[i] for i in sorted(rng.choice(len(pool), size=count, replace=False))]
    order = rng.permutation(len(shots))
    return [shots[i] for i in order]


def to_example(tokenizer, question, prefix, suffix):
    """Prompt = shots + statements joined by spaces + ' ' + question + suffix; query tokens run
    from the question's start to the end of the prompt."""
    segments, statement_segments = [prefix], []
    for index, statement in enumerate(question.statements):
        if index:
            segments.append(" ")
        statement_segments.append(len(segments))
        segments.append(statement)
    segments += [" ", question.question + suffix]
    ids, positions = segment_tokens(tokenizer, segments)
    return Example(ids, positions[-1], [positions[i] for i in statement_segments])


def answer_ids(tokenizer, text, words):
    """The token ids the tokenizer itself uses for ' <word>' right after a prompt, per word."""
    base = tokenizer(text)["input_ids"]
    ids = []
    for word in words:
        extended = tokenizer(f"{text} {word}")["input_ids"]
        if extended[:len(base)] != base or len(extended) == len(base):
            extended = base + tokenizer(f" {word}", add_special_tokens=False)["input_ids"]
        ids.append(extended[len(base)])
    if len(set(ids)) < len(ids):
        raise UserError(f"the tokenizer gives the answers {list(words)} overlapping first tokens: "
                        "this model cannot be scored on this task")
    return ids


def by_bucket(questions):
    """{bucket: questions in file order}, buckets in size order; questions in no bucket left out."""
    buckets = {}
    for q in questions:
        if q.bucket is not None:
            buckets.setdefault(q.bucket, []).append(q)
    return {b: buckets[b] for b in sorted(buckets, key=lambda b: int(b.split("=")[1]))}


def bucket_sizes(questions, split):
    """One line: how many questions each bucket holds before sampling, and how many fit none."""
    buckets = by_bucket(questions)
    outside = len(questions) - sum(len(members) for members in buckets.values())
    sizes = ", ".join(f"{b} {len(members)}" for b, members in buckets.items()) or "none"
    return f"{split}: questions per bucket: {sizes}; in no bucket: {outside}"


def sample_buckets(questions, per_bucket, seed):
    """{bucket: questions}, at most per_bucket each, sampled without replacement, in file order."""
    rng = np.random.default_rng([seed, 4])
    buckets = by_bucket(questions)
    order = list(buckets)
    sampled = {}
    for bucket in order:
        pool = buckets[bucket]
        if len(pool) > per_bucket:
            pool = [pool[i] for i in sorted(rng.choice(len(pool), size=per_bucket, replace=False))]
        sampled[bucket] = pool
    return sampled


def words(text):
    return set(re.findall(r"\w+", text.lower()))


def text_features(question):
    """The text-only control: per statement, whether it is a rule, its word overlap with the
    question (Jaccard), and its relative position; shape (statements, 1, 3) like attention features."""
    asked = words(question.question)
    n = len(question.statements)
    rows = []
    for index, (sid, statement) in enumerate(zip(question.statement_ids, question.statements)):
        said = words(statement)
        overlap = len(said & asked) / max(1, len(said | asked))
        rows.append([float(sid.startswith("rule")), overlap, index / max(1, n - 1)])
    return np.array(rows, dtype=np.float32)[:, None, :]


def token_span(positions):
    """[start, end) of a run of token positions (a segment's tokens are consecutive)."""
    return [positions[0], positions[-1] + 1] if positions else None


def dump_examples(path, questions, examples=None):
    """One JSON line per question; with `examples` (its tokenized prompt, one per question) also
    the prompt's token ids and the [start, end) token spans of each statement and of the query,
    so that a user can check them against the model's tokenizer."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        for index, q in enumerate(questions):
            row = q.dump()
            if examples is not None:
                example = examples[index]
                row.update({"input_ids": [int(i) for i in example.input_ids],
                            "statement_spans": [token_span(p) for p in example.statements],
                            "query_span": token_span(example.query)})
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, path)
    print(f"wrote {len(questions)} examples to {path}"
          + ("" if examples is None else " (with token ids and spans)"))


def run(args):
    started = time.time()
    data = TASKS[args.task]
    if args.data is None:
        raise UserError(f"--task {args.task} needs --data DIR: {data.HOW_TO_GET}")
    options = {"buckets": args.buckets} if args.task == "proofwriter" else {}
    questions = data.load(args.data, args.split, **options)
    print(bucket_sizes(questions, args.split))
    if args.model is None:
        if not args.dump_examples:
            raise UserError("pass --model (a model to probe) or --dump-examples FILE")
        dump_examples(args.dump_examples, questions)
        return None
    shots = choose_shots(data.load(args.data, "train"), args.icl, args.seed) if args.icl else []
    prefix = "".join(shot_text(q, data.SUFFIX) for q in shots)
    buckets = sample_buckets(questions, args.n_examples, args.seed)
    if not buckets:
        raise UserError(f"no questions of the probed depths in the {args.split} split of "
                        f"{args.data}: {data.HOW_TO_GET}")

    model, tokenizer, device = load_model(args)
    layers = parse_layers(args.layers, model.config.get_text_config().num_hidden_layers)
    if args.dump_examples:
        dump_examples(args.dump_examples, questions,
                      [to_example(tokenizer, q, prefix, data.SUFFIX) for q in questions])
    args.query_pool = args.query_pool or ("max" if args.icl else "mean")
    args.batch_size = args.batch_size or 16
    flat = [q for bucket in buckets.values() for q in bucket]
    examples = [to_example(tokenizer, q, prefix, data.SUFFIX) for q in flat]
    words = list(dict.fromkeys(c for q in flat for c in q.choices))
    word_ids = answer_ids(tokenizer, prefix + prompt(flat[0], data.SUFFIX), words)
    pad_id = tokenizer.pad_token_id or 0
    # One example first: torch's one-time start-up allocations (about 170 MB on a CPU, whatever the
    # model) are not extraction memory, and would otherwise dominate the peak measured below.
    features_of(model, examples[:1], layers, args, pad_id, word_ids, "warm-up")
    with PeakMemory(device) as peak:
        features, _, scores = features_of(model, examples, layers, args, pad_id, word_ids, "model")
    random_features, _, _ = features_of(random_twin(model, args.seed), examples, layers, args,
                                        pad_id, word_ids, "random model")
    # The prediction is the question's own choice with the highest logit.
    predicted = [max(q.choices, key=lambda c: scores[i, words.index(c)]) for i, q in enumerate(flat)]
    correct = np.array([p == q.target for p, q in zip(predicted, flat)])

    config = ProbeConfig(neighbors=args.neighbors, p=args.p or 1, folds=args.folds, seed=args.seed)
    settings, start = {}, 0
    for bucket, members in buckets.items():
        span = slice(start, start + len(members))
        start += len(members)
        majority = majority_rate(q.target for q in members)
        groups = [q.group for q in members]
        if len(set(groups)) < args.folds:
            print(f"skipping bucket {bucket}: {len(members)} examples from {len(set(groups))} "
                  f"{data.GROUPED_BY}s, fewer than {args.folds} folds")
            continue
        useful = [np.array(q.useful) for q in members]
        depth = [np.array([-1 if d is None else d for d in q.depth]) for q in members]
        result = probe_setting(features[span], random_features[span], useful, depth, config, layers,
                               groups)
        control = probe_stages(Samples.from_examples([text_features(q) for q in members], useful,
                                                     depth, groups), config)
        result["f1_text_control"] = {stage: mean_of(value) for stage, value in control.items()}
        settings[bucket] = {"accuracy": float(correct[span].mean()), "majority_rate": majority,
                            **result}
    meta = {"task": args.task, "model": args.model, "data": args.data, "split": args.split,
            "icl": args.icl, "shots": [q.id for q in shots], "layers": layers,
            "buckets": options.get("buckets"), "cv_groups": data.GROUPED_BY,
            "per_head": args.per_head, "query_pool": args.query_pool,
            "statement_pool": args.statement_pool,
            "probe": {"neighbors": config.neighbors, "p": config.p, "folds": config.folds},
            "answer_words": words, "answer_token_ids": word_ids, "seed": args.seed,
            "device": str(device),
            "mean_prompt_tokens": float(np.mean([len(e.input_ids) for e in examples])),
            "memory": {"model_mb": model_bytes(model) / 2**20,
                       "extraction_peak_extra_mb": None if peak.extra_bytes is None
                       else peak.extra_bytes / 2**20}}
    return report(args.out, meta, settings, started)
