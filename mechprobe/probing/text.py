"""The probing run's part for text tasks (docs/METHOD.md, Tasks 2 and 3): ProofWriter, ARC, a
user's jsonl file, or any task registered in mechprobe/tasks/base.py. Statements in a prompt,
probed per bucket: the fine-tuned setting (no shots, mean over question tokens) or the in-context
setting (config.icl shots from train, max over question tokens).
"""

import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import balanced_accuracy_score

from mechprobe.baselines import chance_check
from mechprobe.cli import UserError
from mechprobe.models import padding_id, position_limit
from mechprobe.probing.buckets import bucket_sizes, probed_buckets, sample_buckets
from mechprobe.probing.dump import dump_questions
from mechprobe.probing.config import TextConfig
from mechprobe.probing.part import Part, Reading, Setting
from mechprobe.probing.shortcut_control import shortcut_control
from mechprobe.probing.text_control import text_features
from mechprobe.tasks.base import check_questions
from mechprobe.tasks.registry import task_named
from mechprobe.tasks.prompts import (chosen_answers, fitting_prompts, prompt_answer_ids,
                                     shot_record, shots_for, to_example)


def load_questions(config):
    """(task, the probed split's labelled questions) of a TextConfig; one line per problem."""
    task = task_named(config.task, config)
    if config.data is None and task.needs_data:
        raise UserError(f"task {config.task} needs TextConfig.data: {task.how_to_get}")
    questions = check_questions(task.load(config.split), config.task)
    if not questions:
        raise UserError(f"the {config.split} split of {config.data} holds no question that can be "
                        f"probed (empty or filtered files): {task.how_to_get}")
    return task, questions


@dataclass
class TextReading(Reading):
    """A text task's Reading: the sampled questions per bucket, their shots, and the answer
    words the model is scored on (prompts, settings, controls and meta read these)."""

    model: object = None
    tokenizer: object = None
    seed: int = 0
    train: list = field(default_factory=list)     # where the shots are drawn from
    buckets: dict = field(default_factory=dict)   # {bucket: its questions}, after skip_long
    flat: list = field(default_factory=list)      # the questions in prompt order
    shots: list = field(default_factory=list)     # per question its shots
    words: list = field(default_factory=list)     # the answer words ([] when unscored)
    skipped: int = 0                              # prompts left out by skip_long

    @property
    def scored(self):
        return self.targets is not None


class TextPart(Part):
    """A text task in the analyses (part.py): its questions sampled per bucket, prompted with
    their shots, scored by the answer word's logit, with the text-only control and, where the
    task has unprobed questions, the shortcut control."""

    default_p = 1                      # kNN Manhattan distance (the paper's, for text tasks)
    config_class = TextConfig
    setting_kind = "bucket"

    def __init__(self, config, questions=None, task=None, shots=None):
        """`questions` (and their `task`) already loaded, or None to load config's data in
        load(); `shots`: where in-context shots come from (None: the task's train split)."""
        self.config, self.questions, self.task, self.train = config, questions, task, shots

    @property
    def task_name(self):
        return self.config.task

    @property
    def grouped_by(self):
        return self.task.grouped_by

    def load(self):
        """Read the data (before any model loads) and say how many questions each bucket has."""
        if self.questions is None:
            self.task, self.questions = load_questions(self.config)
        print(bucket_sizes(self.questions, self.config.split))

    def shot_source(self):
        """The questions shots are drawn from: given, or the task's train split (read once)."""
        if self.train is None:
            self.train = self.task.shots() if self.config.icl else []
        return self.train

    def dump(self, path, reading=None):
        """Every question in the jsonl schema; with a Reading, each with the prompt it is (or
        would be) probed with."""
        if reading is None:
            return dump_questions(path, self.questions, self.task.suffix)
        dump_questions(path, self.questions, self.task.suffix,
                       self.prompts(self.questions, reading)[1])

    def prompts(self, questions, reading):
        """(per question its shots, its prompt as an Example), as the run probes it."""
        shots = self.shots(questions, reading)
        return shots, [self.example(q, these, reading) for q, these in zip(questions, shots)]

    def shots(self, questions, reading):
        """Per question its in-context shots (config.icl of them, per question or fixed)."""
        config = self.config
        return shots_for(questions, reading.train, config.icl, config.shots, reading.seed)

    def example(self, question, shots, reading):
        """One question's prompt with the given shots, as an Example (a corrupted question keeps
        its clean version's shots)."""
        return to_example(reading.tokenizer, question, shots, self.task.suffix, self.config.prompt)

    def answer_tokens(self, questions, shots, reading):
        """(answer words, their token ids after the prompt) of questions that all have answers
        and choices; None where some have none (the probes run, accuracy is not scored)."""
        if not all(q.target is not None and q.choices for q in questions):
            return None
        words = list(dict.fromkeys(c for q in questions for c in q.choices))
        return words, prompt_answer_ids(reading.tokenizer, questions[0], shots[0],
                                        self.task.suffix, words, self.config.prompt)

    def blank_reading(self, model, tokenizer, run):
        """A TextReading of no questions yet: how this part prompts `model` (its read defaults,
        shots source and seed), for prompts(); reading() fills in the sampled questions."""
        return TextReading([], run.read.with_defaults(query_pool="max" if self.config.icl else
                                                      "mean", batch_size=16),
                           pad_id=padding_id(tokenizer), model=model, tokenizer=tokenizer,
                           seed=run.seed, train=self.shot_source())

    def reading(self, model, tokenizer, run):
        """The prompts of the sampled questions: per bucket at most config.n_examples (only
        config.only_buckets where given), with their shots; prompts over the model's positions
        refused, or left out with skip_long."""
        if self.questions is None:
            self.load()
        config, task = self.config, self.task
        buckets = sample_buckets(self.questions, config.n_examples, run.seed)
        if not buckets:
            raise UserError(f"no questions of the probed depths in the {config.split} split of "
                            f"{config.data}: {task.how_to_get}")
        if config.only_buckets:
            unknown = sorted(set(config.only_buckets) - set(buckets))
            if unknown:
                raise UserError(f"TextConfig.only_buckets {','.join(unknown)}: no such bucket in "
                                f"the {config.split} split; it has {', '.join(buckets)}")
            buckets = {b: members for b, members in buckets.items() if b in config.only_buckets}
        reading = self.blank_reading(model, tokenizer, run)
        flat = [q for bucket in buckets.values() for q in bucket]
        shots, examples = self.prompts(flat, reading)
        fits = fitting_prompts(model, flat, [[e] for e in examples], config.skip_long)
        skipped = len(flat) - len(fits)
        if skipped:
            print(f"skipped {skipped} of {len(flat)} prompts longer than the model's "
                  f"{position_limit(model)} positions (TextConfig.skip_long)")
            kept = {flat[i].id for i in fits}
            buckets = {b: [q for q in members if q.id in kept] for b, members in buckets.items()}
            buckets = {b: members for b, members in buckets.items() if members}
            if not buckets:
                raise UserError(f"every prompt is longer than the model's {position_limit(model)} "
                                "positions: use fewer shots (TextConfig.icl) or a model with "
                                "more positions")
            flat, examples = [flat[i] for i in fits], [examples[i] for i in fits]
            shots = [shots[i] for i in fits]
        reading.examples, reading.buckets, reading.flat, reading.shots = examples, buckets, flat, shots
        reading.skipped = skipped
        # Accuracy needs answers: a user's jsonl file may have none (then only the probes run).
        answers = self.answer_tokens(flat, shots, reading)
        if answers is not None:
            reading.words, reading.logit_ids = answers
            token = dict(zip(reading.words, reading.logit_ids))
            reading.targets = [int(token[q.target]) for q in flat]
            reading.choices = [[int(token[c]) for c in q.choices] for q in flat]
        return reading

    def settings(self, reading, extracted, probing):
        """Per bucket with enough groups: labels, the text-only control, accuracy, balanced
        accuracy and the chance check against the task's input-only answerers."""
        predicted = (chosen_answers(extracted.scores, reading.words, reading.flat)
                     if reading.scored else None)
        for bucket, members, span, groups in probed_buckets(reading.buckets, probing.folds,
                                                            self.task.grouped_by):
            scores = {}
            if reading.scored:
                targets = [q.target for q in members]
                bucket_accuracy = float(np.mean([p == t for p, t in zip(predicted[span], targets)]))
                # The probed questions are mostly True (77-91% per ProofWriter bucket): balanced
                # accuracy (mean recall per answer) shows whether the model tells them apart.
                with warnings.catch_warnings():   # a choice nobody gives the answer: fine here
                    warnings.simplefilter("ignore")
                    balanced = balanced_accuracy_score(targets, predicted[span])
                scores = {"accuracy": bucket_accuracy, "balanced_accuracy": float(balanced),
                          **chance_check(bucket_accuracy, targets, self.task.shortcuts(members))}
            yield Setting(
                bucket, span, [np.array(q.useful) for q in members],
                [np.array([-1 if d is None else d for d in q.depth]) for q in members], groups,
                [q.id for q in members],
                browser_details(members, predicted[span] if reading.scored else None), scores,
                [text_features(q) for q in members])

    def add_controls(self, reading, settings):
        """The shortcut control (shortcut_control.py) per bucket, where the task has unprobed
        questions of the split to draw them from."""
        if not reading.scored:
            return
        everything = self.task.everything(self.config.split)
        if everything is None:
            return

        def prompts(questions):
            return self.prompts(questions, reading)[1]

        def fits(questions, examples):
            return fitting_prompts(reading.model, questions, [[e] for e in examples],
                                   skip_long=True)

        controls = shortcut_control(reading.model, everything, reading.buckets, settings,
                                    self.task.shortcuts, prompts, fits, reading.words,
                                    reading.logit_ids, reading.read, reading.pad_id, reading.seed)
        for bucket, control in controls.items():
            settings[bucket]["shortcut_control"] = control

    def meta(self, reading):
        config = self.config
        return {"data": config.data, "split": config.split, "icl": config.icl,
                "shots": config.shots if config.icl else None, "prompt": config.prompt,
                "shot_ids": shot_record(config.shots, reading.flat, reading.shots),
                "skipped_long": reading.skipped,
                "buckets": config.buckets if "buckets" in self.task.options else None,
                "cv_groups": self.task.grouped_by, "answer_words": reading.words,
                "answer_token_ids": reading.logit_ids}


def browser_details(questions, predicted=None):
    """Per question what the report's browser shows: statements, question, answer, the model's
    answer and whether it is right (None without answers), the gold tree's edges (None where
    the task gives none)."""
    return [{"statements": list(q.statements), "question": q.question, "answer": q.target,
             "predicted": None if predicted is None else predicted[i],
             "correct": None if predicted is None else bool(predicted[i] == q.target),
             "edges": list(q.edges) or None}
            for i, q in enumerate(questions)]
