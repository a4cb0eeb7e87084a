"""Features kept between runs: probing again with other --layers, --neighbors, --p or --folds
reuses the attention read before instead of running the model again.

A run's features (every layer, the model's and the random twin's, with the model's predictions
and answer logits) go to OUT/features/<key>.npz. The key covers everything that changes them:
the model (its name, config, dtype and a checksum of its weights), the examples' token ids and
spans, how attention is pooled (per head, query and statement pooling), the answer tokens and
the seed of the random twin. Batch sizes are left out: they change only the order of float sums.
The file is numpy's npz, read with allow_pickle=False.
"""

import hashlib
import json
import os
import zipfile

import numpy as np

from mechprobe.cli import UserError
from mechprobe.outputs import atomic_path, make_dirs

VERSION = 1                       # bump when what is stored changes


def weights_checksum(model):
    """Sums of every parameter in memory (cheap next to one forward pass); offloaded ones (on the
    meta device) count by name and shape, with the weight files' sizes and times."""
    sums = []
    for name, param in model.named_parameters():
        if param.device.type == "meta":
            sums.append([name, list(param.shape)])
        else:
            sums.append([name, float(param.detach().double().sum())])
    files = []
    folder = getattr(model, "name_or_path", "")
    if os.path.isdir(folder):
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.is_file() and entry.name.endswith((".safetensors", ".bin")):
                stat = entry.stat()
                files.append([entry.name, stat.st_size, stat.st_mtime_ns])
    return hashlib.sha256(json.dumps([sums, files]).encode()).hexdigest()


def check_arrays(arrays, n_examples, n_layers):
    """A file with the right key can still have been edited: every shape must fit the examples
    and the model, and every feature must be a number."""
    counts, total = arrays["counts"], int(np.sum(arrays["counts"]))
    for name in ("features", "random_features"):
        values = arrays[name]
        if values.ndim != 3 or len(values) != total or (n_layers and values.shape[1] != n_layers):
            raise ValueError(f"{name} has shape {values.shape}, not ({total}, {n_layers}, ...)")
        if not np.isfinite(values).all():
            raise ValueError(f"{name} holds values that are not finite numbers")
    if counts.ndim != 1 or (counts < 1).any():
        raise ValueError("the statement counts are damaged")
    if len(arrays["predicted"]) != n_examples:
        raise ValueError(f"predicted holds {len(arrays['predicted'])} values for {n_examples} "
                         "examples")
    if arrays["scores"].size and len(arrays["scores"]) != n_examples:
        raise ValueError(f"scores holds {len(arrays['scores'])} rows for {n_examples} examples")


class FeatureCache:
    """OUT/features: load() what an earlier run stored under a key, save() this run's."""

    def __init__(self, folder, strict=False):
        self.folder, self.strict = folder, strict

    def key(self, model, examples, read, seed, logit_ids):
        digest = hashlib.sha256(json.dumps({
            "version": VERSION, "model": getattr(model, "name_or_path", ""),
            "config": model.config.to_json_string(), "dtype": str(model.dtype),
            "weights": weights_checksum(model), "per_head": read.per_head,
            "query_pool": read.query_pool, "statement_pool": read.statement_pool,
            "twin_seed": seed, "logit_ids": None if logit_ids is None else list(logit_ids),
        }, sort_keys=True).encode())
        for example in examples:
            digest.update(np.asarray(example.input_ids, dtype=np.int64).tobytes())
            digest.update(json.dumps([example.query, example.statements]).encode())
        return digest.hexdigest()[:24]

    def path(self, key):
        return os.path.join(self.folder, f"{key}.npz")

    def load(self, key, n_examples, n_layers=None):
        """The stored arrays, or None when there are none (or, unless strict, they are damaged or
        do not fit: n_examples examples, `n_layers` layers, finite numbers)."""
        path = self.path(key)
        if not os.path.isfile(path):
            return None
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
            if str(arrays.pop("key")) != key or len(arrays["counts"]) != n_examples:
                raise ValueError("it was written for other features")
            check_arrays(arrays, n_examples, n_layers)
            unpacked = {"features": np.split(arrays["features"], np.cumsum(arrays["counts"])[:-1]),
                        "random_features": np.split(arrays["random_features"],
                                                    np.cumsum(arrays["counts"])[:-1]),
                        "predicted": arrays["predicted"],
                        "scores": arrays["scores"] if arrays["scores"].size else None}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            message = f"cached features {path} are damaged or foreign ({err})"
            if self.strict:
                raise UserError(f"{message}: delete the file, or rerun without --feature-cache "
                                "strict to recompute them") from None
            print(f"{message}: recomputing them")
            return None
        print(f"reusing the features in {path}: same model, examples and reading; the model and "
              "its random twin are not run again")
        return unpacked

    def save(self, key, features, random_features, predicted, scores):
        make_dirs(self.folder)
        with atomic_path(self.path(key)) as tmp, open(tmp, "wb") as f:
            np.savez(f, key=np.array(key), counts=np.array([len(x) for x in features]),
                     features=np.concatenate(features), random_features=np.concatenate(random_features),
                     predicted=np.asarray(predicted),
                     scores=np.zeros(0) if scores is None else np.asarray(scores))

