"""Tree recovery: how many examples' whole reasoning trees the probes get right (METHOD.md,
section 5). Macro F1 averages over statements; a tree is recovered only when every statement
of its example is."""

import numpy as np

from mechprobe.probing.predictions import NO_LABEL


def recovered(predictions, who):
    """Per example (in predictions.ids order): (useful set right, tree right) for 'model' or
    'random'. The useful set is right when every statement's predicted usefulness equals the
    gold one; the tree, when besides every useful statement's predicted depth class is its gold
    class. Without probe 2 (one depth class) the depth is right by construction."""
    guess = predictions.predicted[who]
    n = len(predictions.ids)
    wrong_useful = np.bincount(predictions.example, weights=guess["useful"] != predictions.useful,
                               minlength=n)
    useful_set = wrong_useful == 0
    if not predictions.depth_probed:
        return useful_set, useful_set.copy()
    probed = predictions.depth != NO_LABEL
    wrong_depth = np.bincount(predictions.example[probed],
                              weights=guess["depth"][probed] != predictions.depth[probed],
                              minlength=n)
    return useful_set, useful_set & (wrong_depth == 0)


def tree_recovery(predictions):
    """The results.json field: {'model': {'useful_set': share, 'tree': share}, 'random': ...}."""
    result = {}
    for who in ("model", "random"):
        useful_set, tree = recovered(predictions, who)
        result[who] = {"useful_set": float(useful_set.mean()), "tree": float(tree.mean())}
    return result
