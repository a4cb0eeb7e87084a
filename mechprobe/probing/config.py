"""The configs of a probing run, validated when built (messages name fields; the command line
turns ReadConfig.layers into --layers): what to probe (TextConfig, KSmallestConfig), how
attention is read (ReadConfig), and the model, seed and kNN probe (RunConfig)."""

import os
from dataclasses import dataclass, field, fields, replace

from mechprobe.attention.features import POOLS
from mechprobe.cli import DEVICE_MAPS, ConfigError, require, whole
from mechprobe.probing.crossval import ProbeConfig
from mechprobe.probing.probes import PROBES, Probe
from mechprobe.tasks.base import TASKS
from mechprobe.tasks.registry import task_names
from mechprobe.tasks.prompts import PROMPT_STYLES, SHOT_MODES


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
    probe: object = ProbeConfig.probe  # knn, logistic, a probes.Probe or a scikit-learn classifier
    neighbors: int = ProbeConfig.neighbors   # knn: neighbours
    p: int | None = None               # knn: Minkowski p; None: the task's default
    probe_c: float = ProbeConfig.c     # logistic: inverse regularisation strength
    folds: int = ProbeConfig.folds     # cross-validation folds
    device_map: str | None = None      # auto, balanced, sequential: a model over several devices
    max_memory: dict | None = None     # with device_map: {0: "20GiB", "cpu": "60GiB"}
    offload_folder: str | None = None  # with device_map: where layers go that fit nowhere else

    def __post_init__(self):
        require(whole(self.seed, 0, 2**32 - 1), f"RunConfig.seed must be a whole number from 0 to "
                f"2**32-1, got {self.seed!r}")
        require(isinstance(self.read, ReadConfig), "RunConfig.read must be a ReadConfig")
        require(self.probe in PROBES or isinstance(self.probe, Probe) or (
                hasattr(self.probe, "fit") and hasattr(self.probe, "predict")),
                f"RunConfig.probe must be one of {PROBES}, a probes.Probe or a scikit-learn "
                f"classifier, got {self.probe!r}")
        require(whole(self.neighbors, 1), f"RunConfig.neighbors must be at least 1, got "
                f"{self.neighbors!r}")
        require(isinstance(self.probe_c, (int, float)) and not isinstance(self.probe_c, bool)
                and 0 < self.probe_c < float("inf"), "RunConfig.probe_c must be a number above 0, "
                f"got {self.probe_c!r}")
        require(self.p in (None, 1, 2), f"RunConfig.p must be 1, 2 or None, got {self.p!r}")
        require(whole(self.folds, 2), f"RunConfig.folds must be at least 2 (cross-validation), "
                f"got {self.folds!r}")
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
    data: str | None = None            # the data folder (jsonl: the file); checked on load
    split: str = "test"                # probed split (shots always come from train)
    icl: int = 0                       # in-context shots per prompt (0: the fine-tuned setting)
    shots: str = "per-question"        # or "fixed": one shot set for every question
    prompt: str = "plain"              # or "chat": shots and question in the chat template
    skip_long: bool = False            # leave out (and count) prompts longer than the model's limit
    buckets: str = "exact"             # ProofWriter depth-1 buckets: exact or upto
    n_examples: int = 1024             # at most this many questions per bucket
    shots_data: str | None = None      # jsonl: the file shots come from (default: the same file)
    only_buckets: tuple | None = None  # probe these buckets only (None: every bucket)

    def __post_init__(self):
        texts = [name for name in task_names() if TASKS[name].family == "text"]
        require(self.task in texts, f"TextConfig.task must be one of {', '.join(texts)}, got "
                f"{self.task!r}")
        require(self.split in ("train", "dev", "test"), "TextConfig.split must be train, dev or "
                f"test, got {self.split!r}")
        require(whole(self.icl, 0, 64), f"TextConfig.icl must be a whole number from 0 to 64, got "
                f"{self.icl!r}")
        require(self.shots in SHOT_MODES, f"TextConfig.shots must be one of {SHOT_MODES}, got "
                f"{self.shots!r}")
        require(self.prompt in PROMPT_STYLES, f"TextConfig.prompt must be one of {PROMPT_STYLES}, "
                f"got {self.prompt!r}")
        require(self.buckets in ("exact", "upto"), "TextConfig.buckets must be exact or upto, got "
                f"{self.buckets!r}")
        require(whole(self.n_examples, 1, 10**6), "TextConfig.n_examples must be a whole number "
                f"from 1 to 1,000,000, got {self.n_examples!r}")
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

    k: int | None = None               # 0-based: 1 = the second smallest
    list_len: int | None = None        # numbers per example (paper: 16)
    num_set: int | None = None         # size of the number set (paper: 512)
    n_examples: int = 1024             # examples probed, from a stream fine-tuning never uses
    all_k: bool = False                # probe every k in 0..L/2-1 on the same attention

    def __post_init__(self):
        for name, low, high in (("k", 0, 1023), ("list_len", 2, 1024), ("num_set", 2, 10**6)):
            value = getattr(self, name)
            require(value is None or whole(value, low, high), f"KSmallestConfig.{name} must be a "
                    f"whole number from {low} to {high:,} or None, got {value!r}")
        require(whole(self.n_examples, 1, 10**6), "KSmallestConfig.n_examples must be a whole "
                f"number from 1 to 1,000,000, got {self.n_examples!r}")
