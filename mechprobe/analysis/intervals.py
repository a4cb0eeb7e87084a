"""Bootstrap confidence intervals of a mean over examples.

Every statistic of one run is resampled with the same draws of examples, so that differences
between statistics (a gap between two knockout conditions) are paired: the intervals of a gap
come from the per-example differences under the same resamples.
"""

import numpy as np

LEVEL = 0.95


def resamples(n, count, seed):
    """(count, n) example indices, drawn with replacement; the same seed gives the same draws."""
    return np.random.default_rng([seed, 95]).integers(0, n, size=(count, n))


def interval(values, draws, level=LEVEL):
    """Percentile interval of the mean of `values` (one per example) over the resampled draws."""
    values = np.asarray(values, dtype=np.float64)
    means = values[draws].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return [float(low), float(high)]
