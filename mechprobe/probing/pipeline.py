"""Probing runs shared by every task: model and random twin, features, probes, report.

The library's entry for a notebook: RunConfig/ReadConfig say what to probe and how, a task runner
(mechprobe.probing.text.probe_questions, mechprobe.probing.ksmallest.probe_numbers) returns a
ProbeResult, whose save() writes results.json and the figures.
"""

import os
import platform
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from mechprobe import seeds
from mechprobe.cli import DEVICE_MAPS, UserError, format_table, require, whole
from mechprobe.attention.features import POOLS, extract, shared_prefix
from mechprobe.models import input_device, load_pretrained, resolve_device, resolve_dtype
from mechprobe.outputs import make_dirs, output_dir, write_json, write_lines
from mechprobe.parallel import gathered, my_share, processes, world_size
from mechprobe.plots import layerwise_plot, save_figure
from mechprobe.probing.bootstrap import bootstrap
from mechprobe.probing.intervals_table import beside_scores, interval_report, summary_columns
from mechprobe.probing.knn import (ProbeConfig, Samples, best_layer, neighbors_used,
                                    overall_layerwise_predictions)
from mechprobe.probing.predictions import SettingPredictions, write_predictions
from mechprobe.probing.report_html import notebook_html, report_html
from mechprobe.probing.tree_recovery import tree_recovery
from mechprobe.attention.memory import PeakMemory
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


@dataclass
class ReadConfig:
    """How attention rows become per-statement features (docs/METHOD.md, "Features")."""

    layers: str | None = None          # '0-16,19,28' (0-based) or None for every layer
    per_head: bool = False             # one feature per head instead of the head mean
    query_pool: str | None = None      # pooling over query tokens; None: the task's default
    statement_pool: str = "mean"       # pooling over a statement's tokens
    batch_size: int | None = None      # examples per forward pass; None: the task's default
    max_batch_tokens: int = 1024       # padded tokens per forward pass (memory)

    def __post_init__(self):
        require(self.layers is None or isinstance(self.layers, str),
                f"ReadConfig.layers must be a string like '0-16,19' or None, got {self.layers!r}")
        require(self.query_pool in (None, *POOLS), f"ReadConfig.query_pool must be one of {POOLS} "
                f"or None, got {self.query_pool!r}")
        require(self.statement_pool in POOLS, f"ReadConfig.statement_pool must be one of {POOLS}, "
                f"got {self.statement_pool!r}")
        require(self.batch_size is None or whole(self.batch_size, 1),
                f"ReadConfig.batch_size must be a whole number >= 1 or None, got {self.batch_size!r}")
        require(whole(self.max_batch_tokens, 1), "ReadConfig.max_batch_tokens must be a whole "
                f"number >= 1, got {self.max_batch_tokens!r}")

    def with_defaults(self, query_pool, batch_size):
        """This config with a task's defaults filled in where the user left a field unset."""
        return replace(self, query_pool=self.query_pool or query_pool,
                       batch_size=self.batch_size or batch_size)


@dataclass
class RunConfig:
    """What every probing run shares: the model, where it runs, the seed, reading and probing."""

    model: str | None = None           # hub id or folder (recorded; load_model loads it)
    device: str = "auto"               # auto, cpu, cuda, cuda:N
    dtype: str = "auto"                # auto, float32, bfloat16, float16
    seed: int = 0
    read: ReadConfig = field(default_factory=ReadConfig)
    neighbors: int = 8                 # kNN neighbours
    p: int | None = None               # kNN Minkowski p; None: the task's default
    folds: int = 5                     # cross-validation folds
    device_map: str | None = None      # auto, balanced, sequential: a model over several devices
    max_memory: dict | None = None     # with device_map: {0: "20GiB", "cpu": "60GiB"}
    offload_folder: str | None = None  # with device_map: where layers go that fit nowhere else

    def __post_init__(self):
        require(whole(self.seed, 0, 2**32 - 1), f"RunConfig.seed must be a whole number from 0 to "
                f"2**32-1, got {self.seed!r}")
        require(isinstance(self.read, ReadConfig), "RunConfig.read must be a ReadConfig")
        require(whole(self.neighbors, 1), f"RunConfig.neighbors must be at least 1, got "
                f"{self.neighbors!r}")
        require(self.p in (None, 1, 2), f"RunConfig.p must be 1, 2 or None, got {self.p!r}")
        require(whole(self.folds, 2), f"RunConfig.folds must be at least 2 (cross-validation), "
                f"got {self.folds!r}")
        require(self.dtype in ("auto", "float32", "bfloat16", "float16"),
                f"RunConfig.dtype must be auto, float32, bfloat16 or float16, got {self.dtype!r}")
        require(self.device_map in (None, *DEVICE_MAPS), f"RunConfig.device_map must be one of "
                f"{DEVICE_MAPS} or None, got {self.device_map!r}")
        if self.offload_folder is not None and os.path.exists(self.offload_folder):
            require(os.path.isdir(self.offload_folder), f"RunConfig.offload_folder "
                    f"{self.offload_folder} is a file: give a folder (created if missing)")

    def placement(self):
        """from_pretrained's keywords that spread the model over devices (None: one --device)."""
        if self.device_map is None:
            if self.max_memory or self.offload_folder:
                raise UserError("--max-memory and --offload-folder go with --device-map (auto, "
                                "balanced or sequential): add it, or drop them")
            return None
        return {"device_map": self.device_map, "max_memory": self.max_memory,
                "offload_folder": self.offload_folder}

    @classmethod
    def from_args(cls, args):
        """The command line's flags as a config; flags an entry point does not have (attn_visual
        has no kNN flags) keep the defaults."""
        def flag(name, default):
            return getattr(args, name, default)

        read = ReadConfig(layers=flag("layers", None), per_head=flag("per_head", False),
                          query_pool=flag("query_pool", None),
                          statement_pool=flag("statement_pool", "mean"),
                          batch_size=args.batch_size, max_batch_tokens=flag("max_batch_tokens", 1024))
        return cls(model=args.model, device=args.device, dtype=args.dtype, seed=args.seed,
                   read=read, neighbors=flag("neighbors", 8), p=flag("p", None),
                   folds=flag("folds", 5), device_map=flag("device_map", None),
                   max_memory=flag("max_memory", None), offload_folder=flag("offload_folder", None))

    def knn(self, default_p):
        return ProbeConfig(neighbors=self.neighbors, p=self.p or default_p, folds=self.folds,
                           seed=self.seed)


@dataclass
class ProbeResult:
    """One probing run: `settings` maps each probed setting (a k, a bucket) to its scores (f1,
    f1_random, probing_score, layerwise rows, best_layer, accuracy, ...); `meta` says how."""

    meta: dict
    settings: dict
    # {setting: SettingPredictions}; probe_setting hands them over inside its result, taken out
    # here so that `settings` stays what results.json holds
    predictions: dict = field(default_factory=dict)

    def __post_init__(self):
        for name, result in self.settings.items():
            if "predictions" in result:
                self.predictions[name] = result.pop("predictions")

    def summary(self):
        """One row per setting: accuracy, F1s, S_P1, S_P2, best layers (the printed table)."""
        return [summary_row(name, result) for name, result in self.settings.items()]

    def layerwise(self, setting=None):
        """The layer-wise rows of a setting (default: the only or first one)."""
        return self.settings[setting or next(iter(self.settings))]["layerwise"]

    def to_json(self):
        results = {**self.meta, "settings": self.settings,
                   "versions": {"python": platform.python_version(), "torch": torch.__version__}}
        if len(self.settings) == 1:    # a single setting is also copied to the top level
            results.update(next(iter(self.settings.values())))
        return results

    def save(self, out, force=False):
        """OUT/results.json, OUT/predictions.jsonl, OUT/report.html and
        OUT/layerwise_<setting>.{png,pdf}, with probe.py's safety: a folder of files this tool
        did not write is refused unless force, nothing is left half-written. Returns the results
        dict."""
        with output_dir(out, force, flag="out", command="probe.py"):
            return self.write(out)

    def write(self, out):
        """save's files, into a folder the caller already holds (the runners' output_dir)."""
        make_dirs(out)
        for name, result in self.settings.items():
            layerwise_figure(name, result["layerwise"], out)
        if self.predictions:
            write_predictions(os.path.join(out, "predictions.jsonl"), self.predictions)
        write_lines(os.path.join(out, "report.html"), [report_html(self)])
        results = self.to_json()
        write_json(os.path.join(out, "results.json"), results)
        return results

    def _repr_html_(self):
        """A notebook shows the run as its report.html (report_html.py)."""
        return notebook_html(self)

    def summary_columns(self, rows):
        """The printed summary's columns for these summary() rows."""
        columns = SUMMARY_COLUMNS + [c for c in ("f1_text_useful", "f1_text_depth") if c in rows[0]]
        if "balanced_acc" in rows[0]:    # text tasks: beside the best baseline
            at = columns.index("accuracy") + 1
            columns[at:at] = ["balanced_acc", "baseline"]
            if any("acc_control" in row for row in rows):
                columns.insert(at + 2, "acc_control")
        return beside_scores(columns + [c for c in summary_columns(
            next(iter(self.settings.values()))) if c in rows[0]])

    def report(self):
        """The printed tables and warnings, as text."""
        lines = []
        if len(self.settings) == 1:
            lines += [format_table(self.layerwise(), LAYER_COLUMNS), ""]
        rows = self.summary()
        lines.append(format_table(rows, self.summary_columns(rows)))
        intervals = interval_report(self.settings)
        if intervals:
            lines.append(intervals)
        if "f1_text_useful" in rows[0]:
            lines.append("f1_text_*: the same probes on text-only features (statement kind, word "
                         "overlap with the question, position): what wording alone gives away.")
        # Where an input-only answerer is right on every question, no accuracy can beat it:
        # that says nothing about the model, so those settings get the caveat, not the warning.
        exact = {n: r for n, r in self.settings.items() if r.get("baseline_exact")}
        weak = {n: r for n, r in self.settings.items() if r.get("near_chance") and n not in exact}
        if exact:
            lines.append(shortcut_caveat(exact))
        if weak:
            lines.append(chance_warning(weak))
        asked = self.meta.get("probe", {}).get("neighbors")
        clamped = {n: k for n, r in self.settings.items()
                   for k in r.get("neighbors_used", {}).values()
                   if k is not None and asked is not None and k < asked}
        if clamped:
            lines.append(f"note: --neighbors {asked} is more than some training folds hold; those "
                         f"probes used fewer ({', '.join(f'{n}: {k}' for n, k in clamped.items())}; "
                         "neighbors_used in results.json)")
        return "\n".join(lines)


def check_model_name(name):
    """'tiny' names a model to build, not one to probe."""
    if name == "tiny":
        raise UserError("--model must name a trained model: fine-tune one first "
                        "(python finetune_gpt2.py --task min01 --out runs/tiny-min01) and pass "
                        "--model runs/tiny-min01/model, or pass a hub id / local directory")


def load_model(name, device="auto", dtype="auto", placement=None):
    """The probed model and its tokenizer (a hub id or local folder), in eval mode; where inputs
    go is models.input_device(model). `placement` (RunConfig.placement()) spreads a large model
    over several devices."""
    check_model_name(name)
    state = processes()
    # Several processes: each on its own device (accelerate knows which), unless one was named.
    device = state.device if state is not None and device == "auto" else resolve_device(device)
    model, tokenizer = load_pretrained(name, dtype=resolve_dtype(dtype, device), placement=placement)
    if not placement:
        model = model.to(device)
    return model.eval(), tokenizer


def twin_seed(seed):
    """The random twin's initialisation seed: derived from --seed but not equal to it, so that a
    model which is itself a random init from that seed (make_data.py llama) is not its own twin."""
    return int(seeds.rng(seed, seeds.TWIN).integers(2**31))


def random_twin(model, seed):
    """The same architecture, randomly initialised (the probing score's baseline)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(twin_seed(seed))
    twin = AutoModelForCausalLM.from_config(model.config, dtype=model.dtype)
    layout = getattr(model, "hf_device_map", None)
    if layout and len(set(layout.values())) > 1:
        from accelerate import dispatch_model

        # The twin's weights are fresh: what the model keeps on disk, the twin keeps in memory.
        layout = {name: "cpu" if where == "disk" else where for name, where in layout.items()}
        return dispatch_model(twin, device_map=layout).eval()
    return twin.to(input_device(model)).eval()


def features_of(model, examples, layers, read, pad_id, logit_ids=None, desc="attention"):
    """Per example its (statements, layers, features) array, the predicted next token, and the
    logits of `logit_ids` (ReadConfig `read` with the task's defaults filled in)."""
    return extract(Recorder(model), examples, layers, read.batch_size, per_head=read.per_head,
                   query_pool=read.query_pool, statement_pool=read.statement_pool, pad_id=pad_id,
                   logit_ids=logit_ids, max_tokens=read.max_batch_tokens, desc=desc)


def features_shared(model, examples, layers, read, pad_id, logit_ids=None, desc="attention"):
    """features_of, with several processes each reading its share (gathered on every process)."""
    share = my_share(len(examples))
    columns = features_of(model, [examples[i] for i in share], layers, read, pad_id, logit_ids, desc)
    return gathered(share, list(columns), len(examples))


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
    result["neighbors_used"] = neighbors_used(model_samples, config)
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
            "near_chance": near_chance(accuracy, rates[best], len(targets)),
            "baseline_exact": rates[best] == 1.0}


def shortcut_caveat(where):
    """The printed caveat for settings whose best input-only answerer is right on every question
    ({name: its chance_check fields, with shortcut_control where measured})."""
    by_answerer = {}
    for name, check in where.items():
        by_answerer.setdefault(check["baseline"], []).append(name)
    named = "; ".join(f"{', '.join(names)} ({answerer})" for answerer, names in by_answerer.items())
    measured = [name for name, check in where.items()
                if (check.get("shortcut_control") or {}).get("accuracy") is not None]
    return (f"caveat: an answerer that reads only the input is right on every probed question in "
            f"{named}: accuracy there cannot separate reasoning from that rule, high or low "
            "(METHOD.md section 9)"
            + (f"; acc_control is the accuracy on same-depth questions it gets wrong "
               f"({', '.join(measured)})." if measured else
               "; no same-depth question it gets wrong was found to check the model on."
               if any("shortcut_control" in check for check in where.values()) else "."))


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
    if "balanced_accuracy" in result:   # text tasks: beside accuracy and the best baseline
        control = result.get("shortcut_control")
        extra = {"balanced_acc": result["balanced_accuracy"], "baseline": result["baseline_rate"],
                 **({} if control is None else {"acc_control": control["accuracy"]}), **extra}
    return {"setting": name, "n": result["n_examples"], "accuracy": result.get("accuracy"),
            "f1_useful": result["f1"]["useful"], "f1_rand_useful": result["f1_random"]["useful"],
            "S_P1": result["probing_score"]["useful"],
            "f1_depth": result["f1"]["depth"], "f1_rand_depth": result["f1_random"]["depth"],
            "S_P2": result["probing_score"]["depth"],
            "best_layer_P1": result["best_layer"]["useful"],
            "best_layer_P2": result["best_layer"]["depth"], **extra, **summary_columns(result)}


SUMMARY_COLUMNS = ["setting", "n", "accuracy", "f1_useful", "f1_rand_useful", "S_P1", "f1_depth",
                   "f1_rand_depth", "S_P2", "best_layer_P1", "best_layer_P2"]
LAYER_COLUMNS = ["layer", "mode", "f1_useful", "f1_random_useful", "probing_score_useful",
                 "f1_depth", "f1_random_depth", "probing_score_depth"]


def layerwise_figure(name, rows, out):
    """F1 by layer, single and cumulative, for the model and the random twin."""
    save_figure(layerwise_plot(rows, f"{name}: layer-wise probing"), out, f"layerwise_{name}")


def report(out, meta, settings, started, predictions=None):
    """Save and print a run: results.json, predictions.jsonl, figures and the tables; returns
    the results dict."""
    result = ProbeResult({**meta, "seconds": round(time.time() - started, 2)}, settings,
                         predictions or {})
    results = result.write(out)
    print(result.report())
    print(f"results: {os.path.join(out, 'results.json')}")
    return results


def accuracy(predicted, targets):
    return float(np.mean(np.asarray(predicted) == np.asarray(targets)))
