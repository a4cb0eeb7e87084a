"""Probing on ProofWriter (METHOD.md, Task 2): fine-tuned (no shots) and in-context settings."""

import json
import os
import time

import numpy as np

from . import proofwriter
from .cli import UserError
from .features import Example, segment_tokens
from .memory import PeakMemory, model_bytes
from .probe import ProbeConfig
from .probing import features_of, load_model, parse_layers, probe_setting, random_twin, report

SUFFIX = ": True or False?"


def answer_word(answer):
    return "True" if answer else "False"


def shot_text(question):
    return f"{question.context} {question.question}{SUFFIX} {answer_word(question.answer)}\n"


def choose_shots(train, n_shots, seed):
    """n_shots training questions, half True and half False (the odd one True), fixed by seed."""
    rng = np.random.default_rng([seed, 3])
    shots = []
    for answer, count in ((True, n_shots - n_shots // 2), (False, n_shots // 2)):
        pool = [q for q in train if q.answer == answer]
        if len(pool) < count:
            raise UserError(f"the train split has {len(pool)} {answer_word(answer)} questions, "
                            f"fewer than --icl {n_shots} needs: use fewer shots")
        shots += [pool[i] for i in sorted(rng.choice(len(pool), size=count, replace=False))]
    order = rng.permutation(len(shots))
    return [shots[i] for i in order]


def to_example(tokenizer, question, prefix):
    """Prompt = shots + statements joined by spaces + ' ' + question + suffix; query tokens run
    from the question's start to the end of the prompt."""
    segments, statement_segments = [prefix], []
    for index, statement in enumerate(question.statements):
        if index:
            segments.append(" ")
        statement_segments.append(len(segments))
        segments.append(statement)
    segments += [" ", question.question + SUFFIX]
    ids, positions = segment_tokens(tokenizer, segments)
    return Example(ids, positions[-1], [positions[i] for i in statement_segments])


def answer_ids(tokenizer, prompt):
    """The token ids the tokenizer itself uses for ' True' and ' False' right after a prompt."""
    base = tokenizer(prompt)["input_ids"]
    ids = []
    for word in ("True", "False"):
        extended = tokenizer(f"{prompt} {word}")["input_ids"]
        if extended[:len(base)] != base or len(extended) == len(base):
            extended = base + tokenizer(f" {word}", add_special_tokens=False)["input_ids"]
        ids.append(extended[len(base)])
    if ids[0] == ids[1]:
        raise UserError("the tokenizer gives ' True' and ' False' the same first token: this model "
                        "cannot be scored on ProofWriter")
    return ids


def sample_buckets(questions, per_bucket, seed):
    """{bucket: questions}, at most per_bucket each, sampled without replacement, in file order."""
    rng = np.random.default_rng([seed, 4])
    buckets = {}
    for q in questions:
        if q.bucket is not None:
            buckets.setdefault(q.bucket, []).append(q)
    order = sorted(buckets, key=lambda b: int(b.split("=")[1]))
    sampled = {}
    for bucket in order:
        pool = buckets[bucket]
        if len(pool) > per_bucket:
            pool = [pool[i] for i in sorted(rng.choice(len(pool), size=per_bucket, replace=False))]
        sampled[bucket] = pool
    return sampled


def dump_examples(path, questions):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        for q in questions:
            f.write(json.dumps(q.dump()) + "\n")
    os.replace(tmp, path)


def run(args):
    started = time.time()
    if args.data is None:
        raise UserError("--task proofwriter needs --data DIR: " + proofwriter.HOW_TO_GET)
    questions = proofwriter.load(args.data, args.split)
    if args.dump_examples:
        dump_examples(args.dump_examples, questions)
        print(f"wrote {len(questions)} examples to {args.dump_examples}")
    if args.model is None:
        if not args.dump_examples:
            raise UserError("pass --model (a model to probe) or --dump-examples FILE")
        return None
    shots = choose_shots(proofwriter.load(args.data, "train"), args.icl, args.seed) if args.icl else []
    prefix = "".join(shot_text(q) for q in shots)
    buckets = sample_buckets(questions, args.n_examples, args.seed)
    if not buckets:
        raise UserError(f"no depth-0 or depth-1 questions in the {args.split} split of {args.data}: "
                        + proofwriter.HOW_TO_GET)

    model, tokenizer, device = load_model(args)
    layers = parse_layers(args.layers, model.config.get_text_config().num_hidden_layers)
    args.query_pool = args.query_pool or ("max" if args.icl else "mean")
    args.batch_size = args.batch_size or 16
    flat = [q for bucket in buckets.values() for q in bucket]
    examples = [to_example(tokenizer, q, prefix) for q in flat]
    true_false = answer_ids(tokenizer, prefix + flat[0].context + " " + flat[0].question + SUFFIX)
    pad_id = tokenizer.pad_token_id or 0
    # One example first: torch's one-time start-up allocations (about 170 MB on a CPU, whatever the
    # model) are not extraction memory, and would otherwise dominate the peak measured below.
    features_of(model, examples[:1], layers, args, pad_id, true_false, "warm-up")
    with PeakMemory(device) as peak:
        features, _, scores = features_of(model, examples, layers, args, pad_id, true_false, "model")
    random_features, _, _ = features_of(random_twin(model, args.seed), examples, layers, args,
                                        pad_id, true_false, "random model")
    predicted_true = scores[:, 0] > scores[:, 1]

    config = ProbeConfig(neighbors=args.neighbors, p=args.p or 1, folds=args.folds, seed=args.seed)
    settings, start = {}, 0
    for bucket, members in buckets.items():
        span = slice(start, start + len(members))
        start += len(members)
        answers = np.array([q.answer for q in members])
        accuracy = float(np.mean(predicted_true[span] == answers))
        if len(members) < args.folds:
            print(f"skipping bucket {bucket}: {len(members)} examples, fewer than {args.folds} folds")
            continue
        useful = [np.array(q.useful) for q in members]
        depth = [np.array([-1 if d is None else d for d in q.depth]) for q in members]
        result = probe_setting(features[span], random_features[span], useful, depth, config, layers)
        settings[bucket] = {"accuracy": accuracy, "answer_true_rate": float(answers.mean()), **result}
    meta = {"task": "proofwriter", "model": args.model, "data": args.data, "split": args.split,
            "icl": args.icl, "shots": [q.id for q in shots], "layers": layers,
            "per_head": args.per_head, "query_pool": args.query_pool,
            "statement_pool": args.statement_pool,
            "probe": {"neighbors": config.neighbors, "p": config.p, "folds": config.folds},
            "answer_token_ids": true_false, "seed": args.seed, "device": str(device),
            "mean_prompt_tokens": float(np.mean([len(e.input_ids) for e in examples])),
            "memory": {"model_mb": model_bytes(model) / 2**20,
                       "extraction_peak_extra_mb": None if peak.extra_bytes is None
                       else peak.extra_bytes / 2**20}}
    return report(args.out, meta, settings, started)
