"""The task contract: what a task gives the probe, and the one registry of tasks.

A *text task* (ProofWriter, ARC, a user's jsonl file, your own) turns its data into Questions:
statements in a prompt, a question after them, and the reasoning tree as labels. The probe reads
nothing else, so a new task is one subclass of TextTask (docs/ADD_A_TASK.md):

    from mechprobe.tasks.base import Question, TextTask, register

    @register
    class Toy(TextTask):
        name = "toy"                       # probe.py --task toy
        def load(self, split):             # self.config: the run's TextConfig (data, split, ...)
            return [Question(id="1", statements=["a is b.", "b is c."], question="a is c.",
                             useful=[1, 1], depth=[0, 0], answer="True",
                             choices=("True", "False"), bucket="all")]

The k-th smallest task is in the registry too (family "numbers"): its examples are lists of
numbers, read by mechprobe/probing/ksmallest.py rather than as text prompts. The shipped tasks
register when mechprobe/tasks/registry.py is imported, which looks tasks up by name.
"""

from dataclasses import dataclass, field

from mechprobe.cli import UserError
from mechprobe.tasks.corruptions import REPLACEMENTS, replaced

KINDS = ("fact", "rule", "statement")   # a statement's kind; "statement": the data does not say


@dataclass(kw_only=True)
class Question:
    """One labelled example of a text task: everything the probe reads from it.

    Tasks with more to keep (ProofWriter's proof string, question depth) subclass it."""

    id: str                            # unique within the task's data
    statements: list                   # their texts, in prompt order
    question: str                      # follows the statements in the prompt
    useful: list                       # per statement 0/1: does the answer need it
    depth: list                        # per statement its depth class (int >= 0); None if not useful
    answer: str | None = None          # the answer word the model should say next; None: unscored
    choices: tuple = ()                # the answer words the model chooses among
    kinds: list | None = None          # per statement one of KINDS (None: "statement" each)
    group: str = ""                    # cross-validation group (shared context); "": the id
    bucket: str | None = None          # the setting it is probed in; None: not probed
    edges: list = field(default_factory=list)   # the gold tree: [premise, conclusion] positions
    source: str = ""                   # "file:line", for messages

    def __post_init__(self):
        self.group = self.group or self.id
        if self.kinds is None:
            self.kinds = ["statement"] * len(self.statements)

    @property
    def target(self):
        """The answer as the word the model should say (what prompts and scores use)."""
        return self.answer

    @property
    def context(self):
        return " ".join(self.statements)

    def dump(self):
        """The question as a line of the jsonl task's schema (docs/DATA.md)."""
        return {"id": self.id, "statements": list(self.statements), "question": self.question,
                "answer": self.target, "choices": list(self.choices), "useful": list(self.useful),
                "depth": list(self.depth), "kinds": list(self.kinds), "group": self.group,
                "bucket": self.bucket}


def check_questions(questions, task):
    """Every question keeps the contract, or one line naming the task, question and field (a
    task written against it gets its mistake named here, not deep inside the probe)."""
    for q in questions:
        n = len(q.statements)
        where = f"task {task}, question {q.id}"
        for name in ("useful", "depth", "kinds"):
            values = getattr(q, name)
            if len(values) != n:
                raise UserError(f"{where}: {name} holds {len(values)} values for {n} statements")
        unknown = set(q.kinds) - set(KINDS)
        if unknown:
            raise UserError(f"{where}: statement kind {sorted(unknown)[0]!r} is not one of {KINDS}")
        bad = [e for e in q.edges if len(e) != 2 or not all(0 <= i < n for i in e)]
        if bad:
            raise UserError(f"{where}: edge {list(bad[0])} names no pair of its statements")
        if q.target is not None and q.target not in q.choices:
            raise UserError(f"{where}: the answer {q.target!r} is not one of its choices")
    return questions


class Task:
    """A task: its name on the command line and how the probe reads it.

    `family` picks the probe's reading: "text" (statements in a prompt, TextTask) or "numbers"
    (the k-th smallest task's number lists)."""

    name = None
    family = "text"
    how_to_get = ""                    # one line: where the data comes from

    def __init__(self, config=None):
        self.config = config           # the run's TextConfig (text tasks)


class TextTask(Task):
    """A task whose examples are Questions (the contract above). Override `load`; the rest has
    defaults that suit a task without them."""

    suffix = ""                        # what follows the question in the prompt
    needs_data = True                  # False: the task generates its questions (no --data)
    grouped_by = "example"             # what a cross-validation group is, for messages
    options = ()                       # TextConfig fields this task reads besides data/split

    def load(self, split):
        """The labelled questions of `split` ("train", "dev" or "test") of self.config.data."""
        raise NotImplementedError

    def shots(self):
        """The questions in-context shots are drawn from (default: the train split)."""
        return self.load("train")

    def everything(self, split):
        """Every question of the split, probed or not (shortcut_control.py's pool), or None
        where the data holds only probed ones."""
        return None

    def shortcuts(self, questions):
        """{name: one answer per question} from answerers that read only the input (besides the
        commonest answer); see mechprobe/tasks/shortcuts.py."""
        return {}

    # The robustness experiment (corrupt.py): which questions, and how they are corrupted.
    robustness_label = "multi-level"   # what the pool's questions are, in messages
    corruptions = REPLACEMENTS         # the kinds corrupt() knows

    def robustness_pool(self, questions):
        """The questions corrupt.py draws its subsets from: those whose tree has two depth
        classes or more (S_P2 needs them)."""
        return [q for q in questions
                if len({d for u, d in zip(q.useful, q.depth) if u and d is not None}) > 1]

    def corrupt(self, question, kind, rng, pool):
        """A corrupted copy of `question` (kind one of self.corruptions; rng a numpy Generator;
        `pool` the questions replacements may come from), or None where it does not apply."""
        return replaced(question, kind, rng, pool)


TASKS = {}


def register(task_class):
    """Add a task to the registry (probe.py's --task choices); usable as a class decorator."""
    if not (isinstance(task_class, type) and issubclass(task_class, Task) and task_class.name):
        raise TypeError("register() takes a Task subclass with a name")
    TASKS[task_class.name] = task_class
    return task_class
