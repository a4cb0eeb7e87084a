"""Robustness (METHOD.md): does a higher probing score go with answers that resist corruption?

A text task's robustness pool (ProofWriter: its depth-1 questions) is probed once; then, many
times over, a subset of 64-128 of them is drawn and its in-context accuracy, S_P1 and S_P2
computed, and the accuracy change when each example is corrupted as the task defines it
(TextTask.corrupt; ProofWriter: (a) a noise statement, not in the proof, made counterfactual,
(b) a useful statement made counterfactual, (c) the statements shuffled; any other task: a noise
or a useful statement replaced by one drawn from another question, or the statements shuffled).
Each example's corruption is drawn once (seeded), so every subset sees the same corrupted
versions. Subsets are binned by S_P2 into 8 equal-width bins; Pearson and Spearman correlations relate S_P2 to the accuracy change.
"""

import os
import time
from dataclasses import dataclass

import numpy as np
from scipy.stats import pearsonr, spearmanr
from tqdm.auto import tqdm

from mechprobe import seeds
from mechprobe.cli import UserError, format_table, require
from mechprobe.outputs import make_dirs, write_json
from mechprobe.plots import save_figure, subplots
from mechprobe.probing.crossval import Samples, compare
from mechprobe.baselines import chance_check, chance_warning, shortcut_caveat
from mechprobe.models import load_model, position_limit
from mechprobe.parallel import is_main_process, world_size
from mechprobe.probing.config import FromArgs, check_options, option
from mechprobe.probing.extraction import answer_scores, extract_pair
from mechprobe.tasks.prompts import chosen_answers, fitting_prompts, shot_record

N_BINS = 8


def correct_answers(scores, words, questions):
    """1 where the model's answer (prompts.chosen_answers) is the question's."""
    return np.array([a == q.target for a, q in zip(chosen_answers(scores, words, questions),
                                                   questions)], dtype=float)


# Not scipy.stats.binned_statistic: it sums each bin in another order (last-bit differences in
# the means) and widens a zero-width range by 0.5 each way, moving a lone subset to a middle bin.
def binned(sp2, values, n_bins=N_BINS):
    """Equal-width bins of S_P2 over its observed range: count and mean of each value column."""
    edges = np.linspace(sp2.min(), sp2.max(), n_bins + 1)
    which = np.clip(np.searchsorted(edges, sp2, side="right") - 1, 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        members = which == b
        row = {"bin": b, "sp2_low": float(edges[b]), "sp2_high": float(edges[b + 1]),
               "subsets": int(members.sum())}
        for name, column in values.items():
            row[name] = float(column[members].mean()) if members.any() else None
        rows.append(row)
    return rows


def correlation(x, y):
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return {"pearson": None, "pearson_p": None, "spearman": None, "spearman_p": None}
    p, s = pearsonr(x, y), spearmanr(x, y)
    return {"pearson": float(p.statistic), "pearson_p": float(p.pvalue),
            "spearman": float(s.statistic), "spearman_p": float(s.pvalue)}


def subset_samples(features, labels, chosen):
    """labels: (useful, depth, cross-validation group) per question."""
    return Samples.from_examples(*([column[i] for i in chosen] for column in (features, *labels)))


def summarise(subsets, kinds):
    """Bins and correlations over the subsets whose S_P2 is defined: where the random twin's
    depth probe is perfect (F1 = 1), S_P2 has no scale, and such a subset cannot be placed.
    Returns (S_P2, accuracy changes per corruption, bins, correlations, subsets left out)."""
    defined = [s for s in subsets if s["sp2"] is not None]
    sp2 = np.array([s["sp2"] for s in defined], dtype=float)
    changes = {k: np.array([s[f"change_{k}"] for s in defined], dtype=float) for k in kinds}
    bins = binned(sp2, {"accuracy": np.array([s["accuracy"] for s in defined], dtype=float),
                        **{f"change_{k}": v for k, v in changes.items()}}) if defined else []
    correlations = {k: correlation(sp2, v) for k, v in changes.items()}
    return sp2, changes, bins, correlations, len(subsets) - len(defined)


def figure(sp2, changes, out):
    fig, axes = subplots(1, len(changes), figsize=(4 * len(changes), 3.4), sharey=True)
    for ax, kind in zip(axes, changes):
        ax.scatter(sp2, changes[kind], s=8, alpha=0.5)
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_title(kind.replace("_", " "))
        ax.set_xlabel("S_P2 of the subset")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy change")
    save_figure(fig, out, "robustness")


@dataclass
class RobustnessConfig(FromArgs):
    """corrupt.py: how the subsets of the robustness experiment are drawn (the questions and
    their prompts are a TextConfig's, as probing reads them)."""

    repeats: int = option(128, "subsets drawn (paper: 1024)", low=1, high=10**6)
    min_subset: int = option(64, "questions in the smallest subset", low=2, high=10**6)
    max_subset: int = option(128, "questions in the largest subset", low=2, high=10**6)

    def __post_init__(self):
        check_options(self)
        require(self.min_subset <= self.max_subset,
                "RobustnessConfig.min_subset and RobustnessConfig.max_subset must satisfy "
                f"2 <= min <= max, got {self.min_subset!r} and {self.max_subset!r}")


def run(config, part, run_config, out):
    """Corrupt statements, draw subsets, relate each subset's S_P2 to its accuracy change:
    figure, results.json and the printed tables. `part` (a TextPart) says which questions and
    prompts, as probing reads them: the task's robustness pool (ProofWriter: its depth-1
    questions), at most part.config.n_examples of them; `run_config` (a RunConfig) names the
    model, how attention is read and the probe."""
    started = time.time()
    text = part.config
    part.load()
    task = part.task
    questions = task.robustness_pool(part.questions)
    if len(questions) > text.n_examples:     # the pool the subsets are drawn from, in file order
        rng = seeds.rng(run_config.seed, seeds.CORRUPT_POOL)
        keep = np.sort(rng.choice(len(questions), text.n_examples, replace=False))
        questions = [questions[i] for i in keep]
    if len(questions) < config.min_subset:
        raise UserError(f"only {len(questions)} {task.robustness_label} questions in the "
                        f"{text.split} split, fewer than --min-subset {config.min_subset}: "
                        "use more data or lower it")
    # A corrupted question keeps its clean version's shots.
    rng = seeds.rng(run_config.seed, seeds.CORRUPTIONS)
    kinds = task.corruptions
    versions = {kind: [task.corrupt(q, kind, rng, questions) for q in questions]
                for kind in kinds}

    model, tokenizer = load_model(run_config.model, run_config.device, run_config.dtype,
                                   run_config.placement())
    layers = run_config.layers_of(model)
    reading = part.blank_reading(model, tokenizer, run_config)
    shots = part.shots(questions, reading)
    read, pad_id = reading.read, reading.pad_id

    def examples_of(items, indices):
        return [part.example(item, shots[i], reading) for item, i in zip(items, indices)]

    every = range(len(questions))
    prompts = [examples_of(forms, [i] * len(forms)) for i, forms in enumerate(
        [q, *(v[i] for v in versions.values() if v[i] is not None)] for i, q in enumerate(questions))]
    fits = fitting_prompts(model, questions, prompts, text.skip_long)
    skipped = len(questions) - len(fits)
    if skipped:
        print(f"skipped {skipped} of {len(questions)} questions with a prompt (clean or corrupted) "
              f"longer than the model's {position_limit(model)} positions (--skip-long)")
        if len(fits) < config.min_subset:
            raise UserError(f"only {len(fits)} questions fit the model's {position_limit(model)} "
                            f"positions, fewer than --min-subset {config.min_subset}: use fewer "
                            "--icl shots or a model with more positions")
        questions, shots = ([x[i] for i in fits] for x in (questions, shots))
        versions = {kind: [v[i] for i in fits] for kind, v in versions.items()}
        every = range(len(questions))
    answers = part.answer_tokens(questions, shots, reading)
    if answers is None:
        raise UserError(f"{text.data}: the robustness run scores answers, and some questions have "
                        "none: give every question an answer and its choices (docs/DATA.md)")
    words, word_ids = answers

    clean = examples_of(questions, every)
    extracted = extract_pair(model, clean, layers, read, run_config.seed, pad_id, word_ids)
    features, random_features, scores = (extracted.features, extracted.random_features,
                                         extracted.scores)
    correct = correct_answers(scores, words, questions)
    corrupted_correct = {}
    for kind in kinds:
        applies = [i for i, v in enumerate(versions[kind]) if v is not None]
        kind_scores = answer_scores(model, examples_of([versions[kind][i] for i in applies],
                                                       applies), read, pad_id, word_ids, kind)
        column = correct.copy()     # where a corruption does not apply, the answer is unchanged
        column[applies] = correct_answers(kind_scores, words, [versions[kind][i] for i in applies])
        corrupted_correct[kind] = column
    if not is_main_process():      # the other processes only ran the model on their shares
        return None

    probing = run_config.probing(default_p=part.default_p)
    labels = ([np.array(q.useful) for q in questions],
              [np.array([-1 if d is None else d for d in q.depth]) for q in questions],
              [q.group for q in questions])
    subsets = []
    for repeat in tqdm(range(config.repeats), desc="subsets", unit="subset", leave=False):
        sub_rng = seeds.rng(run_config.seed, seeds.SUBSETS, repeat)
        size = int(sub_rng.integers(config.min_subset, min(config.max_subset, len(questions)) + 1))
        chosen = np.sort(sub_rng.choice(len(questions), size=size, replace=False))

        scores_ = compare(subset_samples(features, labels, chosen),
                          subset_samples(random_features, labels, chosen),
                          probing)["probing_score"]
        accuracy = float(correct[chosen].mean())
        subsets.append({"repeat": repeat, "size": size, "accuracy": accuracy,
                        "sp1": scores_["useful"], "sp2": scores_["depth"],
                        **{f"change_{k}": float(corrupted_correct[k][chosen].mean()) - accuracy
                           for k in kinds}})
    sp2, changes, bins, correlations, undefined = summarise(subsets, kinds)

    chance = chance_check(float(correct.mean()), [q.target for q in questions],
                          task.shortcuts(questions))

    make_dirs(out)
    figure(sp2, changes, out)
    results = {"task": part.task_name, "model": run_config.model, "data": text.data,
               "split": text.split, "icl": text.icl,
               "shots": text.shots if text.icl else None, "prompt": text.prompt,
               "shot_ids": shot_record(text.shots, questions, shots), "skipped_long": skipped,
               "position_limit": position_limit(model), "layers": layers,
               "n_questions": len(questions), "n_examples": text.n_examples,
               "repeats": config.repeats, "subset_size": [config.min_subset, config.max_subset],
               "seed": run_config.seed, "world_size": world_size(),
               "clean_accuracy": float(correct.mean()), **chance,
               "corrupted_accuracy": {k: float(v.mean()) for k, v in corrupted_correct.items()},
               "subsets_without_sp2": undefined,
               "bins": bins, "correlation": correlations, "subsets": subsets,
               "seconds": round(time.time() - started, 2)}
    write_json(os.path.join(out, "results.json"), results)
    print(f"{len(questions)} {task.robustness_label} questions; accuracy clean {correct.mean():.4f}, "
          + ", ".join(f"{k} {v.mean():.4f}" for k, v in corrupted_correct.items()))
    if undefined:
        print(f"skipped {undefined} of {len(subsets)} subsets in the bins and correlations: S_P2 is "
              "undefined there (the random model's depth probe already scores F1 = 1)")
    if bins:
        print(format_table(bins, list(bins[0])))
    print()
    print(format_table([{"corruption": k, **v} for k, v in correlations.items()],
                       ["corruption", "pearson", "pearson_p", "spearman", "spearman_p"]))
    if chance["baseline_exact"]:    # no accuracy can beat it: a caveat, not a verdict
        print(shortcut_caveat({"the clean questions": chance}))
    elif chance["near_chance"]:
        print(chance_warning({"the clean questions": chance},
                             "its probing scores and accuracy changes say little"))
    print(f"results: {os.path.join(out, 'results.json')}")
    return results
