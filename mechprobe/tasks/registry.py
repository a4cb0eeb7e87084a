"""The registry of tasks by name: the shipped ones (imported here, so that they register
themselves) and any registered with mechprobe.tasks.base.register. probe.py's --task choices,
the configs and the runners read it."""

from mechprobe.cli import UserError
from mechprobe.tasks import arc, chains, jsonl, ksmallest, proofwriter  # noqa: F401  (they register)
from mechprobe.tasks.base import TASKS


def task_named(name, config=None):
    """The registered task `name`, made for `config` (a TextConfig, or None)."""
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}: use one of {', '.join(TASKS)}")
    return TASKS[name](config)


def task_names():
    """The registered tasks' names, the shipped ones first."""
    return list(TASKS)
