"""Reading attention for probing: the per-statement features of a model and of its random twin
on the same prompts (with the feature cache, several processes, and the memory and time this
takes), and the answer logits."""

import os
import time
from dataclasses import dataclass

import numpy as np

from mechprobe.attention.features import extract, shared_prefix
from mechprobe.memory import PeakMemory
from mechprobe.attention.recorder import Recorder
from mechprobe.models import input_device, random_twin
from mechprobe.parallel import gathered, my_share, world_size


def features_of(model, examples, layers, read, pad_id, logit_ids=None, desc="attention"):
    """Per example its (statements, layers, features) array, the predicted next token, and the
    logits of `logit_ids` (ReadConfig `read` with the task's defaults filled in)."""
    with Recorder(model) as recorder:      # the model gets its attention implementation back
        return extract(recorder, examples, layers, read.batch_size, per_head=read.per_head,
                       query_pool=read.query_pool, statement_pool=read.statement_pool,
                       pad_id=pad_id, logit_ids=logit_ids, max_tokens=read.max_batch_tokens,
                       desc=desc)


def answer_scores(model, examples, read, pad_id, logit_ids, desc="answers"):
    """The logits of `logit_ids` after each prompt (no attention kept), with several processes
    each running its share (gathered on every process)."""
    share = my_share(len(examples))
    _, _, scores = features_of(model, [examples[i] for i in share], [], read, pad_id, logit_ids,
                               desc)
    return gathered(share, [scores], len(examples))[0]


@dataclass
class Extracted:
    """What one reading of attention gives: per example the model's and the random twin's
    (statements, layers, features) arrays, the model's predicted next tokens and answer logits."""

    features: list
    random_features: list
    predicted: np.ndarray
    scores: np.ndarray | None
    peak_extra_bytes: int | None = None    # extraction memory over the model's (None: not run)
    cached: bool = False                   # read from a FeatureCache, not computed
    seconds_per_prompt: float | None = None    # the model's reading time per prompt (not the twin's)


def feature_cache(out, mode):
    """The FeatureCache of a run writing to `out` (None with mode "off" or without a folder)."""
    if mode == "off" or not out:
        return None
    if world_size() > 1:   # every process would have to agree on a hit; keep it simple
        print("note: the feature cache is off when several processes read attention")
        return None
    from mechprobe.probing.cache import FeatureCache

    return FeatureCache(os.path.join(out, "features"), strict=mode == "strict")


def extract_pair(model, examples, layers, read, seed, pad_id, logit_ids=None, cache=None):
    """Features of `model` and of its random twin (seed) on the same examples, for `layers`.

    With a FeatureCache (mechprobe/probing/cache.py) every layer is read and kept, so that a later
    run with other layers or probe settings reuses them; the arrays returned hold `layers` only.
    """
    n_layers = model.config.get_text_config().num_hidden_layers
    read_layers = list(range(n_layers)) if cache else list(layers)
    key = cache.key(model, examples, read, seed, logit_ids) if cache else None
    stored = cache.load(key, len(examples), n_layers) if cache else None
    peak = seconds = None
    if stored is None:
        share = my_share(len(examples))
        mine = [examples[i] for i in share]
        # One example first: torch's one-time start-up allocations (about 170 MB on a CPU,
        # whatever the model) are not extraction memory, and would dominate the peak below.
        features_of(model, mine[:1], read_layers, read, pad_id, logit_ids, "warm-up")
        started = time.perf_counter()
        with PeakMemory(input_device(model)) as memory:
            features, predicted, scores = features_of(model, mine, read_layers, read, pad_id,
                                                      logit_ids, "model")
        seconds = (time.perf_counter() - started) / max(1, len(mine))
        peak = memory.extra_bytes
        shared = shared_prefix(mine) if mine else 0
        print(f"read {len(mine)} prompts of {np.mean([len(e.input_ids) for e in mine]):.0f} tokens "
              f"on average in {seconds:.2f} s each"
              + (f" (their shared first {shared} tokens run once)" if shared else ""))
        random_features, _, _ = features_of(random_twin(model, seed), mine, read_layers, read,
                                            pad_id, logit_ids, "random model")
        features, random_features, predicted, scores = gathered(
            share, [features, random_features, predicted, scores], len(examples))
        if cache:
            cache.save(key, features, random_features, predicted, scores)
        stored = {"features": features, "random_features": random_features,
                  "predicted": predicted, "scores": scores}
    keep = [read_layers.index(layer) for layer in layers]
    return Extracted([f[:, keep] for f in stored["features"]],
                     [f[:, keep] for f in stored["random_features"]],
                     stored["predicted"], stored["scores"], peak, cached=peak is None,
                     seconds_per_prompt=seconds)
