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
from mechprobe.models import input_device, load_model
from mechprobe.outputs import write_json
from mechprobe.plots import save_figure, subplots
from mechprobe.probing.buckets import plural
from mechprobe.probing.config import parse_layers
from mechprobe.probing.crossval import Samples, out_of_fold
from mechprobe.probing.extraction import Extracted

# name -> what is hidden, (a)-(e) as the module's docstring lists them
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


def condition_label(condition):
    """A condition's name in tables and figures; class_<c>: one depth class of a deeper tree."""
    if condition in CONDITIONS:
        return CONDITIONS[condition]
    return f"(e) depth class {condition.split('_')[1]} only"


def hidden_statements(scored, predicted, seed):
    """{condition: per example the statement indices hidden}; the tree conditions only where
    the trees have two depth classes or more (a root alone has no leaves), and where they have
    three or more also each class between the leaves and the root (class_1, ...): which layers
    read which step of the tree."""
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
    top = max(int(s.depth[s.useful].max()) for s in scored if np.any(s.useful)) if classes else 0
    for depth in range(1, top) if classes >= 3 else []:
        sets[f"class_{depth}"] = [np.flatnonzero(np.asarray(s.useful, dtype=bool)
                                                 & (s.depth == depth)).tolist() for s in scored]
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
             **knn.record()}
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
    fig, (left, right) = subplots(1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [1, 1.3]})
    rows = body["conditions"]
    colours = {r["condition"]: f"C{i}" for i, r in enumerate(body["conditions"])}
    drops = np.array([r["accuracy_drop"] for r in rows])
    errors = np.abs(np.array([r["accuracy_drop_ci"] for r in rows]).T - drops)
    left.bar(range(len(rows)), drops, yerr=errors, capsize=3,
             color=[colours[r["condition"]] for r in rows])
    left.set_xticks(range(len(rows)), [condition_label(r["condition"]) for r in rows], rotation=35,
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
                   color=colours[name], label=condition_label(name))
        right.fill_between(starts, ci[:, 0], ci[:, 1], color=colours[name], alpha=0.15)
    width = len(body["windows"][0]["layers"]) if body["windows"] else 1
    right.set_xlabel(f"first layer of the window (window of {width} layer{'s' * (width > 1)}, 0-based)")
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_ylabel("accuracy drop")
    right.set_title("knocked out in one layer window only")
    right.axhline(0, color="grey", linewidth=0.8)
    right.grid(alpha=0.3)
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))   # off the lines
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
    table = [{"condition": condition_label(r["condition"]), "hidden": f"{r['statements_hidden']:.2f}",
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
    for name in [r["condition"] for r in body["conditions"]]:
        picked = {tuple(r["layers"]): r for r in body["windows"] if r["condition"] == name}
        if picked:
            rows.append({"condition": condition_label(name),
                         **{f"layers {span_label(s)}": format_interval(picked[s]["accuracy_drop"],
                                                                       picked[s]["accuracy_drop_ci"])
                            for s in spans}})
    print(format_table(rows, list(rows[0])))


def run(config, part, run, out):
    """knockout.py on any task: the part's reading of the model of `run` (a RunConfig), the
    same prompts, shots and flags as probing; per setting (a k, a bucket) every condition,
    folds grouped as probing groups them (ProofWriter: by theory). Writes the figures and
    results.json (a single setting's body also at its top level) and prints the tables."""
    started = time.time()
    part.load()
    model, tokenizer = load_model(run.model, run.device, run.dtype, run.placement())
    with Recorder(model) as recorder:     # the model gets its attention implementation back
        layer_plan(config, recorder.n_layers)      # bad layers or windows: refused before any work
        reading = part.reading(model, tokenizer, run)
        if reading.targets is None:
            raise UserError("knockout scores the answer as one next token: "
                            + ("use a model whose tokenizer writes the numbers as one token each "
                               "(the tiny GPT-2)" if part.setting_kind is None else
                               "give every question an answer and its choices (docs/DATA.md)"))
        read, all_layers = reading.read, list(range(recorder.n_layers))
        features, predicted, scores = extract(
            recorder, reading.examples, all_layers, read.batch_size, per_head=read.per_head,
            query_pool=read.query_pool, statement_pool=read.statement_pool, pad_id=reading.pad_id,
            logit_ids=reading.logit_ids, max_tokens=read.max_batch_tokens)
        if reading.normalise:
            features = normalise_by_max(features)
        probing = run.probing(default_p=part.default_p)
        settings = {}
        for setting in part.settings(reading, Extracted(features, None, predicted, scores),
                                     probing):
            rows = range(len(reading.examples))[setting.rows]
            scored = [Scored(reading.examples[i], np.asarray(useful, dtype=bool),
                             np.asarray(depth), reading.targets[i],
                             None if reading.choices is None else reading.choices[i])
                      for i, useful, depth in zip(rows, setting.useful, setting.depth)]
            if part.setting_kind:
                print(f"\n== {part.setting_kind} {setting.name}")
            body = knockout_experiment(recorder, scored, features[setting.rows], probing, config,
                                       run.seed, read, reading.pad_id, setting.groups)
            print_tables(body)
            name = ("knockout" if part.setting_kind is None else
                    "knockout_" + "".join(c if c.isalnum() else "_" for c in setting.name))
            save_figure(figure(body, f"{setting.name if part.setting_kind is None else part.task_name + ' ' + setting.name}: "
                                     f"statement knockout ({config.queries} queries)"), out, name)
            settings[setting.name] = {"figure": name, **{key: value for key, value in
                                                         setting.scores.items()
                                                         if key not in body}, **body}
    if not settings:
        raise UserError(f"every {part.setting_kind or 'setting'} has fewer "
                        f"{plural(part.grouped_by)} than --folds {probing.folds}: use more "
                        "examples (--n-examples) or fewer --folds")
    results = {"task": part.task_name, "model": run.model, **part.meta(reading), "seed": run.seed,
               "queries": config.queries, "window": config.window,
               "stride": config.stride or config.window, "bootstrap": config.bootstrap,
               "query_pool": read.query_pool, "device": str(input_device(model)),
               "settings": settings, "seconds": round(time.time() - started, 2)}
    if len(settings) == 1:     # a single setting is also copied to the top level, as in probing
        results.update(next(iter(settings.values())))
    write_json(os.path.join(out, "results.json"), results)
    print(f"results: {os.path.join(out, 'results.json')}")
    return results
