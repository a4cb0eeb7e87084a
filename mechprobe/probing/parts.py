"""Which part reads which task: the part of each task family, looked up by task name. A new
family (examples that are not statements in a prompt) registers its part here with
register_part; a new text task needs nothing here (docs/ADD_A_TASK.md)."""

from mechprobe.cli import UserError
from mechprobe.probing.ksmallest import KSmallestPart
from mechprobe.probing.text import TextPart
from mechprobe.tasks.base import TASKS
from mechprobe.tasks.registry import task_names

PARTS = {"text": TextPart, "numbers": KSmallestPart}


def register_part(family, part_class):
    """Read the tasks of `family` (Task.family) with `part_class` (a probing.part.Part)."""
    PARTS[family] = part_class
    return part_class


def part_for(task_name):
    """The Part class that reads the registered task `task_name`."""
    if task_name not in TASKS:
        raise UserError(f"unknown task {task_name!r}: use one of {', '.join(task_names())}")
    family = TASKS[task_name].family
    if family not in PARTS:
        raise UserError(f"task {task_name} is of family {family!r}, which no part reads: "
                        "register one with mechprobe.probing.parts.register_part")
    return PARTS[family]
