"""The result of a probing run: per setting its scores (what results.json holds), the
per-statement predictions, and the run's meta; saved as results.json, predictions.jsonl,
report.html and the layer-wise figures, and printed as tables."""

import os
import platform
from dataclasses import dataclass, field

import torch

from mechprobe.baselines import chance_warning, shortcut_caveat
from mechprobe.cli import format_table
from mechprobe.outputs import make_dirs, output_dir, write_json, write_lines
from mechprobe.plots import layerwise_plot, save_figure
from mechprobe.probing.intervals_table import beside_scores, interval_report, summary_columns
from mechprobe.probing.predictions import write_predictions
from mechprobe.probing.report_html import notebook_html, report_html


@dataclass
class ProbeResult:
    """One probing run: `settings` maps each probed setting (a k, a bucket) to its scores (f1,
    f1_random, probing_score, layerwise rows, best_layer, accuracy, ...); `meta` says how."""

    meta: dict
    settings: dict
    # {setting: SettingPredictions}; probe_setting hands them over inside its result, taken out
    # here so that `settings` stays what results.json holds
    predictions: dict = field(default_factory=dict)

    def __post_init__(self):
        for name, result in self.settings.items():
            if "predictions" in result:
                self.predictions[name] = result.pop("predictions")

    def summary(self):
        """One row per setting: accuracy, F1s, S_P1, S_P2, best layers (the printed table)."""
        return [summary_row(name, result) for name, result in self.settings.items()]

    def layerwise(self, setting=None):
        """The layer-wise rows of a setting (default: the only or first one)."""
        return self.settings[setting or next(iter(self.settings))]["layerwise"]

    def to_json(self):
        results = {**self.meta, "settings": self.settings,
                   "versions": {"python": platform.python_version(), "torch": torch.__version__}}
        if len(self.settings) == 1:    # a single setting is also copied to the top level
            results.update(next(iter(self.settings.values())))
        return results

    def save(self, out, force=False):
        """OUT/results.json, OUT/predictions.jsonl, OUT/report.html and
        OUT/layerwise_<setting>.{png,pdf}, with probe.py's safety: a folder of files this tool
        did not write is refused unless force, nothing is left half-written. Returns the results
        dict."""
        with output_dir(out, force, flag="out", command="probe.py"):
            return self.write(out)

    def write(self, out):
        """save's files, into a folder the caller already holds (the runners' output_dir)."""
        make_dirs(out)
        for name, result in self.settings.items():
            layerwise_figure(name, result["layerwise"], out)
        if self.predictions:
            write_predictions(os.path.join(out, "predictions.jsonl"), self.predictions)
        write_lines(os.path.join(out, "report.html"), [report_html(self)])
        results = self.to_json()
        write_json(os.path.join(out, "results.json"), results)
        return results

    def _repr_html_(self):
        """A notebook shows the run as its report.html (report_html.py)."""
        return notebook_html(self)

    def summary_columns(self, rows):
        """The printed summary's columns for these summary() rows."""
        columns = SUMMARY_COLUMNS + [c for c in ("f1_text_useful", "f1_text_depth") if c in rows[0]]
        if "balanced_acc" in rows[0]:    # text tasks: beside the best baseline
            at = columns.index("accuracy") + 1
            columns[at:at] = ["balanced_acc", "baseline"]
            if any("acc_control" in row for row in rows):
                columns.insert(at + 2, "acc_control")
        return beside_scores(columns + [c for c in summary_columns(
            next(iter(self.settings.values()))) if c in rows[0]])

    def report(self):
        """The printed tables and warnings, as text."""
        lines = []
        if len(self.settings) == 1:
            lines += [format_table(self.layerwise(), LAYER_COLUMNS), ""]
        rows = self.summary()
        lines.append(format_table(rows, self.summary_columns(rows)))
        intervals = interval_report(self.settings)
        if intervals:
            lines.append(intervals)
        if "f1_text_useful" in rows[0]:
            lines.append("f1_text_*: the same probes on text-only features (statement kind, word "
                         "overlap with the question, position): what wording alone gives away.")
        # Where an input-only answerer is right on every question, no accuracy can beat it:
        # that says nothing about the model, so those settings get the caveat, not the warning.
        exact = {n: r for n, r in self.settings.items() if r.get("baseline_exact")}
        weak = {n: r for n, r in self.settings.items() if r.get("near_chance") and n not in exact}
        if exact:
            lines.append(shortcut_caveat(exact))
        if weak:
            lines.append(chance_warning(weak))
        for name, result in self.settings.items():
            if result.get("useful_one_class"):
                lines.append(f"note: every statement of setting {name} is useful (or none is): "
                             "the usefulness probe had one class to predict, so its F1 and tree "
                             "recovery say nothing; label some statements not useful")
        asked = self.meta.get("probe", {}).get("neighbors")
        clamped = {n: k for n, r in self.settings.items()
                   for k in (r.get("neighbors_used") or {}).values()
                   if k is not None and asked is not None and k < asked}
        if clamped:
            lines.append(f"note: --neighbors {asked} is more than some training folds hold; those "
                         f"probes used fewer ({', '.join(f'{n}: {k}' for n, k in clamped.items())}; "
                         "neighbors_used in results.json)")
        return "\n".join(lines)


def summary_row(name, result):
    control = result.get("f1_text_control")
    extra = {} if control is None else {"f1_text_useful": control["useful"],
                                        "f1_text_depth": control["depth"]}
    if "balanced_accuracy" in result:   # text tasks: beside accuracy and the best baseline
        control = result.get("shortcut_control")
        extra = {"balanced_acc": result["balanced_accuracy"], "baseline": result["baseline_rate"],
                 **({} if control is None else {"acc_control": control["accuracy"]}), **extra}
    return {"setting": name, "n": result["n_examples"], "accuracy": result.get("accuracy"),
            "f1_useful": result["f1"]["useful"], "f1_rand_useful": result["f1_random"]["useful"],
            "S_P1": result["probing_score"]["useful"],
            "f1_depth": result["f1"]["depth"], "f1_rand_depth": result["f1_random"]["depth"],
            "S_P2": result["probing_score"]["depth"],
            "best_layer_P1": result["best_layer"]["useful"],
            "best_layer_P2": result["best_layer"]["depth"], **extra, **summary_columns(result)}


SUMMARY_COLUMNS = ["setting", "n", "accuracy", "f1_useful", "f1_rand_useful", "S_P1", "f1_depth",
                   "f1_rand_depth", "S_P2", "best_layer_P1", "best_layer_P2"]
LAYER_COLUMNS = ["layer", "mode", "f1_useful", "f1_random_useful", "probing_score_useful",
                 "f1_depth", "f1_random_depth", "probing_score_depth"]


def layerwise_figure(name, rows, out):
    """F1 by layer, single and cumulative, for the model and the random twin."""
    save_figure(layerwise_plot(rows, f"{name}: layer-wise probing"), out, f"layerwise_{name}")
