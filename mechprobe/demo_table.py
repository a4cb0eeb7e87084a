"""The demo's one table: a fine-tuning run's results.json and a probing run's, side by side.

    python -m mechprobe.demo_table TRAIN_OUT/results.json PROBE_OUT/results.json
"""

import json
import sys

from .cli import format_table


def demo_row(train, probe):
    return {"task": train["task"], "test_acc": train["test_accuracy"],
            "probe_acc": probe.get("accuracy"),
            "F1_useful": probe["f1"]["useful"], "F1_useful_rand": probe["f1_random"]["useful"],
            "S_P1": probe["probing_score"]["useful"],
            "F1_depth": probe["f1"]["depth"], "F1_depth_rand": probe["f1_random"]["depth"],
            "S_P2": probe["probing_score"]["depth"],
            "best_layer_P1": probe["best_layer"]["useful"],
            "best_layer_P2": probe["best_layer"]["depth"]}


def main(train_path, probe_path):
    with open(train_path) as f:
        train = json.load(f)
    with open(probe_path) as f:
        probe = json.load(f)
    row = demo_row(train, probe)
    print(format_table([row], list(row)))
    print(f"test_acc: the fine-tuning test split; probe_acc: the {probe['n_examples']} probed examples.\n"
          "F1: macro F1 of the kNN probes (5 folds grouped by example); _rand: the same probe on a\n"
          "randomly initialised twin; S_P = (F1 - F1_rand) / (1 - F1_rand); layers are 0-based.")


if __name__ == "__main__":
    main(*sys.argv[1:3])
