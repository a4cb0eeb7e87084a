"""Fine-tuning on ProofWriter: train a model to answer True/False at the last position of the
probe's own prompt (context, question, ': True or False?'), and report held-out accuracy by
question depth, answer, negation and bucket.

The embedded tiny model is a small Llama-architecture model trained from scratch with a
word-level tokenizer over the data's words (the paper probes LLaMA on ProofWriter; and a GPT-2
of the same size did not learn the task in the same time, see the README). Its vocabulary also
holds the words corrupt.py's counterfactuals add, so the robustness experiment never feeds it
unknown tokens.
"""

import os
from dataclasses import asdict

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from transformers import set_seed

from mechprobe import seeds
from mechprobe.tasks import proofwriter
from mechprobe.cli import UserError, format_table
from mechprobe.tasks.corruptions import COUNTERFACTUAL_WORDS
from mechprobe.training.ksmallest import make_settings, with_defaults, run_summary, save_curves, save_model, train
from mechprobe.tiny_models import TINY_TEXT as TINY
from mechprobe.models import check_fits, load_pretrained, padding_id, resolve_device, resolve_dtype
from mechprobe.tiny_models import build_word_llama
from mechprobe.outputs import discard, write_json
from mechprobe.baselines import chance_check, chance_warning
from mechprobe.tasks.prompts import answer_ids, prompt
from mechprobe.tasks.shortcuts import binding_value, negated, proofwriter_answers
from mechprobe.training.loop import CHECKPOINT_FILES, predict, select_trainable

DEFAULTS = {
    "tiny": {"lr": 1e-3, "batch_size": 64, "epochs": 2, "warmup": 200, "schedule": "linear",
             "lm_weight": 1.0, "curriculum": 0.5,
             "n_eval": 2000},
    "pretrained": {"lr": 2e-5, "batch_size": 32, "epochs": 2, "warmup": 200, "schedule": "constant",
                   "lm_weight": 0.0, "curriculum": 0.0,
                   "n_eval": 2000},
}
SHORT = 6            # statements in a "short" theory, for the curriculum
ANSWERS = ("True", "False")


def training_questions(data, split, max_qdep):
    """Every question of the split with QDep <= max_qdep, proved or not, in file order."""
    # "upto" keeps the bucket rows of the accuracy table covering every depth-1 question.
    questions = [q for q in proofwriter.load(data, split, everything=True, buckets="upto")
                 if q.qdep <= max_qdep]
    if not questions:
        raise UserError(f"no questions of depth <= {max_qdep} in the {split} split of {data}: "
                        "generate data with `python make_data.py proofwriter --out DIR`")
    return questions


def build_tiny_model(questions, layers, heads, dim, seed):
    """The tiny Llama over the words of the prompts, the answers and corrupt.py's wording."""
    texts = [prompt(q, proofwriter.SUFFIX) for q in questions] + [" ".join(COUNTERFACTUAL_WORDS)]
    return build_word_llama(texts, hidden=dim, layers=layers, heads=heads, kv_heads=heads,
                            intermediate=4 * dim, max_positions=TINY.n_positions, seed=seed)


def encode(tokenizer, questions, word_ids, pad_id):
    """(inputs right-padded with pad_id, answer token ids, lengths) of the prompts."""
    rows = [torch.tensor(tokenizer(prompt(q, proofwriter.SUFFIX))["input_ids"]) for q in questions]
    targets = torch.tensor([word_ids[0] if q.answer else word_ids[1] for q in questions])
    lengths = torch.tensor([len(r) for r in rows])
    return pad_sequence(rows, batch_first=True, padding_value=pad_id), targets, lengths


def curriculum_phases(questions, steps, fraction, seed):
    """Short theories first: for the first `fraction` of the steps only theories of at most SHORT
    statements, and of those, for the first quarter, depth-0 questions without negation, half
    True and half False. Without it the tiny model answers from the negation word and stays near
    chance (README: what did not work)."""
    if fraction <= 0:
        return []
    short = [i for i, q in enumerate(questions) if len(q.statements) <= SHORT]
    lookup = {answer: [i for i in short if questions[i].qdep == 0 and not negated(questions[i])
                       and questions[i].answer == answer] for answer in (True, False)}
    size = min(len(v) for v in lookup.values())
    if size == 0 or not short:
        raise UserError(f"--curriculum needs training questions from theories of at most {SHORT} "
                        "statements, with True and False depth-0 answers: pass --curriculum 0")
    rng = seeds.rng(seed, seeds.CURRICULUM)
    balanced = np.sort(np.concatenate([rng.choice(v, size, replace=False) for v in lookup.values()]))
    end = round(steps * fraction)
    return [(max(1, end // 4), balanced), (end, np.array(short))]


def accuracy_by_group(questions, correct):
    """One row per (grouping, value): held-out accuracy by depth, answer, negation, bucket, and
    for depth-0 questions whose word occurs in a fact by binding_value; then a row `binding`
    with the mean of its two accuracies: 0.5 for a model that reads only word occurrence or the
    negation word, near 0.5 for a constant answer, and 1.0 for a model that binds."""
    groupings = {"depth": lambda q: q.qdep, "answer": lambda q: q.target,
                 "negated": lambda q: negated(q), "bucket": lambda q: q.bucket,
                 "word_in_facts": binding_value}
    rows = []
    for name, key in groupings.items():
        values = {}
        for q, c in zip(questions, correct):
            if key(q) is not None:
                values.setdefault(key(q), []).append(c)
        order = sorted(values, key=lambda v: (int(v.split("=")[1]) if name == "bucket" else v))
        rows += [{"group": name, "value": str(v), "n": len(values[v]),
                  "accuracy": float(np.mean(values[v]))} for v in order]
    split = [r for r in rows if r["group"] == "word_in_facts"]
    if len(split) == 2:
        rows.append({"group": "binding", "value": "balanced", "n": sum(r["n"] for r in split),
                     "accuracy": float(np.mean([r["accuracy"] for r in split]))})
    return rows


def prepare(config):
    """Everything that can fail on bad input, before any output is written."""
    if config.data is None:
        raise UserError(f"--task proofwriter needs --data DIR: {proofwriter.HOW_TO_GET}")
    device = resolve_device(config.device)
    amp_dtype = resolve_dtype(config.dtype, device)
    set_seed(config.seed)
    splits = {name: training_questions(config.data, split, config.max_qdep)
              for name, split in (("train", "train"), ("val", "dev"), ("test", "test"))}
    if config.n_train:
        rng = seeds.rng(config.seed, seeds.TRAIN_SUBSET)
        keep = np.sort(rng.permutation(len(splits["train"]))[:config.n_train])
        splits["train"] = [splits["train"][i] for i in keep]
    if len(splits["val"]) > config.n_eval:    # validation runs often: a fixed sample of the dev split
        rng = seeds.rng(config.seed, seeds.VAL_SAMPLE)
        keep = np.sort(rng.choice(len(splits["val"]), config.n_eval, replace=False))
        splits["val"] = [splits["val"][i] for i in keep]
    if config.model == "tiny":
        model, tokenizer = build_tiny_model(splits["train"], config.tiny_layers or TINY.n_layer,
                                            config.tiny_heads or TINY.n_head,
                                            config.tiny_dim or TINY.n_embd, config.seed)
    else:
        model, tokenizer = load_pretrained(config.model)
    word_ids = answer_ids(tokenizer, prompt(splits["train"][0], proofwriter.SUFFIX), ANSWERS)
    data = {name: encode(tokenizer, questions, word_ids, padding_id(tokenizer))
            for name, questions in splits.items()}
    check_fits(model, max(int(d[2].max()) for d in data.values()),
               "use a model with more positions (or data with smaller theories)")
    settings = make_settings(config, len(splits["train"]), amp_dtype)
    return device, model, tokenizer, splits, data, word_ids, settings


def run(config):
    config = with_defaults(config, DEFAULTS)
    device, model, tokenizer, splits, data, word_ids, settings = prepare(config)
    trained = select_trainable(model, config.tune)
    model.to(device)
    fingerprint = {"task": "proofwriter", "data": os.path.abspath(config.data), "model": config.model,
                   "tune": config.tune, "max_qdep": config.max_qdep, "n_train": len(splits["train"]),
                   "n_eval": len(splits["val"]), "tiny": [config.tiny_layers, config.tiny_heads, config.tiny_dim],
                   "curriculum": config.curriculum, "scored_among": list(ANSWERS),
                   **{k: v for k, v in asdict(settings).items() if k != "amp_dtype"},
                   "amp_dtype": str(settings.amp_dtype)}
    phases = curriculum_phases(splits["train"], settings.steps, config.curriculum, config.seed)
    # Right = " True" scores above " False" or the reverse, as the probe counts it, whatever
    # else the vocabulary's top token is.
    outcome = train(model, data, settings, config, fingerprint, phases, candidates=word_ids)
    correct, losses = predict(model, data["test"], settings.batch_size, settings.amp_dtype,
                              candidates=word_ids)
    test = splits["test"]
    accuracy = float(correct.mean())
    chance = chance_check(accuracy, [q.target for q in test], proofwriter_answers(test))
    groups = accuracy_by_group(test, correct)

    save_model(model, tokenizer, config.out, {"task": "proofwriter", "max_qdep": config.max_qdep,
                                            "answer_words": list(ANSWERS), "answer_token_ids": word_ids})
    save_curves(outcome, config.out, "proofwriter")
    results = {"task": "proofwriter", "data": config.data, "max_qdep": config.max_qdep,
               "model": config.model, "tune": config.tune, "trained_parameters": len(trained),
               "parameters": sum(p.numel() for p in model.parameters()), "seed": config.seed,
               "device": str(device), "amp_dtype": str(settings.amp_dtype),
               "n_train": len(splits["train"]), "n_val": len(splits["val"]), "n_test": len(test),
               "test_accuracy": accuracy, "scored_among": list(ANSWERS),
               "test_loss": float(losses.mean()),
               "curriculum": config.curriculum, **chance,
               "test_by_group": groups,
               **run_summary(settings, outcome)}
    write_json(os.path.join(config.out, "results.json"), results)
    discard(os.path.join(config.out, "checkpoint"), CHECKPOINT_FILES)

    print()
    print(format_table(groups, ["group", "value", "n", "accuracy"]))
    print()
    print(format_table([{"task": "proofwriter", "model": config.model, "steps": outcome.steps,
                         "best_step": outcome.best_step, "best_val_acc": outcome.best_val_accuracy,
                         "test_acc": accuracy, "majority": chance["majority_rate"],
                         "train_s": round(outcome.train_seconds, 1)}],
                       ["task", "model", "steps", "best_step", "best_val_acc", "test_acc", "majority",
                        "train_s"]))
    if chance["near_chance"]:
        print(chance_warning({"the test split": chance}, "it has not learned the task"))
    print(f"model: {os.path.join(config.out, 'model')}   results: {os.path.join(config.out, 'results.json')}")
    return results
