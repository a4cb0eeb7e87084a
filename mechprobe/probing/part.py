"""The protocol between a task and every analysis of it: a task *part* turns a task's data into
prompts for a model (its Reading) and the Reading's attention into labelled settings. The probe
(run.py), the knockout (analysis/knockout.py) and the robustness run (analysis/robustness.py)
all read a task through its part, so a flag means the same everywhere.

A part holds its config and, once loaded, its data; everything that depends on the model (the
prompts, the shots drawn for them, the answer tokens, what was skipped) lives in the Reading
that reading() returns and the other methods take: nothing is left behind on the part.

    part = TextPart(TextConfig(task="arc", data="data/arc_offline"))
    part.load()
    reading = part.reading(model, tokenizer, run)
    for setting in part.settings(reading, extracted, run.probing(part.default_p)): ...

Text tasks of any kind share TextPart (text.py); a task whose examples are not statements in a
prompt has its own part (ksmallest.py), registered for its task family in parts.py.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


@dataclass
class Reading:
    """What a part hands an analysis: its prompts and how to read them, and what its settings
    need of the model (subclassed by each part for its own fields)."""

    examples: list                     # attention.features.Example per probed example
    read: object                       # the ReadConfig with the task's defaults filled in
    logit_ids: list | None = None      # answer tokens whose logits score the model
    normalise: bool = False            # features divided by each example's largest
    targets: list | None = None        # per example the gold answer's token id (None: unscored)
    choices: list | None = None        # per example the answer tokens it is chosen among, or
                                       # None where any token may answer (the whole vocabulary)
    pad_id: int = 0                    # the tokenizer's padding id


@dataclass
class Setting:
    """One probed setting of a task part: which examples, their labels, and what the task
    measured there besides the probe (accuracy, the chance check), placed first in results."""

    name: str
    rows: slice                        # the setting's examples among the Reading's
    useful: list                       # per example its statements' 0/1
    depth: list                        # per example its statements' depth class (-1: not useful)
    groups: list | None = None         # cross-validation groups (None: each example its own)
    ids: list | None = None            # example ids (None: positions)
    details: list | None = None        # what the report's example browser shows per example
    scores: dict = field(default_factory=dict)
    control: list | None = None        # text-only features per example (the text-only control)


class Part(ABC):
    """A task as the analyses read it. Class attributes: `task_name` (results.json's task),
    `grouped_by` (what a cross-validation group is, for messages), `default_p` (the kNN distance
    of the paper for this task), `config_class` (the config its constructor takes) and
    `setting_kind`."""

    task_name = None
    grouped_by = "example"
    default_p = 2
    config_class = None
    setting_kind = None                # what a setting is, in printed headers ("bucket"); None:
                                       # the settings are named on their own (min01)

    @classmethod
    def from_args(cls, args):
        """The part for the command line's flags."""
        return cls(cls.config_class.from_args(args))

    @abstractmethod
    def load(self):
        """Read the data, before any model loads (a bad file fails first)."""

    @abstractmethod
    def dump(self, path, reading=None):
        """Every example and its labels as jsonl (docs/DATA.md); with a Reading, each with the
        prompt it is (or would be) probed with."""

    @abstractmethod
    def reading(self, model, tokenizer, run):
        """The prompts for `model` (a Reading), `run` a RunConfig."""

    @abstractmethod
    def settings(self, reading, extracted, probing):
        """The probed settings (Setting each) from a Reading and its Extracted attention;
        `probing` a ProbeConfig (its folds decide which settings have enough groups)."""

    def add_controls(self, reading, settings):
        """Controls that run the model again, added to `settings` {name: results} (default:
        none)."""

    @abstractmethod
    def meta(self, reading):
        """results.json's record of what was read (task-specific keys)."""
