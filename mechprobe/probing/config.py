"""The configs of a probing run, validated when built (messages name fields; the command line
turns ReadConfig.layers into --layers): what to probe (TextConfig, KSmallestConfig), how
attention is read (ReadConfig), and the model, seed and probe (RunConfig).

A field made with option() is also a command-line flag of the same name (--max-batch-tokens is
ReadConfig.max_batch_tokens): mechprobe/flags.py generates the flags from these fields, so each
default, help text and check is stated once, here, and the command line's values go through the
same validation as the library's."""

import os
from dataclasses import dataclass, field, fields, replace

from mechprobe.attention.features import POOLS
from mechprobe.cli import DEVICE_MAPS, ConfigError, names, require, whole
from mechprobe.probing.crossval import ProbeConfig
from mechprobe.probing.probes import PROBES, make_probe
from mechprobe.tasks.base import TASKS
from mechprobe.tasks.registry import task_names
from mechprobe.tasks.prompts import PROMPT_STYLES, SHOT_MODES


def option(default, help, unset=None, low=None, high=None, **flag):
    """A config field that is also a flag: `help` says what it is, `unset` what a default of
    None means ("the task's"); a whole number from `low` to `high` (None: no upper bound) is
    checked by check_options when the config is built and by the flag when it is parsed (the
    same rule, stated here once); `flag` argparse keywords (choices, type) where the field's
    type does not say them (mechprobe/flags.py add_config_flags)."""
    return field(default=default, metadata={"help": help, "unset": unset, "low": low,
                                            "high": high, **flag})


def check_options(config):
    """The whole-number fields of `config` (option(low=...)) within their bounds; None only
    where the default is None."""
    for f in fields(config):
        low, high = f.metadata.get("low"), f.metadata.get("high")
        value = getattr(config, f.name)
        if low is None or (value is None and f.default is None):
            continue
        bound = f"from {low} to {high:,}" if high is not None else f"of at least {low}"
        require(whole(value, low, high), f"{type(config).__name__}.{f.name} must be a whole "
                f"number {bound}{' or None' if f.default is None else ''}, got {value!r}")


def from_args(cls, args, **given):
    """A config from the command line's flags, which bear its fields' names (--icl is icl); a
    field without a flag, or a flag left unset (None), keeps the dataclass's default, so
    defaults are stated once, there."""
    values = {f.name: getattr(args, f.name) for f in fields(cls)
              if f.name not in given and getattr(args, f.name, None) is not None}
    return cls(**values, **given)


class FromArgs:
    """Configs built from the command line: Config.from_args(args) (see from_args)."""

    @classmethod
    def from_args(cls, args):
        return from_args(cls, args)


def parse_layers(spec, n_layers):
    """'0-16,19,28' -> [0..16, 19, 28] (0-based); None -> every layer."""
    if spec is None:
        return list(range(n_layers))
    layers = []
    for part in spec.split(","):
        try:
            first, last = (int(x) for x in part.split("-")) if "-" in part else (int(part),) * 2
        except ValueError:
            raise ConfigError(f"ReadConfig.layers '{spec}' is not a list like 0-16,19,28") from None
        if first > last:
            raise ConfigError(f"ReadConfig.layers '{spec}': the range {part} is reversed; write "
                              f"{last}-{first}")
        layers.extend(range(first, last + 1))
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad or not layers:
        raise ConfigError(f"ReadConfig.layers '{spec}': the model has layers 0-{n_layers - 1} "
                          "(0-based)")
    return sorted(set(layers))


@dataclass
class ReadConfig:
    """How attention rows become per-statement features (docs/METHOD.md, "Features")."""

    layers: str | None = option(None, "0-based layer subset, e.g. 0-16,19,28",
                                unset="every layer")
    per_head: bool = option(False, "one feature per head instead of the head mean")
    query_pool: str | None = option(None, "pooling over query tokens", choices=POOLS,
                                    unset="max with --icl, else mean")
    statement_pool: str = option("mean", "pooling over a statement's tokens", choices=POOLS)
    batch_size: int | None = None      # examples per forward pass; None: the task's default
    max_batch_tokens: int = option(1024, "cap on padded tokens per forward pass (memory: raise "
                                   "it on a GPU); --batch-size caps examples", low=1, high=2**24)

    def __post_init__(self):
        require(self.layers is None or isinstance(self.layers, str),
                f"ReadConfig.layers must be a string like '0-16,19' or None, got {self.layers!r}")
        require(self.query_pool in (None, *POOLS), f"ReadConfig.query_pool must be one of {POOLS} "
                f"or None, got {self.query_pool!r}")
        require(self.statement_pool in POOLS, f"ReadConfig.statement_pool must be one of {POOLS}, "
                f"got {self.statement_pool!r}")
        require(self.batch_size is None or whole(self.batch_size, 1),
                f"ReadConfig.batch_size must be a whole number >= 1 or None, got {self.batch_size!r}")
        check_options(self)

    def with_defaults(self, query_pool, batch_size):
        """This config with a task's defaults filled in where the user left a field unset."""
        return replace(self, query_pool=self.query_pool or query_pool,
                       batch_size=self.batch_size or batch_size)


MEMORY_DEVICES = ("cpu", "mps", "disk")   # accelerate's max_memory keys besides GPU numbers


def check_max_memory(limits):
    """RunConfig.max_memory must name devices this machine has: for a GPU number past them
    accelerate only logs a warning, then loading fails with an error that reads as a damaged
    model folder."""
    require(isinstance(limits, dict) and limits, "RunConfig.max_memory must map devices to sizes, "
            f"e.g. {{0: '20GiB', 'cpu': '60GiB'}}, got {limits!r}")
    for device in limits:
        require(whole(device, 0) or device in MEMORY_DEVICES, f"RunConfig.max_memory names device "
                f"{device!r}, which is not a GPU number (0, 1, ...), cpu, mps or disk")
    gpus = sorted(device for device in limits if not isinstance(device, str))
    if gpus:
        import torch

        count = (torch.accelerator.device_count() if hasattr(torch, "accelerator")
                 else torch.cuda.device_count())
        have = "no GPU" if count == 0 else f"GPU{'s 0-' if count > 1 else ' '}{count - 1}"
        require(gpus[-1] < count, f"RunConfig.max_memory names GPU {gpus[-1]}, but this machine "
                f"has {have}: give sizes for the devices it has (GPU numbers, cpu, mps or disk)")


@dataclass
class RunConfig:
    """What every probing run shares: the model, where it runs, the seed, reading and probing."""

    model: str | None = None           # hub id or folder (recorded; load_model loads it)
    device: str = "auto"               # auto, cpu, cuda, cuda:N
    dtype: str = "auto"                # auto, float32, bfloat16, float16
    seed: int = 0
    read: ReadConfig = field(default_factory=ReadConfig)
    # the probe: knn, logistic, a probes.Probe or (from the API) a scikit-learn classifier
    probe: object = option(ProbeConfig.probe, "the classifier that reads the tree: knn (the "
                           "paper's) or logistic (scikit-learn's LogisticRegression on "
                           "standardised features)", choices=PROBES, type=str)
    neighbors: int = option(ProbeConfig.neighbors, "knn: neighbours", low=1, high=10**6)
    p: int | None = option(None, "knn: distance, 2 Euclidean, 1 Manhattan", choices=[1, 2],
                           unset="the task's")
    probe_c: float = option(ProbeConfig.c, "logistic: inverse regularisation strength")
    folds: int = option(ProbeConfig.folds, "cross-validation folds, grouped by example "
                        "(ProofWriter: by theory, since its questions share the context)",
                        low=2, high=1000)
    device_map: str | None = None      # auto, balanced, sequential: a model over several devices
    max_memory: dict | None = None     # with device_map: {0: "20GiB", "cpu": "60GiB"}
    offload_folder: str | None = None  # with device_map: where layers go that fit nowhere else

    def __post_init__(self):
        require(whole(self.seed, 0, 2**32 - 1), f"RunConfig.seed must be a whole number from 0 to "
                f"2**32-1, got {self.seed!r}")
        require(isinstance(self.read, ReadConfig), "RunConfig.read must be a ReadConfig")
        check_options(self)
        try:     # the probe's own check (probes.make_probe), under this field's name
            make_probe(self.probe)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        require(isinstance(self.probe_c, (int, float)) and not isinstance(self.probe_c, bool)
                and 0 < self.probe_c < float("inf"), "RunConfig.probe_c must be a number above 0, "
                f"got {self.probe_c!r}")
        require(self.p in (None, 1, 2), f"RunConfig.p must be 1, 2 or None, got {self.p!r}")
        require(self.dtype in ("auto", "float32", "bfloat16", "float16"),
                f"RunConfig.dtype must be auto, float32, bfloat16 or float16, got {self.dtype!r}")
        require(self.device_map in (None, *DEVICE_MAPS), f"RunConfig.device_map must be one of "
                f"{DEVICE_MAPS} or None, got {self.device_map!r}")
        if self.max_memory is not None:
            check_max_memory(self.max_memory)
        if self.offload_folder is not None and os.path.exists(self.offload_folder):
            require(os.path.isdir(self.offload_folder), f"RunConfig.offload_folder "
                    f"{self.offload_folder} is a file: give a folder (created if missing)")

    def placement(self):
        """from_pretrained's keywords that spread the model over devices (None: one --device)."""
        if self.device_map is None:
            if self.max_memory or self.offload_folder:
                raise ConfigError("RunConfig.max_memory and RunConfig.offload_folder go with "
                                  "RunConfig.device_map (auto, balanced or sequential): add it, or "
                                  "drop them")
            return None
        return {"device_map": self.device_map, "max_memory": self.max_memory,
                "offload_folder": self.offload_folder}

    @classmethod
    def from_args(cls, args):
        """The command line's flags as a config (flags an entry point lacks keep the defaults:
        attn_visual has no kNN flags)."""
        return from_args(cls, args, read=from_args(ReadConfig, args))

    def layers_of(self, model):
        """The probed layers of `model` (read.layers checked against its depth)."""
        return parse_layers(self.read.layers, model.config.get_text_config().num_hidden_layers)

    def probing(self, default_p):
        """The ProbeConfig of this run (`default_p`: the task's kNN distance)."""
        return ProbeConfig(neighbors=self.neighbors, p=self.p or default_p, folds=self.folds,
                           seed=self.seed, probe=self.probe, c=self.probe_c, device=self.device)


@dataclass
class TextConfig(FromArgs):
    """What a text task's run probes (probe.py --task proofwriter|arc|jsonl|a registered task)."""

    task: str                          # a text task's name (mechprobe/tasks/base.py registry)
    data: str | None = option(None, "ProofWriter: the release root, its CWA folder, or the "
                              "folder of the paper's preprocessed {train,dev,test}.json; ARC: the "
                              "folder of STREET's reasoning_annotated_*.jsonl or the preprocessed "
                              "files; either: a download of the authors' dataset repo (its "
                              "data/<task> is used) or hf:yyyyifan/MechanisticProbe_ProofWriter_ARC "
                              "from the local HF cache; jsonl: a .jsonl, .parquet, .csv or .json "
                              "file, a save_to_disk folder, or hf:ORG/NAME from the local HF cache "
                              "(docs/DATA.md)")
    split: str = option("test", "split read (in-context shots always come from train)",
                        choices=["train", "dev", "test"])
    icl: int = option(0, "in-context examples before each question (0 = the fine-tuned-model "
                      "setting)", low=0, high=64)
    shots: str = option("per-question", "with --icl: draw the shots for each question "
                        "(per-question: the paper; seeded by --seed and the question) or use one "
                        "fixed set for every question", choices=SHOT_MODES)
    prompt: str = option("plain", "plain: the paper's prompt text; chat: the same shots and "
                         "question as turns of the tokenizer's chat template (instruct models)",
                         choices=PROMPT_STYLES)
    skip_long: bool = option(False, "leave out prompts longer than the model's positions "
                             "(counted in the output) instead of stopping")
    buckets: str = option("exact", "ProofWriter depth-1 buckets m=2,4,...,24: 'exact' keeps "
                          "questions whose theory has exactly m statements (the paper), 'upto' "
                          "puts each in the smallest bucket >= m (the earlier grouping)",
                          choices=["exact", "upto"])
    n_examples: int = option(1024, "at most this many questions per bucket", low=1, high=10**6)
    shots_data: str | None = option(None, "jsonl with --icl: the file in-context shots come from",
                                    unset="the same file's other lines")
    only_buckets: tuple | None = option(None, "these buckets only, e.g. m=1,m=4",
                                        unset="every bucket", type=names)

    def __post_init__(self):
        texts = [name for name in task_names() if TASKS[name].family == "text"]
        require(self.task in texts, f"TextConfig.task must be one of {', '.join(texts)}, got "
                f"{self.task!r}")
        require(self.split in ("train", "dev", "test"), "TextConfig.split must be train, dev or "
                f"test, got {self.split!r}")
        check_options(self)
        require(self.shots in SHOT_MODES, f"TextConfig.shots must be one of {SHOT_MODES}, got "
                f"{self.shots!r}")
        require(self.prompt in PROMPT_STYLES, f"TextConfig.prompt must be one of {PROMPT_STYLES}, "
                f"got {self.prompt!r}")
        require(self.buckets in ("exact", "upto"), "TextConfig.buckets must be exact or upto, got "
                f"{self.buckets!r}")
        require(self.only_buckets is None or (
                isinstance(self.only_buckets, (list, tuple)) and self.only_buckets
                and all(isinstance(b, str) and b for b in self.only_buckets)),
                "TextConfig.only_buckets must be a list of bucket names (e.g. ['m=1', 'm=4']) or "
                f"None, got {self.only_buckets!r}")
        for name in ("buckets", "shots_data"):    # options only some tasks read
            default = next(f.default for f in fields(self) if f.name == name)
            readers = [t for t in texts if name in TASKS[t].options]
            require(getattr(self, name) == default or self.task in readers,
                    f"TextConfig.{name} does not go with task {self.task}: only task "
                    f"{' and '.join(readers)} reads it")


@dataclass
class KSmallestConfig(FromArgs):
    """Which k-th smallest examples a run reads (probe.py --task ksmallest, attn_visual, causal);
    unset fields come from the model's task.json, then the paper's defaults."""

    k: int | None = option(None, "k-th smallest, 0-based (1: the second smallest)",
                           unset="the model's task.json", low=0, high=1023)
    list_len: int | None = option(None, "numbers per example (paper: 16)",
                                  unset="the model's task", low=2, high=1024)
    num_set: int | None = option(None, "size of the number set (paper: 512)",
                                 unset="the model's task", low=2, high=10**6)
    n_examples: int = option(1024, "examples probed, drawn from a stream fine-tuning never uses",
                             low=1, high=10**6)
    all_k: bool = option(False, "probe every k in 0..L/2-1 on the same attention (the paper's "
                         "pretrained comparison)")

    def __post_init__(self):
        check_options(self)
