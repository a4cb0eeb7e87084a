"""Command-line flags generated from the configs: each flag is a config field of the same name
(--n-examples is TextConfig.n_examples; mechprobe/probing/config.py), made with config.option()
there, with its help, choices, bounds and default. A flag left out is None, so the dataclass's
default applies; a whole number's bounds are the option's, checked as the flag is parsed and
again when the config is built: every default and check is stated once, and the same flag means
the same thing in probe.py, knockout.py and corrupt.py. A short
helper of ours rather than transformers' HfArgumentParser: that one gives every field a flag,
where each script takes a chosen few fields of several configs (one of them nested)."""

import importlib
import os
import sys
import typing
from dataclasses import MISSING, fields

from mechprobe.cli import count
from mechprobe.probing.config import KSmallestConfig, ReadConfig, RunConfig, TextConfig


def add_config_flags(parser, config_class, chosen, help=None):
    """--field-name for each field of `config_class` named in `chosen` (made with option()):
    its type from the field's annotation (or the option's `type`), its choices, its help with
    the default; `help` replaces a field's help text ({name: text}) where a script reads it its
    own way (given verbatim: it says the default where the script has its own)."""
    by_name = {f.name: f for f in fields(config_class)}
    for name in chosen:
        meta = by_name[name].metadata
        default = by_name[name].default
        text = (help or {}).get(name)
        if text is None:      # the field's own help, with its default
            text = meta["help"]
            if default not in (None, False, MISSING):
                text += f" (default {default})"
            elif meta.get("unset"):
                text += f" (default: {meta['unset']})"
        kwargs = {"help": text.replace("%", "%%"), "default": None}
        kind = next((t for t in typing.get_args(by_name[name].type) or [by_name[name].type]
                     if t is not type(None)), str)
        if kind is bool:
            kwargs["action"] = "store_true"
        elif meta.get("low") is not None:       # the option's bounds, checked as it is parsed
            kwargs["type"] = count(meta["low"], meta.get("high"))
        else:
            kwargs["type"] = meta.get("type", kind if kind in (int, float) else str)
            if meta.get("choices") is not None:
                kwargs["choices"] = meta["choices"]
        parser.add_argument("--" + name.replace("_", "-"), **kwargs)


def import_task_modules(argv):
    """Import the modules named by --task-module (before the parser is built, so that the tasks
    they register are --task choices); returns argv without those flags. A module is looked up
    as Python imports it, and in the working directory."""
    argv = list(sys.argv[1:] if argv is None else argv)
    rest, modules = [], []
    while argv:
        arg = argv.pop(0)
        if arg == "--task-module" and argv:
            modules.append(argv.pop(0))
        elif arg.startswith("--task-module="):
            modules.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    if modules and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as err:
            from mechprobe.cli import UserError

            raise UserError(f"--task-module {name}: cannot import it ({err}); give a module "
                            "importable from the working directory, e.g. my_tasks for "
                            "./my_tasks.py") from None
    return rest


def add_task_module_arg(parser):
    """--task-module's help (import_task_modules reads the flag before the parser does)."""
    parser.add_argument("--task-module", metavar="MODULE", action="append",
                        help="import MODULE first (e.g. my_tasks for ./my_tasks.py), so the tasks "
                        "it registers can be named by --task (docs/ADD_A_TASK.md)")


def add_ksmallest_args(parser):
    """Flags naming the k-th smallest examples to analyse (probe, attn_visual, causal, knockout)."""
    add_config_flags(parser, KSmallestConfig, ["k", "list_len", "num_set", "n_examples"],
                     help={"n_examples": "k-th smallest: examples probed, drawn from a stream "
                           "fine-tuning never uses; text tasks: at most this many per bucket "
                           "(default 1024)"})
    parser.set_defaults(all_k=False)


def add_text_args(parser, help=None):
    """Flags of a text task's reading (probe.py, knockout.py, corrupt.py): its data, split,
    buckets and in-context prompts (`help`: as add_config_flags)."""
    add_config_flags(parser, TextConfig, ["data", "shots_data", "buckets", "only_buckets", "split",
                                          "icl", "shots", "prompt", "skip_long"], help)


def add_reading_args(parser, layers=True):
    """Flags of how attention becomes features (ReadConfig); `layers`: with --layers."""
    add_config_flags(parser, ReadConfig, ["layers"] * layers + ["per_head", "query_pool",
                                                                "statement_pool",
                                                                "max_batch_tokens"])


def add_probe_args(parser):
    """Flags of the probe and its cross-validation (RunConfig)."""
    add_config_flags(parser, RunConfig, ["probe", "neighbors", "p", "probe_c", "folds"])
