"""Probing runs shared by every task: model and random twin, features, probes, report."""

import os
import platform
import time

import numpy as np
import torch

from mechprobe.cli import UserError, format_table
from mechprobe.attention.features import extract
from mechprobe.models import load_pretrained, resolve_device, resolve_dtype
from mechprobe.outputs import write_json
from mechprobe.plots import layerwise_plot, save_figure
from mechprobe.probing.knn import Samples, best_layer, compare, layerwise, neighbors_used
from mechprobe.attention.recorder import Recorder


def parse_layers(spec, n_layers):
    """'0-16,19,28' -> [0..16, 19, 28] (0-based); None -> every layer."""
    if spec is None:
        return list(range(n_layers))
    layers = []
    try:
        for part in spec.split(","):
            if "-" in part:
                first, last = (int(x) for x in part.split("-"))
                if first > last:
                    raise UserError(f"--layers '{spec}': the range {part} is reversed; write "
                                    f"{last}-{first}")
                layers.extend(range(first, last + 1))
            else:
                layers.append(int(part))
    except ValueError:
        raise UserError(f"--layers '{spec}' is not a list like 0-16,19,28") from None
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad or not layers:
        raise UserError(f"--layers '{spec}': the model has layers 0-{n_layers - 1} (0-based)")
    return sorted(set(layers))


def check_model_name(name):
    """'tiny' names a model to build, not one to probe."""
    if name == "tiny":
        raise UserError("--model must name a trained model: fine-tune one first "
                        "(python finetune_gpt2.py --task min01 --out runs/tiny-min01) and pass "
                        "--model runs/tiny-min01/model, or pass a hub id / local directory")


def load_model(args):
    """The probed model on the requested device and dtype, in eval mode."""
    check_model_name(args.model)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    model, tokenizer = load_pretrained(args.model, dtype=dtype)
    return model.to(device).eval(), tokenizer, device


def twin_seed(seed):
    """The random twin's initialisation seed: derived from --seed but not equal to it, so that a
    model which is itself a random init from that seed (make_data.py llama) is not its own twin."""
    return int(np.random.default_rng([seed, 5]).integers(2**31))


def random_twin(model, seed):
    """The same architecture, randomly initialised (the probing score's baseline)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(twin_seed(seed))
    twin = AutoModelForCausalLM.from_config(model.config, dtype=model.dtype)
    return twin.to(next(model.parameters()).device).eval()


def features_of(model, examples, layers, args, pad_id, logit_ids=None, desc="attention"):
    recorder = Recorder(model)
    return extract(recorder, examples, layers, args.batch_size, per_head=args.per_head,
                   query_pool=args.query_pool, statement_pool=args.statement_pool, pad_id=pad_id,
                   logit_ids=logit_ids, max_tokens=args.max_batch_tokens, desc=desc)


def probe_setting(features, random_features, useful, depth, config, layers, groups=None):
    """Probe one setting (a k, a bucket): overall scores, layer-wise rows, best layers. `groups`
    (one label per example, default: each example its own) keeps examples that share a label on
    the same side of every cross-validation split."""
    model_samples = Samples.from_examples(features, useful, depth, groups)
    random_samples = Samples.from_examples(random_features, useful, depth, groups)
    result = compare(model_samples, random_samples, config)
    result["neighbors_used"] = neighbors_used(model_samples, config)
    rows = layerwise(model_samples, random_samples, config, layers)
    result["layerwise"] = rows
    result["best_layer"] = {stage: best_layer(rows, stage) for stage in ("useful", "depth")}
    result["n_examples"] = len(features)
    result["n_statements"] = int(len(model_samples.useful))
    return result


def majority_rate(answers):
    """The accuracy of always giving the commonest of `answers`."""
    answers = list(answers)
    return max(answers.count(a) for a in set(answers)) / len(answers)


def near_chance(accuracy, baseline_rate, n, alpha=0.05):
    """True when the accuracy is not significantly above `baseline_rate` (a one-sided binomial
    test): the model does not solve the task, so its probing scores say little about how it
    reasons."""
    from scipy.stats import binomtest

    return bool(binomtest(round(accuracy * n), n, baseline_rate, alternative="greater").pvalue > alpha)


def chance_check(accuracy, targets, answerers=None):
    """The model's accuracy against answering without it: always the commonest answer, and each
    of `answerers` ({name: one answer per example}, read off the input alone; see shortcuts.py).
    The commonest answer alone is too weak a bar: an untrained GPT-2 copies the last number, which
    beats it on the k-th smallest task. Returns the results fields: majority_rate, the rate of
    every answerer, the best one (`baseline`) and near_chance against it."""
    targets = list(targets)
    rates = {"commonest answer": majority_rate(targets)}
    for name, answers in (answerers or {}).items():
        rates[name] = float(np.mean([a == t for a, t in zip(answers, targets, strict=True)]))
    best = max(rates, key=rates.get)     # ties go to the commonest answer
    return {"majority_rate": rates["commonest answer"], "input_only_rates": rates,
            "baseline": best, "baseline_rate": rates[best],
            "near_chance": near_chance(accuracy, rates[best], len(targets))}


def chance_warning(where, what="its probing scores say little about how it reasons"):
    """The printed warning for settings that failed chance_check: {name: its chance_check fields}."""
    beaten = ", ".join(f"{name} ({check['baseline']} {check['baseline_rate']:.3f})"
                       for name, check in where.items())
    return (f"warning: the model's accuracy is not significantly above the best answerer that reads "
            f"only the input in {beaten}: it does not solve the task there, so {what} "
            "(input_only_rates in results.json).")


def summary_row(name, result):
    control = result.get("f1_text_control")
    extra = {} if control is None else {"f1_text_useful": control["useful"],
                                        "f1_text_depth": control["depth"]}
    return {"setting": name, "n": result["n_examples"], "accuracy": result.get("accuracy"),
            "f1_useful": result["f1"]["useful"], "f1_rand_useful": result["f1_random"]["useful"],
            "S_P1": result["probing_score"]["useful"],
            "f1_depth": result["f1"]["depth"], "f1_rand_depth": result["f1_random"]["depth"],
            "S_P2": result["probing_score"]["depth"],
            "best_layer_P1": result["best_layer"]["useful"],
            "best_layer_P2": result["best_layer"]["depth"], **extra}


SUMMARY_COLUMNS = ["setting", "n", "accuracy", "f1_useful", "f1_rand_useful", "S_P1", "f1_depth",
                   "f1_rand_depth", "S_P2", "best_layer_P1", "best_layer_P2"]
LAYER_COLUMNS = ["layer", "mode", "f1_useful", "f1_random_useful", "probing_score_useful",
                 "f1_depth", "f1_random_depth", "probing_score_depth"]


def layerwise_figure(name, rows, out):
    """F1 by layer, single and cumulative, for the model and the random twin."""
    save_figure(layerwise_plot(rows, f"{name}: layer-wise probing"), out, f"layerwise_{name}")


def report(out, meta, settings, started):
    """results.json, figures and printed tables; a single setting is also copied to the top level."""
    os.makedirs(out, exist_ok=True)
    for name, result in settings.items():
        layerwise_figure(name, result["layerwise"], out)
    results = {**meta, "settings": settings, "seconds": round(time.time() - started, 2),
               "versions": {"python": platform.python_version(), "torch": torch.__version__}}
    if len(settings) == 1:
        results.update(next(iter(settings.values())))
    write_json(os.path.join(out, "results.json"), results)
    if len(settings) == 1:
        print(format_table(next(iter(settings.values()))["layerwise"], LAYER_COLUMNS))
        print()
    rows = [summary_row(n, r) for n, r in settings.items()]
    columns = SUMMARY_COLUMNS + [c for c in ("f1_text_useful", "f1_text_depth") if c in rows[0]]
    print(format_table(rows, columns))
    if "f1_text_useful" in rows[0]:
        print("f1_text_*: the same probes on text-only features (statement kind, word overlap with the "
              "question, position): what wording alone gives away.")
    weak = {n: r for n, r in settings.items() if r.get("near_chance")}
    if weak:
        print(chance_warning(weak))
    asked = meta.get("probe", {}).get("neighbors")
    clamped = {n: k for n, r in settings.items() for k in r.get("neighbors_used", {}).values()
               if k is not None and asked is not None and k < asked}
    if clamped:
        print(f"note: --neighbors {asked} is more than some training folds hold; those probes used "
              f"fewer ({', '.join(f'{n}: {k}' for n, k in clamped.items())}; neighbors_used in "
              "results.json)")
    print(f"results: {os.path.join(out, 'results.json')}")
    return results


def accuracy(predicted, targets):
    return float(np.mean(np.asarray(predicted) == np.asarray(targets)))
