"""Probing on the k-th smallest task (METHOD.md, Task 1): one model, one k or every k."""

import json
import os
import time
from dataclasses import dataclass

import numpy as np

from mechprobe.tasks import ksmallest
from mechprobe.cli import UserError, count, require, whole
from mechprobe.attention.features import Example, extract, normalise_by_max, segment_tokens
from mechprobe.models import check_fits, input_device, read_task_file
from mechprobe.outputs import write_lines
from mechprobe.parallel import is_main_process, world_size
from mechprobe.probing.pipeline import (ProbeResult, accuracy, chance_check, extract_pair,
                                        feature_cache, load_model, parse_layers,
                                        probe_setting, report)
from mechprobe.attention.recorder import Recorder
from mechprobe.tasks.shortcuts import ksmallest_answers

def add_task_args(parser, n_examples=1024):
    """Flags naming the k-th smallest examples to analyse (shared by probe, attn_visual, causal)."""
    parser.add_argument("--k", type=count(0, 1023), help="k-th smallest, 0-based (default: the model's task.json)")
    parser.add_argument("--list-len", type=count(2, 1024), help="numbers per example (default: the model's task)")
    parser.add_argument("--num-set", type=count(2, 10**6), help="number-set size (default: the model's task)")
    parser.add_argument("--n-examples", type=count(1, 10**6), default=n_examples,
                        help="k-th smallest: examples probed (drawn from a stream fine-tuning never "
                        "uses); ProofWriter: at most this many per bucket")
    parser.set_defaults(all_k=False)


@dataclass
class KSmallestConfig:
    """Which k-th smallest examples a run reads (probe.py --task ksmallest, attn_visual, causal);
    unset fields come from the model's task.json, then the paper's defaults."""

    k: int | None = None               # 0-based: 1 = the second smallest
    list_len: int | None = None        # numbers per example (paper: 16)
    num_set: int | None = None         # size of the number set (paper: 512)
    n_examples: int = 1024             # examples probed, from a stream fine-tuning never uses
    all_k: bool = False                # probe every k in 0..L/2-1 on the same attention

    def __post_init__(self):
        for name, low, high in (("k", 0, 1023), ("list_len", 2, 1024), ("num_set", 2, 10**6)):
            value = getattr(self, name)
            require(value is None or whole(value, low, high), f"KSmallestConfig.{name} must be a "
                    f"whole number from {low} to {high:,} or None, got {value!r}")
        require(whole(self.n_examples, 1, 10**6), "KSmallestConfig.n_examples must be a whole "
                f"number from 1 to 1,000,000, got {self.n_examples!r}")

    @classmethod
    def from_args(cls, args):
        return cls(k=args.k, list_len=args.list_len, num_set=args.num_set,
                   n_examples=args.n_examples, all_k=args.all_k)


def saved_task(model_name):
    """The model's task.json (finetune_gpt2.py writes it beside the weights), or {}."""
    return (read_task_file(model_name) if model_name and os.path.isdir(model_name) else None) or {}


def resolve_task(config, saved=None):
    """k, list length and number-set size: the config first, then the task saved with the model."""
    saved = saved or {}
    k = config.k if config.k is not None else saved.get("k")
    if k is None and not config.all_k:
        raise UserError("no k: this model has no task.json from finetune_gpt2.py; pass --k "
                        "(0-based, e.g. --k 1 for the second smallest) or --all-k")
    list_len = config.list_len or saved.get("list_len", 16)
    num_set = config.num_set or saved.get("num_set", 512)
    return ksmallest.parse_task(f"min{k or 0:02d}", list_len, num_set)


def load_task_model(run, config, multi_token=False):
    """The model, its tokenizer, the task (config, then the model's task.json) and number set."""
    model, tokenizer = load_model(run.model, run.device, run.dtype, run.placement())
    return (model, tokenizer, *task_of_model(model, tokenizer, config, run.model, multi_token))


def task_of_model(model, tokenizer, config, name, multi_token=False):
    """(task, number set) of a loaded model: the config first, then the task.json in its folder
    `name`.

    With multi_token, a tokenizer with fewer than num_set single-token numbers (LLaMA, SmolLM2:
    digits) gets the numbers 0..S-1 written as several tokens each (ksmallest.MultiTokenNumbers).
    """
    saved = saved_task(name)
    task = resolve_task(config, saved)
    if saved.get("num_set") is not None and task.num_set != saved["num_set"]:
        raise UserError(f"--num-set {task.num_set}: {name} was fine-tuned on {saved['num_set']} "
                        f"numbers (its task.json), and knows only those: drop --num-set or pass "
                        f"{saved['num_set']}")
    try:
        numbers = ksmallest.number_set(tokenizer, task.num_set)
    except ksmallest.TooFewNumbers as err:
        if not multi_token and err.available <= task.list_len:
            raise UserError(f"this tokenizer has only {err.available} single-token numbers, too "
                            f"few for lists of {task.list_len}, and this command reads one token "
                            "per number: probe.py --task ksmallest handles numbers of several "
                            "tokens, or use a model with GPT-2's tokenizer") from None
        if not multi_token:
            raise
        numbers = ksmallest.multi_token_numbers(tokenizer, task.num_set)
        print(f"this tokenizer has fewer than {task.num_set} single-token numbers: the numbers "
              f"0..{task.num_set - 1} are written as several tokens each, each number a statement "
              "of its tokens (pooled by --statement-pool)")
    if "numbers" in saved and list(saved["numbers"]) != list(numbers.numbers):
        raise UserError(f"{name}/task.json lists other numbers than this tokenizer's number "
                        "set: the file belongs to another model; fine-tune again, or delete it "
                        "and pass --k/--list-len/--num-set")
    if isinstance(numbers, ksmallest.NumberSet):
        check_fits(model, len(numbers.prefix) + task.list_len)
    return task, numbers


def to_examples(numbers, indices):
    """Each number is one token, so statement j is token j after the tokenizer's prefix (BOS);
    the query is the last token."""
    ids = numbers.encode(indices)
    first, last = len(numbers.prefix), ids.shape[1] - 1
    return [Example(row.tolist(), [last], [[first + j] for j in range(indices.shape[1])])
            for row in ids]


def spaced(values):
    """Segments of the space-joined numbers: number j is segment 2j, spaces between."""
    segments = []
    for value in values:
        segments += [" ", str(value)] if segments else [str(value)]
    return segments


def multi_token_examples(tokenizer, numbers, indices):
    """Each number a statement of the tokens it overlaps, as in the text tasks; the query is the
    last token of the last number. What the tokenizer adds before the text (BOS) stays; what it
    adds after it (an EOS) is cut, as the answer comes next."""
    examples = []
    for row in indices:
        ids, positions = segment_tokens(tokenizer, spaced(numbers.numbers[row]))
        last = positions[-1][-1]
        examples.append(Example(ids[:last + 1], [last], positions[::2]))
    return examples


def answer_tokens(tokenizer, numbers, row, answer, prompt):
    """The tokens of ' <answer>' as the tokenizer writes them right after the prompt `prompt`."""
    answered = multi_token_examples(tokenizer, numbers, [np.append(row, answer)])[0].input_ids
    if answered[:len(prompt)] == prompt and len(answered) > len(prompt):
        return answered[len(prompt):]
    return tokenizer(f" {numbers.numbers[answer]}", add_special_tokens=False)["input_ids"]


def continues_number(tokenizer, token_id):
    return tokenizer.decode([int(token_id)]).strip()[:1].isdigit()


def multi_token_correct(model, tokenizer, numbers, examples, indices, answers, first_predicted,
                        read, pad_id):
    """Per example: greedy decoding after the prompt writes the answer's tokens, then a token that
    does not continue the number (1 then 2 is wrong for the answer 1). Step t feeds the answer's
    first t tokens (teacher forcing), the same as greedy decoding while every step matched."""
    targets = [answer_tokens(tokenizer, numbers, row, answer, e.input_ids)
               for row, answer, e in zip(indices, answers, examples)]
    correct = np.array([t[0] == p for t, p in zip(targets, first_predicted)])
    recorder = Recorder(model)
    for step in range(1, max(len(t) for t in targets) + 1):
        alive = [i for i in np.flatnonzero(correct) if len(targets[i]) >= step]
        if not alive:
            break
        fed = [Example(examples[i].input_ids + targets[i][:step], [0], []) for i in alive]
        _, predicted, _ = extract(recorder, fed, [], read.batch_size, pad_id=pad_id,
                                  max_tokens=read.max_batch_tokens, desc=f"answer token {step + 1}")
        for i, p in zip(alive, predicted):
            if step == len(targets[i]):
                correct[i] = not continues_number(tokenizer, p)
            else:
                correct[i] = p == targets[i][step]
    return correct


def dump_examples(path, task, values, indices):
    """One JSON line per example (docs/DATA.md, --dump-examples), written atomically."""
    useful, depth = ksmallest.reasoning_tree(task, indices)
    answers = ksmallest.answers(task, indices)
    write_lines(path, (json.dumps({
        "id": str(i), "statements": [str(values[j]) for j in row], "question": task.name,
        "answer": str(values[answers[i]]), "useful": useful[i].astype(int).tolist(),
        "depth": [int(d) if u else None for u, d in zip(useful[i], depth[i])],
        "qdep": 1 if task.k > 0 else 0, "bucket": None}) + "\n" for i, row in enumerate(indices)))


def browser_details(values, indices, task, correct):
    """Per example what the report's browser shows: the numbers, the answer, whether the model
    gave it, and each number's rank (0 = smallest; ranks below k are the leaves, k the root)."""
    rank = ksmallest.ranks(indices)
    answers = ksmallest.answers(task, indices)
    return [{"statements": [str(values[j]) for j in row], "question": task.name,
             "answer": str(values[answer]), "correct": bool(right), "rank": r.tolist()}
            for row, answer, right, r in zip(indices, answers, correct, rank)]


def probe_numbers(model, tokenizer, task, numbers, run, config, cache=None):
    """Probe `model` and its random twin on k-th smallest examples: per k (one, or every k with
    config.all_k, on the same attention) the F1s, S_P1/S_P2, layer-wise rows, accuracy and the
    near-chance check against input-only answerers."""
    if config.n_examples < run.folds:
        raise UserError(f"--n-examples {config.n_examples} is too few for {run.folds}-fold "
                        "cross-validation: probe more examples or use fewer --folds")
    multi_token = isinstance(numbers, ksmallest.MultiTokenNumbers)
    indices = ksmallest.probe_examples(task, config.n_examples, run.seed)
    layers = parse_layers(run.read.layers, model.config.get_text_config().num_hidden_layers)
    if multi_token:
        examples = multi_token_examples(tokenizer, numbers, indices)
        # The longest prompt plus the answer's tokens, fed while scoring it.
        check_fits(model, max(len(e.input_ids) for e in examples) + len(str(numbers.numbers[-1])) + 1)
    else:
        examples = to_examples(numbers, indices)
    # One query token: its pooling changes nothing.
    read = run.read.with_defaults(query_pool="mean", batch_size=256)
    pad_id = tokenizer.pad_token_id or 0
    extracted = extract_pair(model, examples, layers, read, run.seed, pad_id, cache=cache)
    if not is_main_process():      # the other processes only read attention
        return None
    predicted = extracted.predicted
    # After picking the layers: the same numbers whether or not every layer was read and kept.
    features = normalise_by_max(extracted.features)
    random_features = normalise_by_max(extracted.random_features)

    knn = run.knn(default_p=2)
    ks = range(task.list_len // 2) if config.all_k else [task.k]
    settings = {}
    for k in ks:
        task_k = ksmallest.Task(k, task.list_len, task.num_set)
        useful, depth = ksmallest.reasoning_tree(task_k, indices)
        answers = ksmallest.answers(task_k, indices)
        if multi_token:
            correct = multi_token_correct(model, tokenizer, numbers, examples, indices, answers,
                                          predicted, read, pad_id)
            task_accuracy = float(correct.mean())
        else:
            correct = np.asarray(predicted) == np.asarray(numbers.later_ids[answers])
            task_accuracy = accuracy(predicted, numbers.later_ids[answers])
        result = probe_setting(features, random_features, list(useful), list(depth), knn, layers,
                               details=browser_details(numbers.numbers, indices, task_k, correct))
        settings[task_k.name] = {"k": k, "accuracy": task_accuracy,
                                 **chance_check(task_accuracy, answers, ksmallest_answers(indices)),
                                 **result}
    meta = {"task": "ksmallest", "model": run.model, "list_len": task.list_len,
            "numbers": "multi-token" if multi_token else "single-token",
            "num_set": task.num_set, "n_examples": config.n_examples, "layers": layers,
            "per_head": read.per_head, "query_pool": read.query_pool,
            "statement_pool": read.statement_pool, "normalise": "max per example",
            "probe": {"neighbors": knn.neighbors, "p": knn.p, "folds": knn.folds},
            "seed": run.seed, "device": str(input_device(model)),
            "features_cached": extracted.cached, "world_size": world_size()}
    return ProbeResult(meta, settings)


def run(config, run=None, out=None, dump_path=None, seed=0, cache_mode="off"):
    """probe.py --task ksmallest: probe the model (and write the dump with --dump-examples);
    without a model, only the dump (drawn with `seed`). Returns the results dict."""
    started = time.time()
    if run is None:
        if not dump_path:
            raise UserError("pass --model DIR (a fine-tuned model) or --dump-examples FILE")
        task = resolve_task(config)
        indices = ksmallest.probe_examples(task, config.n_examples, seed)
        # The tiny model's number set is 0..S-1; no tokenizer is needed for it.
        dump_examples(dump_path, task, np.arange(task.num_set), indices)
        print(f"wrote {config.n_examples} examples to {dump_path}")
        return None
    model, tokenizer, task, numbers = load_task_model(run, config, multi_token=True)
    if dump_path:
        dump_examples(dump_path, task, numbers.numbers,
                      ksmallest.probe_examples(task, config.n_examples, run.seed))
    result = probe_numbers(model, tokenizer, task, numbers, run, config,
                           feature_cache(out, cache_mode))
    if result is None:          # another process than the main one: nothing to write
        return None
    return report(out, result.meta, result.settings, started, result.predictions)
