"""Named random streams: every draw derived from --seed takes its own stream, so adding a draw
in one place never shifts the numbers drawn in another. The values are fixed: changing one
changes published results. Two pairs share a number (BOOTSTRAP and CORRUPTIONS, SHORTCUT_SAMPLE
and SUBSETS): each pair is drawn by different commands (probe.py's intervals and control,
corrupt.py's corruptions and subsets), never in one run, so no two draws of a run share a
stream; they keep their numbers so that published robustness results stay as they are."""

import numpy as np

PROBE_EXAMPLES = 1  # k-th smallest examples for probing (fine-tuning draws from [seed] alone)
PRUNING = 2         # the random head masks of the causal pruning curve, one per repeat
SHOTS = 3           # in-context shots: the fixed set, or per question (with its id's crc32)
BUCKETS = 4         # which questions each depth bucket keeps
TWIN = 5            # the random twin's initialisation seed
BOOTSTRAP = 6       # the bootstrap replicates of the intervals
CORRUPTIONS = 6     # corrupt.py's corrupted versions (probe.py alone draws BOOTSTRAP)
SHORTCUT_SAMPLE = 7  # which wrongly answered questions the shortcut control keeps
SUBSETS = 7         # corrupt.py's subsets, one per repeat (probe.py alone draws SHORTCUT_SAMPLE)
TRAIN_SUBSET = 8    # which training questions --n-train keeps
CORRUPT_POOL = 9    # which depth-1 questions corrupt.py draws its subsets from
CURRICULUM = 10     # the balanced short questions of the curriculum
VAL_SAMPLE = 11     # the fixed validation sample of fine-tuning
KNOCKOUT_NOISE = 31  # the noise statements knockout.py hides as controls


def rng(seed, stream, *more):
    """The generator of one named stream of `seed` (`more`: further keys, e.g. a repeat)."""
    return np.random.default_rng([seed, stream, *more])
