"""The demo's one table: a fine-tuning run's results.json and a probing run's, side by side.

    python -m mechprobe.analysis.demo_table TRAIN_OUT/results.json PROBE_OUT/results.json
"""

import json
import sys

from mechprobe.cli import format_table
from mechprobe.probing.intervals_table import interval_report
from mechprobe.probing.result import summary_row


def demo_row(train, probe):
    """The fine-tuning run's test accuracy, then the probe's summary row (probing.summary_row)."""
    summary = summary_row(train["task"], probe)
    return {"task": train["task"], "test_acc": train["test_accuracy"], "probe_acc": summary["accuracy"],
            **{k: v for k, v in summary.items() if k not in ("setting", "n", "accuracy")}}


def main(train_path, probe_path):
    with open(train_path) as f:
        train = json.load(f)
    with open(probe_path) as f:
        probe = json.load(f)
    row = demo_row(train, probe)
    print(format_table([row], list(row)))
    name = {"knn": "kNN"}.get(probe["probe"].get("name", "knn"), probe["probe"].get("name"))
    print(f"test_acc: the fine-tuning test split; probe_acc: the {probe['n_examples']} probed examples.\n"
          f"F1: macro F1 of the {name} probes ({probe['probe']['folds']} folds grouped by example); "
          "_rand: the same probe on a\n"
          "randomly initialised twin; S_P = (F1 - F1_rand) / (1 - F1_rand); layers are 0-based.")
    intervals = interval_report({train["task"]: probe})
    if intervals:
        print(intervals)


if __name__ == "__main__":
    main(*sys.argv[1:3])
