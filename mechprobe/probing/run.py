"""One probing run, for any task: read the attention of a model and of its random twin on the
task's prompts, probe each setting (a k, a bucket), check the accuracy against chance, and save
and print the result. A task's part (part.py: ksmallest.py, text.py) says what the prompts are
and how its settings are labelled and scored; everything else is here, once.

    part = TextPart(TextConfig(task="arc", data="data/arc_offline"))
    result = probe_model(model, tokenizer, part, RunConfig(folds=3))
"""

import os
import time

import numpy as np

from mechprobe.attention.features import normalise_by_max
from mechprobe.cli import UserError
from mechprobe.models import input_device, load_model, position_limit
from mechprobe.parallel import is_main_process, world_size
from mechprobe.probing.bootstrap import bootstrap
from mechprobe.probing.buckets import plural
from mechprobe.probing.extraction import extract_pair, feature_cache
from mechprobe.probing.crossval import (Samples, best_layer, mean_of, neighbors_used,
                                         overall_layerwise_predictions, probe_stages)
from mechprobe.probing.predictions import SettingPredictions
from mechprobe.probing.result import ProbeResult
from mechprobe.probing.tree_recovery import tree_recovery


def probe_setting(features, random_features, useful, depth, config, layers, groups=None,
                  ids=None, details=None):
    """Probe one setting (a k, a bucket): overall scores, layer-wise rows, best layers, tree
    recovery and bootstrap intervals; `predictions` (a SettingPredictions, which ProbeResult
    keeps apart). `groups` (one label per example, default: each example its own) keeps
    examples that share a label on the same side of every cross-validation split; `ids` names
    the examples (default: their positions); `details`, one dict per example (its statements'
    text, answer, ...), is kept for the report's example browser (report_html.py)."""
    model_samples = Samples.from_examples(features, useful, depth, groups)
    random_samples = Samples.from_examples(random_features, useful, depth, groups)
    # The all-layers fit, the layer-wise rows and the out-of-fold predictions from one pass.
    result, rows, out_of_fold = overall_layerwise_predictions(model_samples, random_samples,
                                                              config, layers)
    predictions = SettingPredictions.from_fit(
        ids or [str(i) for i in range(len(features))], [len(f) for f in features], model_samples,
        random_samples, out_of_fold, layers)
    predictions.details = details
    result["tree_recovery"] = tree_recovery(predictions)
    result.update(bootstrap(predictions, config.seed))
    result["predictions"] = predictions
    used = neighbors_used(model_samples, config)
    if used is not None:         # the kNN's k, clamped where a training fold is smaller
        result["neighbors_used"] = used
    if len(np.unique(model_samples.useful)) < 2:
        result["useful_one_class"] = True    # the report says that probe 1 separated nothing
    result["layerwise"] = rows
    result["best_layer"] = {stage: best_layer(rows, stage) for stage in ("useful", "depth")}
    result["n_examples"] = len(features)
    result["n_statements"] = int(len(model_samples.useful))
    return result


def probe_model(model, tokenizer, part, run, cache=None, layers=None, reading=None):
    """Probe `model` and its random twin on a task part's prompts (`run` a RunConfig; `cache` a
    FeatureCache; `reading`: the part's Reading of this model, if already made). Returns a
    ProbeResult, or None on a process other than the main one (several processes read
    attention; the main one probes)."""
    layers = run.layers_of(model) if layers is None else layers
    reading = reading or part.reading(model, tokenizer, run)
    extracted = extract_pair(model, reading.examples, layers, reading.read, run.seed,
                             reading.pad_id, reading.logit_ids, cache)
    if not is_main_process():      # the other processes only read attention
        return None
    features, random_features = extracted.features, extracted.random_features
    if reading.normalise:   # after picking the layers: the same whether every layer was kept
        features, random_features = normalise_by_max(features), normalise_by_max(random_features)
    probing = run.probing(default_p=part.default_p)
    settings = {}
    for setting in part.settings(reading, extracted, probing):
        result = probe_setting(features[setting.rows], random_features[setting.rows],
                               setting.useful, setting.depth, probing, layers, setting.groups,
                               setting.ids, setting.details)
        if setting.control is not None:
            control = probe_stages(Samples.from_examples(setting.control, setting.useful,
                                                         setting.depth, setting.groups), probing)
            result["f1_text_control"] = {stage: mean_of(value) for stage, value in control.items()}
        settings[setting.name] = {**setting.scores, **result}
    if not settings:
        raise UserError(f"every bucket has fewer {plural(part.grouped_by)} than RunConfig.folds "
                        f"{probing.folds}: probe more examples (TextConfig.n_examples) or use "
                        "fewer RunConfig.folds")
    part.add_controls(reading, settings)
    meta = {"task": part.task_name, "model": run.model, **part.meta(reading),
            **reading_meta(model, reading, extracted, layers, probing, run)}
    return ProbeResult(meta, settings)


def reading_meta(model, reading, extracted, layers, probing, run):
    """results.json's record of how attention was read and probed (the same for every task)."""
    read = reading.read
    return {"position_limit": position_limit(model), "layers": layers,
            "per_head": read.per_head, "query_pool": read.query_pool,
            "statement_pool": read.statement_pool,
            **({"normalise": "max per example"} if reading.normalise else {}),
            "probe": probing.record(),
            "seed": run.seed, "device": str(input_device(model)),
            "mean_prompt_tokens": float(np.mean([len(e.input_ids) for e in reading.examples])),
            "memory": {"model_mb": model.get_memory_footprint(return_buffers=False) / 2**20,
                       "extraction_peak_extra_mb": None if extracted.peak_extra_bytes is None
                       else extracted.peak_extra_bytes / 2**20},
            "features_cached": extracted.cached, "world_size": world_size(),
            "seconds_per_prompt": extracted.seconds_per_prompt}


def run_command(part, run=None, out=None, dump_path=None, cache_mode="off"):
    """probe.py for any task: the part's data first (a bad file fails before a model loads);
    without a model only the dump (--dump-examples); else load the model, write the dump with
    its prompts, probe, save and print. Returns the results dict (None without a model, or on a
    process other than the main one)."""
    started = time.time()
    part.load()
    if run is None:
        if not dump_path:
            raise UserError("pass --model (a model to probe) or --dump-examples FILE")
        part.dump(dump_path)
        return None
    model, tokenizer = load_model(run.model, run.device, run.dtype, run.placement())
    layers = run.layers_of(model)      # a bad --layers fails before any dump or reading
    reading = part.reading(model, tokenizer, run)
    if dump_path:
        part.dump(dump_path, reading)
    result = probe_model(model, tokenizer, part, run, feature_cache(out, cache_mode), layers,
                         reading)
    if result is None:
        return None
    result.meta["seconds"] = round(time.time() - started, 2)
    results = result.write(out)
    print(result.report())
    print(f"results: {os.path.join(out, 'results.json')}")
    return results
