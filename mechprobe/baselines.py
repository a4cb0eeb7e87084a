"""Baselines: is a model's accuracy above answering without it (the commonest answer, and
answerers that read only the input, mechprobe/tasks/shortcuts.py)? Its probing scores mean little
where it is not; and where an input-only answerer is right on every question, accuracy cannot
tell reasoning from that rule (docs/METHOD.md section 9)."""

import numpy as np


def majority_rate(answers):
    """The accuracy of always giving the commonest of `answers`."""
    answers = list(answers)
    return max(answers.count(a) for a in set(answers)) / len(answers)


def near_chance(accuracy, baseline_rate, n, alpha=0.05):
    """True when the accuracy is not significantly above `baseline_rate` (a one-sided binomial
    test): the model does not solve the task, so its probing scores say little about how it
    reasons."""
    from scipy.stats import binomtest

    return bool(binomtest(round(accuracy * n), n, baseline_rate, alternative="greater").pvalue > alpha)


def chance_check(accuracy, targets, answerers=None):
    """The model's accuracy against answering without it: always the commonest answer, and each
    of `answerers` ({name: one answer per example}, read off the input alone; see shortcuts.py).
    The commonest answer alone is too weak a bar: an untrained GPT-2 copies the last number, which
    beats it on the k-th smallest task. Returns the results fields: majority_rate, the rate of
    every answerer, the best one (`baseline`) and near_chance against it."""
    targets = list(targets)
    rates = {"commonest answer": majority_rate(targets)}
    for name, answers in (answerers or {}).items():
        rates[name] = float(np.mean([a == t for a, t in zip(answers, targets, strict=True)]))
    best = max(rates, key=rates.get)     # ties go to the commonest answer
    return {"majority_rate": rates["commonest answer"], "input_only_rates": rates,
            "baseline": best, "baseline_rate": rates[best],
            "near_chance": near_chance(accuracy, rates[best], len(targets)),
            "baseline_exact": rates[best] == 1.0}


def shortcut_caveat(where):
    """The printed caveat for settings whose best input-only answerer is right on every question
    ({name: its chance_check fields, with shortcut_control where measured})."""
    by_answerer = {}
    for name, check in where.items():
        by_answerer.setdefault(check["baseline"], []).append(name)
    named = "; ".join(f"{', '.join(names)} ({answerer})" for answerer, names in by_answerer.items())
    measured = [name for name, check in where.items()
                if (check.get("shortcut_control") or {}).get("accuracy") is not None]
    return (f"caveat: an answerer that reads only the input is right on every probed question in "
            f"{named}: accuracy there cannot separate reasoning from that rule, high or low "
            "(METHOD.md section 9)"
            + (f"; acc_control is the accuracy on same-depth questions it gets wrong "
               f"({', '.join(measured)})." if measured else
               "; no same-depth question it gets wrong was found to check the model on."
               if any("shortcut_control" in check for check in where.values()) else "."))


def chance_warning(where, what="its probing scores say little about how it reasons"):
    """The printed warning for settings that failed chance_check: {name: its chance_check fields}."""
    beaten = ", ".join(f"{name} ({check['baseline']} {check['baseline_rate']:.3f})"
                       for name, check in where.items())
    return (f"warning: the model's accuracy is not significantly above the best answerer that reads "
            f"only the input in {beaten}: it does not solve the task there, so {what} "
            "(input_only_rates in results.json).")


def accuracy(predicted, targets):
    return float(np.mean(np.asarray(predicted) == np.asarray(targets)))
