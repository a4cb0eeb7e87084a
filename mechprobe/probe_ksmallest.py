"""Probing on the k-th smallest task (METHOD.md, Task 1): one model, one k or every k."""

import json
import os
import time

import numpy as np

from . import ksmallest
from .cli import UserError
from .features import Example, normalise_by_max
from .models import check_fits, read_task_file
from .probe import ProbeConfig
from .probing import (accuracy, chance_check, features_of, load_model, parse_layers, probe_setting,
                      random_twin, report)
from .shortcuts import ksmallest_answers

def add_task_args(parser, n_examples=1024):
    """Flags naming the k-th smallest examples to analyse (shared by probe, attn_visual, causal)."""
    parser.add_argument("--k", type=int, help="k-th smallest, 0-based (default: the model's task.json)")
    parser.add_argument("--list-len", type=int, help="numbers per example (default: the model's task)")
    parser.add_argument("--num-set", type=int, help="number-set size (default: the model's task)")
    parser.add_argument("--n-examples", type=int, default=n_examples,
                        help="k-th smallest: examples probed (drawn from a stream fine-tuning never "
                        "uses); ProofWriter: at most this many per bucket")
    parser.set_defaults(all_k=False)


def resolve_task(args):
    """k, list length and number-set size: flags first, then the task saved with the model."""
    saved = read_task_file(args.model) if args.model and os.path.isdir(args.model) else None
    saved = saved or {}
    k = args.k if args.k is not None else saved.get("k")
    if k is None and not args.all_k:
        raise UserError("no k: this model has no task.json from finetune_gpt2.py; pass --k "
                        "(0-based, e.g. --k 1 for the second smallest) or --all-k")
    list_len = args.list_len or saved.get("list_len", 16)
    num_set = args.num_set or saved.get("num_set", 512)
    return ksmallest.parse_task(f"min{k or 0:02d}", list_len, num_set)


def load(args):
    """The model, its tokenizer, the task (flags, then the model's task.json) and number set."""
    model, tokenizer, _ = load_model(args)
    task = resolve_task(args)
    check_fits(model, task.list_len)
    return model, tokenizer, task, ksmallest.number_set(tokenizer, task.num_set)


def to_examples(numbers, indices):
    """Each number is one token, so statement j is token j; the query is the last token."""
    ids = numbers.encode(indices)
    last = indices.shape[1] - 1
    return [Example(row.tolist(), [last], [[j] for j in range(indices.shape[1])]) for row in ids]


def dump_examples(path, task, values, indices):
    """One JSON line per example (DESIGN.md, --dump-examples), written atomically."""
    useful, depth = ksmallest.reasoning_tree(task, indices)
    answers = ksmallest.answers(task, indices)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        for i, row in enumerate(indices):
            f.write(json.dumps({
                "id": str(i), "statements": [str(values[j]) for j in row], "question": task.name,
                "answer": str(values[answers[i]]), "useful": useful[i].astype(int).tolist(),
                "depth": [int(d) if u else None for u, d in zip(useful[i], depth[i])],
                "qdep": 1 if task.k > 0 else 0, "bucket": None}) + "\n")
    os.replace(tmp, path)


def run(args):
    started = time.time()
    if args.model is None:
        if not args.dump_examples:
            raise UserError("pass --model DIR (a fine-tuned model) or --dump-examples FILE")
        task = resolve_task(args)
        indices = ksmallest.probe_examples(task, args.n_examples, args.seed)
        # The tiny model's number set is 0..S-1; no tokenizer is needed for it.
        dump_examples(args.dump_examples, task, np.arange(task.num_set), indices)
        print(f"wrote {args.n_examples} examples to {args.dump_examples}")
        return None
    if args.n_examples < args.folds:
        raise UserError(f"--n-examples {args.n_examples} is too few for {args.folds}-fold "
                        "cross-validation: probe more examples or use fewer --folds")

    model, tokenizer, task, numbers = load(args)
    indices = ksmallest.probe_examples(task, args.n_examples, args.seed)
    if args.dump_examples:
        dump_examples(args.dump_examples, task, numbers.numbers, indices)
    layers = parse_layers(args.layers, model.config.get_text_config().num_hidden_layers)
    examples = to_examples(numbers, indices)
    args.batch_size = args.batch_size or 256
    args.query_pool = args.query_pool or "mean"   # one query token: pooling changes nothing
    pad_id = tokenizer.pad_token_id or 0
    features, predicted, _ = features_of(model, examples, layers, args, pad_id, desc="model")
    random_features, _, _ = features_of(random_twin(model, args.seed), examples, layers, args,
                                        pad_id, desc="random model")
    features, random_features = normalise_by_max(features), normalise_by_max(random_features)

    config = ProbeConfig(neighbors=args.neighbors, p=args.p or 2, folds=args.folds, seed=args.seed)
    ks = range(task.list_len // 2) if args.all_k else [task.k]
    settings = {}
    for k in ks:
        task_k = ksmallest.Task(k, task.list_len, task.num_set)
        useful, depth = ksmallest.reasoning_tree(task_k, indices)
        result = probe_setting(features, random_features, list(useful), list(depth), config, layers)
        answers = ksmallest.answers(task_k, indices)
        correct = accuracy(predicted, numbers.later_ids[answers])
        settings[task_k.name] = {"k": k, "accuracy": correct,
                                 **chance_check(correct, answers, ksmallest_answers(indices)),
                                 **result}
    meta = {"task": "ksmallest", "model": args.model, "list_len": task.list_len,
            "num_set": task.num_set, "n_examples": args.n_examples, "layers": layers,
            "per_head": args.per_head, "query_pool": args.query_pool,
            "statement_pool": args.statement_pool, "normalise": "max per example",
            "probe": {"neighbors": config.neighbors, "p": config.p, "folds": config.folds},
            "seed": args.seed, "device": str(next(model.parameters()).device)}
    return report(args.out, meta, settings, started)
