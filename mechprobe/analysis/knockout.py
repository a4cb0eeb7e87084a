"""Statement knockout (METHOD.md, section 13): does the answer need what the probe calls useful?

For each probed example the model runs again with the attention from its question tokens to a
set of statements cut (the recorder's Knockout: those logits -inf before the softmax), at every
layer and in windows of layers. The sets: (a) the gold useful statements, (b) as many gold noise
statements drawn at random, (c) the statements the usefulness probe predicts useful, out of
fold, (d) as many it predicts noise, (e) the tree's leaves only and its root only. The answer's
accuracy and the gold answer's log-probability are compared with the plain run, with bootstrap
intervals over examples.
"""

import os
import time
from dataclasses import dataclass

from matplotlib.ticker import MaxNLocator
import numpy as np
import torch
from sklearn.metrics import f1_score
from tqdm.auto import tqdm

from mechprobe.probing.bootstrap import draws as bootstrap_draws, mean_interval
from mechprobe import seeds
from mechprobe.attention.features import extract, forward_batches, normalise_by_max
from mechprobe.attention.recorder import Knockout, Recorder
from mechprobe.cli import UserError, format_table
from mechprobe.models import input_device, padding_id
from mechprobe.outputs import write_json
from mechprobe.plots import save_figure, subplots
from mechprobe.probing.knn import Samples, out_of_fold
from mechprobe.probing.config import parse_layers
from mechprobe.tasks import prompts

# name -> what is hidden, in the order of the (a)-(e)
CONDITIONS = {
    "gold_useful": "(a) gold useful statements",
    "gold_noise": "(b) as many gold noise, at random",
    "predicted_useful": "(c) predicted useful (out of fold)",
    "predicted_noise": "(d) as many predicted noise, at random",
    "leaves": "(e) the tree's leaves only",
    "root": "(e) the tree's root only",
}
QUERIES = ("question", "all")
# The pairs whose difference says whether the tree matters more than the same amount of noise.
GAPS = {"gold_useful-gold_noise": ("gold_useful", "gold_noise"),
        "predicted_useful-predicted_noise": ("predicted_useful", "predicted_noise")}


@dataclass
class Scored:
    """A probed example as the knockout needs it: the prompt, its tree and its answer."""

    example: object          # features.Example: input_ids, query positions, statement positions
    useful: np.ndarray       # (S,) bool
    depth: np.ndarray        # (S,) depth class, -1 where not useful
    target: int              # the gold answer's (first) token id
    choices: list | None = None   # token ids the answer is chosen among; None: the whole vocabulary


@dataclass
class KnockoutConfig:
    """What knockout.py varies: which queries lose the statements, at which layers, how many
    bootstrap draws."""

    queries: str = "question"          # 'question': from the first query token on; 'all': every position
    layers: str | None = None          # layers of the whole-model conditions, '0-3'; None = every layer
    window: int = 1                    # layers per window [l, l + window)
    stride: int | None = None          # between window starts; None = window (no overlap)
    bootstrap: int = 1000              # bootstrap draws of the examples


def out_of_fold_useful(features, useful, knn, groups=None):
    """Per example, the usefulness the kNN probe predicts for each statement while the example
    sits in the test fold (folds grouped by example, or by `groups`, as in probing): the same
    predictions a probing run writes to predictions.jsonl."""
    samples = Samples.from_examples(features, useful, [np.full(len(u), -1) for u in useful], groups)
    predicted, _ = out_of_fold(samples, knn)["useful"]
    return np.split(predicted.astype(bool), np.cumsum([len(u) for u in useful])[:-1])


def drawn(pool, n, rng):
    """n of the statement indices in `pool` at random (all of them when there are fewer)."""
    pool = np.flatnonzero(pool)
    return sorted(rng.choice(pool, size=min(n, len(pool)), replace=False).tolist())


def hidden_statements(scored, predicted, seed):
    """{condition: per example the statement indices hidden}; the tree conditions only where
    the trees have two depth classes or more (a root alone has no leaves)."""
    rng = seeds.rng(seed, seeds.KNOCKOUT_NOISE)
    sets = {name: [] for name in CONDITIONS}
    classes = len(np.unique(np.concatenate([s.depth[s.useful] for s in scored])))
    for item, guess in zip(scored, predicted):
        useful = np.asarray(item.useful, dtype=bool)
        sets["gold_useful"].append(np.flatnonzero(useful).tolist())
        sets["gold_noise"].append(drawn(~useful, int(useful.sum()), rng))
        sets["predicted_useful"].append(np.flatnonzero(guess).tolist())
        sets["predicted_noise"].append(drawn(~guess, int(guess.sum()), rng))
        top = item.depth[useful].max() if useful.any() else -1
        sets["leaves"].append(np.flatnonzero(useful & (item.depth == 0)).tolist())
        sets["root"].append(np.flatnonzero(useful & (item.depth == top)).tolist())
    if classes < 2:
        del sets["leaves"], sets["root"]
    return sets


def windows(n_layers, width, stride=None):
    """Layer windows [l, l + width), starting every `stride` layers (default: width)."""
    if width > n_layers:
        raise UserError(f"--window {width} is wider than the model's {n_layers} layers")
    return [list(range(start, start + width))
            for start in range(0, n_layers - width + 1, stride or width)]


def answer_scores(recorder, scored, hidden=None, layers=None, queries="question", batch_size=64,
                  max_tokens=1024, pad_id=0, desc="knockout"):
    """Per example: is the answer right, and the gold answer's log-probability, with the
    statements `hidden[i]` cut from its queries at `layers` (hidden None: the plain model).

    Returns (correct (n,) bool, logprob (n,) float64). Batched by features.forward_batches, as
    the probe's reading is: similar lengths together, right padding, a shared beginning once.
    """
    def knockout(batch, width):
        if hidden is None:
            return None
        return batch_knockout([scored[i] for i in batch], [hidden[i] for i in batch], width,
                              layers, queries)

    correct = np.zeros(len(scored), dtype=bool)
    logprob = np.zeros(len(scored))
    for batch, _, logits, _ in forward_batches(recorder, [s.example for s in scored], batch_size,
                                               max_tokens, pad_id, desc=desc, knockout=knockout):
        logits = torch.log_softmax(logits, dim=-1).cpu()
        for j, i in enumerate(batch):
            item = scored[i]
            logprob[i] = float(logits[j, item.target])
            if item.choices is None:
                correct[i] = int(logits[j].argmax()) == item.target
            else:
                correct[i] = item.choices[int(logits[j, item.choices].argmax())] == item.target
    return correct, logprob


def batch_knockout(group, hidden, width, layers, queries):
    """The Knockout of one batch: each example's hidden statements' tokens, cut from its
    queries (from its first query token on, or every position)."""
    keys = torch.zeros(len(group), width, dtype=torch.bool)
    from_question = torch.zeros(len(group), width, dtype=torch.bool)
    for b, (item, statements) in enumerate(zip(group, hidden)):
        for s in statements:
            keys[b, item.example.statements[s]] = True
        from_question[b, min(item.example.query):] = True
    return Knockout(keys, from_question if queries == "question" else None, layers)


def summary(name, layers, base, result, draws):
    """One condition at one set of layers: accuracy, log-probability, their drops with
    intervals."""
    (base_correct, base_logprob), (correct, logprob) = base, result
    accuracy_drop = base_correct.astype(float) - correct
    logprob_drop = base_logprob - logprob
    return {"condition": name, "layers": layers, "accuracy": float(correct.mean()),
            "accuracy_drop": float(accuracy_drop.mean()),
            "accuracy_drop_ci": mean_interval(accuracy_drop, draws),
            "logprob": float(logprob.mean()), "logprob_drop": float(logprob_drop.mean()),
            "logprob_drop_ci": mean_interval(logprob_drop, draws)}


def gap(first, second, draws):
    """How much more hiding `first` costs than hiding `second`, per example, with intervals."""
    (correct_a, logprob_a), (correct_b, logprob_b) = first, second
    accuracy = correct_b.astype(float) - correct_a
    logprob = logprob_b - logprob_a
    return {"accuracy_drop_gap": float(accuracy.mean()),
            "accuracy_drop_gap_ci": mean_interval(accuracy, draws),
            "logprob_drop_gap": float(logprob.mean()),
            "logprob_drop_gap_ci": mean_interval(logprob, draws)}


def layer_plan(config, n_layers):
    """(layers of the whole-model conditions, layer windows), checked against the model."""
    try:
        layers = parse_layers(config.layers, n_layers)
    except UserError as err:     # the same rules as ReadConfig.layers, under this flag's name
        raise UserError(str(err).replace("ReadConfig.layers", "--knockout-layers")) from None
    return layers, windows(n_layers, config.window, config.stride)


def knockout_experiment(recorder, scored, features, knn, config, seed, read, pad_id, groups=None):
    """Every condition at the chosen layers and in each layer window; returns results' body.
    `groups`: the cross-validation unit per example (None: each example its own)."""
    layers, spans = layer_plan(config, recorder.n_layers)
    useful = [s.useful for s in scored]
    predicted = out_of_fold_useful(features, useful, knn, groups)
    flat_true, flat_guess = np.concatenate(useful), np.concatenate(predicted)
    probe = {"f1_useful_out_of_fold": float(f1_score(flat_true, flat_guess, average="macro")),
             "neighbors": knn.neighbors, "p": knn.p, "folds": knn.folds}
    sets = hidden_statements(scored, predicted, seed)
    common = {"batch_size": read.batch_size, "max_tokens": read.max_batch_tokens,
              "pad_id": pad_id, "queries": config.queries}
    base = answer_scores(recorder, scored, desc="plain", **common)
    draws = bootstrap_draws(len(scored), config.bootstrap, seed)
    # a window that equals the chosen layers runs once
    runs = list(dict.fromkeys((name, tuple(span)) for name in sets for span in [layers] + spans))
    outcome = {}
    for name, span in tqdm(runs, desc="knockout", unit="run"):
        outcome[name, span] = answer_scores(recorder, scored, sets[name], span,
                                            desc=f"{name} {span_label(span)}", **common)
    conditions = [{**summary(name, layers, base, outcome[name, tuple(layers)], draws),
                   "statements_hidden": float(np.mean([len(h) for h in sets[name]])),
                   "examples_with_none_hidden": int(sum(not h for h in sets[name]))}
                  for name in sets]
    by_window = [summary(name, span, base, outcome[name, tuple(span)], draws)
                 for name in sets for span in spans]
    gaps = {label: gap(outcome[a, tuple(layers)], outcome[b, tuple(layers)], draws)
            for label, (a, b) in GAPS.items()}
    window_gaps = {label: [{"layers": span, **gap(outcome[a, tuple(span)], outcome[b, tuple(span)],
                                                  draws)} for span in spans]
                   for label, (a, b) in GAPS.items()}
    return {"n_examples": len(scored), "accuracy": float(base[0].mean()),
            "logprob": float(base[1].mean()), "probe": probe, "layers": layers,
            "conditions": conditions, "gaps": gaps, "windows": by_window,
            "window_gaps": window_gaps}


def span_label(layers):
    """'3', '0-3' for a run of layers, '0,2,5' otherwise."""
    if len(layers) == 1:
        return f"{layers[0]}"
    if list(layers) == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}-{layers[-1]}"
    return ",".join(str(layer) for layer in layers)


def figure(body, title):
    """Left: accuracy drop per condition at the chosen layers; right: per layer window."""
    fig, (left, right) = subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1, 1.3]})
    rows = body["conditions"]
    colours = {name: f"C{i}" for i, name in enumerate(CONDITIONS)}
    drops = np.array([r["accuracy_drop"] for r in rows])
    errors = np.abs(np.array([r["accuracy_drop_ci"] for r in rows]).T - drops)
    left.bar(range(len(rows)), drops, yerr=errors, capsize=3,
             color=[colours[r["condition"]] for r in rows])
    left.set_xticks(range(len(rows)), [CONDITIONS[r["condition"]] for r in rows], rotation=35,
                    ha="right", fontsize=8)
    left.axhline(0, color="grey", linewidth=0.8)
    left.set_ylabel("accuracy drop (95% bootstrap interval)")
    left.set_title(f"knocked out at layers {span_label(body['layers'])}")
    for name in colours:
        picked = [r for r in body["windows"] if r["condition"] == name]
        if not picked:
            continue
        starts = [r["layers"][0] for r in picked]
        ci = np.array([r["accuracy_drop_ci"] for r in picked])
        right.plot(starts, [r["accuracy_drop"] for r in picked], marker="o", markersize=4,
                   color=colours[name], label=CONDITIONS[name])
        right.fill_between(starts, ci[:, 0], ci[:, 1], color=colours[name], alpha=0.15)
    width = len(body["windows"][0]["layers"]) if body["windows"] else 1
    right.set_xlabel(f"first layer of the window (window of {width} layer{'s' * (width > 1)}, 0-based)")
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_ylabel("accuracy drop")
    right.set_title("knocked out in one layer window only")
    right.axhline(0, color="grey", linewidth=0.8)
    right.grid(alpha=0.3)
    right.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def format_interval(value, ci):
    return f"{value:+.4f} [{ci[0]:+.4f}, {ci[1]:+.4f}]"


def print_tables(body):
    print(f"plain model: accuracy {body['accuracy']:.4f}, gold answer log-probability "
          f"{body['logprob']:.4f} ({body['n_examples']} examples); usefulness probe out of fold: "
          f"macro F1 {body['probe']['f1_useful_out_of_fold']:.4f}")
    print(f"\nknocked out at layers {span_label(body['layers'])} (drop = plain - knocked out; "
          "95% bootstrap interval)")
    table = [{"condition": CONDITIONS[r["condition"]], "hidden": f"{r['statements_hidden']:.2f}",
              "accuracy": r["accuracy"],
              "accuracy_drop": format_interval(r["accuracy_drop"], r["accuracy_drop_ci"]),
              "logprob_drop": format_interval(r["logprob_drop"], r["logprob_drop_ci"])}
             for r in body["conditions"]]
    print(format_table(table, list(table[0])))
    for label, g in body["gaps"].items():
        print(f"gap {label}: accuracy drop "
              f"{format_interval(g['accuracy_drop_gap'], g['accuracy_drop_gap_ci'])}, log-prob drop "
              f"{format_interval(g['logprob_drop_gap'], g['logprob_drop_gap_ci'])}")
    spans = sorted({tuple(r["layers"]) for r in body["windows"]})
    print("\naccuracy drop per layer window (knocked out there only)")
    rows = []
    for name in CONDITIONS:
        picked = {tuple(r["layers"]): r for r in body["windows"] if r["condition"] == name}
        if picked:
            rows.append({"condition": CONDITIONS[name],
                         **{f"layers {span_label(s)}": format_interval(picked[s]["accuracy_drop"],
                                                                       picked[s]["accuracy_drop_ci"])
                            for s in spans}})
    print(format_table(rows, list(rows[0])))


def ksmallest_scored(numbers, task, indices):
    """The k-th smallest examples (single-token numbers): the answer is the next token."""
    from mechprobe.probing.ksmallest import to_examples
    from mechprobe.tasks import ksmallest

    useful, depth = ksmallest.reasoning_tree(task, indices)
    targets = numbers.later_ids[ksmallest.answers(task, indices)]
    return [Scored(example, u, d, int(t))
            for example, u, d, t in zip(to_examples(numbers, indices), useful, depth, targets)]


def run_ksmallest(config, task_config, run, out):
    """knockout.py on the k-th smallest task: the model of `run`, its task.json's k."""
    from mechprobe.probing.ksmallest import load_task_model
    from mechprobe.tasks import ksmallest

    started = time.time()
    model, tokenizer, task, numbers = load_task_model(run, task_config)
    if not isinstance(numbers, ksmallest.NumberSet):
        raise UserError("knockout.py scores the k-th smallest answer as one token: use a model "
                        "whose tokenizer writes the numbers as one token each (the tiny GPT-2)")
    if task_config.n_examples < run.folds:
        raise UserError(f"--n-examples {task_config.n_examples} is too few for {run.folds}-fold "
                        "out-of-fold predictions: use more examples or fewer --folds")
    indices = ksmallest.probe_examples(task, task_config.n_examples, run.seed)
    scored = ksmallest_scored(numbers, task, indices)
    recorder = Recorder(model)
    layer_plan(config, recorder.n_layers)       # bad layers or windows: refused before any work
    read = run.read.with_defaults(query_pool="mean", batch_size=256)
    pad_id = padding_id(tokenizer)
    all_layers = list(range(recorder.n_layers))
    features, _, _ = extract(recorder, [s.example for s in scored], all_layers, read.batch_size,
                             pad_id=pad_id, max_tokens=read.max_batch_tokens)
    body = knockout_experiment(recorder, scored, normalise_by_max(features), run.knn(default_p=2),
                               config, run.seed, read, pad_id)
    title = f"{task.name}: statement knockout ({config.queries} queries)"
    save_figure(figure(body, title), out, "knockout")
    results = {"task": task.name, "k": task.k, "model": run.model, "seed": run.seed,
               "queries": config.queries, "window": config.window,
               "stride": config.stride or config.window, "bootstrap": config.bootstrap,
               "device": str(input_device(model)), **body,
               "seconds": round(time.time() - started, 2)}
    write_json(os.path.join(out, "results.json"), results)
    print_tables(body)
    print(f"results: {os.path.join(out, 'results.json')}")
    return results


def text_scored(tokenizer, questions, shots, suffix, style):
    """Scored prompts of labelled questions (ProofWriter, ARC, jsonl) and their answer tokens:
    the answer is the question's choice whose first token has the highest logit, as probing
    scores it."""
    examples = [prompts.to_example(tokenizer, q, these, suffix, style) for q, these in zip(questions, shots)]
    words = list(dict.fromkeys(c for q in questions for c in q.choices))
    ids = prompts.prompt_answer_ids(tokenizer, questions[0], shots[0], suffix, words, style)
    token = dict(zip(words, ids))
    return [Scored(example, np.array(q.useful, dtype=bool),
                   np.array([-1 if d is None else d for d in q.depth]), int(token[q.target]),
                   [int(token[c]) for c in q.choices])
            for example, q in zip(examples, questions)]


def run_text(config, text_config, run, out, only_buckets=None):
    """knockout.py on a text task: per bucket (ProofWriter's m, ARC's depth) the same conditions
    as the k-th smallest run, folds grouped as probing groups them (ProofWriter: by theory);
    `only_buckets`: the names of the buckets to run (None: all)."""
    from mechprobe.models import load_model
    from mechprobe.probing.buckets import plural, probed_buckets, sample_buckets
    from mechprobe.probing.text import load_questions

    started = time.time()
    task, questions = load_questions(text_config)
    if not all(q.target is not None and q.choices for q in questions):
        raise UserError(f"{text_config.data}: knockout scores answers, and some questions have "
                        "none: give every line a target and its choices (docs/DATA.md)")
    buckets = sample_buckets(questions, text_config.n_examples, run.seed)
    if only_buckets:
        unknown = sorted(set(only_buckets) - set(buckets))
        if unknown:
            raise UserError(f"--only-buckets {','.join(unknown)}: no such bucket in the "
                            f"{text_config.split} split; it has {', '.join(buckets)}")
        buckets = {name: members for name, members in buckets.items() if name in only_buckets}
    train = task.shots() if text_config.icl else []
    model, tokenizer = load_model(run.model, run.device, run.dtype, run.placement())
    recorder = Recorder(model)
    layer_plan(config, recorder.n_layers)
    flat = [q for members in buckets.values() for q in members]
    shots = prompts.shots_for(flat, train, text_config.icl, text_config.shots, run.seed)
    scored = text_scored(tokenizer, flat, shots, task.suffix, text_config.prompt)
    prompts.fitting_prompts(model, flat, [[s.example] for s in scored], skip_long=False)
    read = run.read.with_defaults(query_pool="max" if text_config.icl else "mean", batch_size=16)
    pad_id = padding_id(tokenizer)
    features, _, _ = extract(recorder, [s.example for s in scored],
                             list(range(recorder.n_layers)), read.batch_size,
                             query_pool=read.query_pool, statement_pool=read.statement_pool,
                             pad_id=pad_id, max_tokens=read.max_batch_tokens)
    knn = run.knn(default_p=1)
    settings = {}
    for bucket, members, span, groups in probed_buckets(buckets, knn.folds, task.grouped_by):
        print(f"\n== bucket {bucket}")
        body = knockout_experiment(recorder, scored[span], features[span], knn, config, run.seed,
                                   read, pad_id, groups)
        print_tables(body)
        name = "knockout_" + "".join(c if c.isalnum() else "_" for c in bucket)
        save_figure(figure(body, f"{text_config.task} {bucket}: statement knockout "
                                 f"({config.queries} queries)"), out, name)
        settings[bucket] = {"figure": name, **body}
    if not settings:
        raise UserError(f"every bucket has fewer {plural(task.grouped_by)} than --folds {knn.folds}: "
                        "use more questions (--n-examples) or fewer --folds")
    results = {"task": text_config.task, "model": run.model, "data": text_config.data,
               "split": text_config.split, "icl": text_config.icl,
               "shots": text_config.shots if text_config.icl else None,
               "prompt": text_config.prompt, "seed": run.seed, "queries": config.queries,
               "window": config.window, "stride": config.stride or config.window,
               "bootstrap": config.bootstrap, "query_pool": read.query_pool,
               "device": str(input_device(model)), "settings": settings,
               "seconds": round(time.time() - started, 2)}
    write_json(os.path.join(out, "results.json"), results)
    print(f"results: {os.path.join(out, 'results.json')}")
    return results
