"""Per-statement out-of-fold predictions of one setting (docs/DATA.md, predictions.jsonl).

The all-layers kNN fit that gives a setting's F1 predicts every statement once, from the fold
where it is held out; those labels, for the model and for the random twin, are kept here beside
the gold tree and the attention feature, so that trees can be read one by one
(tree_recovery.py) and the scores resampled without refitting (bootstrap.py).
"""

import json
from dataclasses import dataclass

import numpy as np

from mechprobe.outputs import write_lines

NO_LABEL = -1      # depth of a statement that probe 2 does not predict (or a non-useful one)


@dataclass
class SettingPredictions:
    """One setting's statements, in the order the probes saw them (example by example)."""

    ids: list                # per example: its id (the --dump-examples id)
    example: np.ndarray      # (n,) the statement's example, as a position in `ids`
    statement: np.ndarray    # (n,) its index among its example's statements
    group: np.ndarray        # (n,) its cross-validation group (the resampling unit)
    useful: np.ndarray       # (n,) gold: useful
    depth: np.ndarray        # (n,) gold depth class, NO_LABEL where not useful
    predicted: dict          # {'model'|'random': {'useful': (n,), 'depth': (n,)}}; depth is
                             # NO_LABEL where probe 2 made no prediction (not useful, or no probe 2)
    fold: dict               # {'useful': (n,), 'depth': (n,) NO_LABEL outside probe 2}: test folds
    depth_probed: bool       # probe 2 applies (two or more depth classes)
    features: np.ndarray     # (n, layers, per-layer features): the model's attention feature
    random_features: np.ndarray
    layers: list             # the probed layers (0-based), the features' second axis
    details: list | None = None    # per example, what the report shows of it (report_html.py)

    @classmethod
    def from_fit(cls, ids, lengths, model_samples, random_samples, out_of_fold, layers):
        """From the two Samples of a setting and knn.overall_layerwise_predictions's third item;
        `ids` and `lengths` (statements): one per example, in the order the Samples were built."""
        example = np.repeat(np.arange(len(ids)), lengths)
        statement = np.concatenate([np.arange(n) for n in lengths])
        useful = model_samples.useful
        depth_probed = out_of_fold["model"]["depth"] is not None
        predicted = {}
        for who, stages in out_of_fold.items():
            depth = np.full(len(useful), NO_LABEL)
            if depth_probed:
                depth[useful] = stages["depth"][0]
            predicted[who] = {"useful": stages["useful"][0].astype(bool), "depth": depth}
        fold = {"useful": out_of_fold["model"]["useful"][1],
                "depth": np.full(len(useful), NO_LABEL)}
        if depth_probed:
            fold["depth"][useful] = out_of_fold["model"]["depth"][1]
        return cls(list(ids), example, statement, model_samples.groups, useful,
                   np.where(useful, model_samples.depth, NO_LABEL), predicted, fold, depth_probed,
                   model_samples.X, random_samples.X, list(layers))

    def rows(self, setting):
        """One dict per statement: the predictions.jsonl lines."""
        def depth(value):
            return None if value == NO_LABEL else int(value)

        for i in range(len(self.useful)):
            yield {"setting": setting, "example": self.ids[self.example[i]],
                   "statement": int(self.statement[i]), "group": int(self.group[i]),
                   "useful": int(self.useful[i]), "depth": depth(self.depth[i]),
                   "model": {"useful": int(self.predicted["model"]["useful"][i]),
                             "depth": depth(self.predicted["model"]["depth"][i])},
                   "random": {"useful": int(self.predicted["random"]["useful"][i]),
                              "depth": depth(self.predicted["random"]["depth"][i])},
                   "fold": {"useful": int(self.fold["useful"][i]),
                            "depth": depth(self.fold["depth"][i])},
                   "feature": rounded(self.features[i]),
                   "feature_random": rounded(self.random_features[i])}


def rounded(feature):
    """A statement's (layers, per-layer features) as nested lists: one number per layer for
    head-mean attention, a list per layer with --per-head; 7 significant digits, about what a
    float32 holds (its exact decimal expansion would triple the file)."""
    values = [[float(f"{v:.7g}") for v in layer] for layer in np.asarray(feature)]
    return [layer[0] if len(layer) == 1 else layer for layer in values]


def write_predictions(path, predictions):
    """OUT/predictions.jsonl from {setting: SettingPredictions}, written atomically."""
    write_lines(path, (json.dumps(row) + "\n" for setting, these in predictions.items()
                       for row in these.rows(setting)))


def read_predictions(path):
    """The rows of a predictions.jsonl file."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
