"""The probing run's part for the k-th smallest task (docs/METHOD.md, Task 1): one model, one k
or every k; the task read from the config, then the model's task.json."""

import os
from dataclasses import dataclass

import numpy as np

from mechprobe.attention.features import Example, extract, segment_tokens
from mechprobe.attention.recorder import Recorder
from mechprobe.baselines import accuracy, chance_check
from mechprobe.cli import UserError
from mechprobe.models import check_fits, load_model, padding_id
from mechprobe.probing.dump import dump_numbers
from mechprobe.probing.config import KSmallestConfig
from mechprobe.probing.part import Part, Reading, Setting
from mechprobe.tasks import ksmallest
from mechprobe.tasks.ksmallest import read_task_file
from mechprobe.tasks.shortcuts import ksmallest_answers

def saved_task(model_name):
    """The model's task.json (finetune_gpt2.py writes it beside the weights), or {}."""
    return (read_task_file(model_name) if model_name and os.path.isdir(model_name) else None) or {}


def resolve_task(config, saved=None):
    """k, list length and number-set size: the config first, then the task saved with the model."""
    saved = saved or {}
    k = config.k if config.k is not None else saved.get("k")
    if k is None and not config.all_k:
        raise UserError("no k: this model has no task.json from finetune_gpt2.py; pass "
                        "KSmallestConfig.k (0-based, e.g. 1 for the second smallest) or "
                        "KSmallestConfig.all_k")
    list_len = config.list_len or saved.get("list_len", 16)
    num_set = config.num_set or saved.get("num_set", 512)
    return ksmallest.parse_task(f"min{k or 0:02d}", list_len, num_set)


def load_task_model(run, config, multi_token=False):
    """The model, its tokenizer, the task (config, then the model's task.json) and number set."""
    model, tokenizer = load_model(run.model, run.device, run.dtype, run.placement())
    return (model, tokenizer, *task_of_model(model, tokenizer, config, run.model, multi_token))


def task_of_model(model, tokenizer, config, name, multi_token=False):
    """(task, number set) of a loaded model: the config first, then the task.json in its folder
    `name`.

    With multi_token, a tokenizer with fewer than num_set single-token numbers (LLaMA, SmolLM2:
    digits) gets the numbers 0..S-1 written as several tokens each (ksmallest.MultiTokenNumbers).
    """
    saved = saved_task(name)
    task = resolve_task(config, saved)
    if saved.get("num_set") is not None and task.num_set != saved["num_set"]:
        raise UserError(f"KSmallestConfig.num_set {task.num_set}: {name} was fine-tuned on "
                        f"{saved['num_set']} numbers (its task.json), and knows only those: drop "
                        "KSmallestConfig.num_set or pass "
                        f"{saved['num_set']}")
    try:
        numbers = ksmallest.number_set(tokenizer, task.num_set)
    except ksmallest.TooFewNumbers as err:
        if not multi_token and err.available <= task.list_len:
            raise UserError(f"this tokenizer has only {err.available} single-token numbers, too "
                            f"few for lists of {task.list_len}, and this command reads one token "
                            "per number: probe.py --task ksmallest handles numbers of several "
                            "tokens, or use a model with GPT-2's tokenizer") from None
        if not multi_token:
            raise
        numbers = ksmallest.multi_token_numbers(tokenizer, task.num_set)
        print(f"this tokenizer has fewer than {task.num_set} single-token numbers: the numbers "
              f"0..{task.num_set - 1} are written as several tokens each, each number a statement "
              "of its tokens (pooled by --statement-pool)")
    if "numbers" in saved and list(saved["numbers"]) != list(numbers.numbers):
        raise UserError(f"{name}/task.json lists other numbers than this tokenizer's number "
                        "set: the file belongs to another model; fine-tune again, or delete it "
                        "and pass KSmallestConfig.k, KSmallestConfig.list_len and "
                        "KSmallestConfig.num_set")
    if isinstance(numbers, ksmallest.NumberSet):
        check_fits(model, len(numbers.prefix) + task.list_len)
    return task, numbers


def to_examples(numbers, indices):
    """Each number is one token, so statement j is token j after the tokenizer's prefix (BOS);
    the query is the last token."""
    ids = numbers.encode(indices)
    first, last = len(numbers.prefix), ids.shape[1] - 1
    return [Example(row.tolist(), [last], [[first + j] for j in range(indices.shape[1])])
            for row in ids]


def spaced(values):
    """Segments of the space-joined numbers: number j is segment 2j, spaces between."""
    segments = []
    for value in values:
        segments += [" ", str(value)] if segments else [str(value)]
    return segments


def multi_token_examples(tokenizer, numbers, indices):
    """Each number a statement of the tokens it overlaps, as in the text tasks; the query is the
    last token of the last number. What the tokenizer adds before the text (BOS) stays; what it
    adds after it (an EOS) is cut, as the answer comes next."""
    examples = []
    for row in indices:
        ids, positions = segment_tokens(tokenizer, spaced(numbers.numbers[row]))
        last = positions[-1][-1]
        examples.append(Example(ids[:last + 1], [last], positions[::2]))
    return examples


def answer_tokens(tokenizer, numbers, row, answer, prompt):
    """The tokens of ' <answer>' as the tokenizer writes them right after the prompt `prompt`."""
    answered = multi_token_examples(tokenizer, numbers, [np.append(row, answer)])[0].input_ids
    if answered[:len(prompt)] == prompt and len(answered) > len(prompt):
        return answered[len(prompt):]
    return tokenizer(f" {numbers.numbers[answer]}", add_special_tokens=False)["input_ids"]


def continues_number(tokenizer, token_id):
    return tokenizer.decode([int(token_id)]).strip()[:1].isdigit()


def multi_token_correct(model, tokenizer, numbers, examples, indices, answers, first_predicted,
                        read, pad_id):
    """Per example: greedy decoding after the prompt writes the answer's tokens, then a token that
    does not continue the number (1 then 2 is wrong for the answer 1). Step t feeds the answer's
    first t tokens (teacher forcing), the same as greedy decoding while every step matched."""
    targets = [answer_tokens(tokenizer, numbers, row, answer, e.input_ids)
               for row, answer, e in zip(indices, answers, examples)]
    correct = np.array([t[0] == p for t, p in zip(targets, first_predicted)])
    with Recorder(model) as recorder:
        for step in range(1, max(len(t) for t in targets) + 1):
            alive = [i for i in np.flatnonzero(correct) if len(targets[i]) >= step]
            if not alive:
                break
            fed = [Example(examples[i].input_ids + targets[i][:step], [0], []) for i in alive]
            _, predicted, _ = extract(recorder, fed, [], read.batch_size, pad_id=pad_id,
                                      max_tokens=read.max_batch_tokens,
                                      desc=f"answer token {step + 1}")
            for i, p in zip(alive, predicted):
                if step == len(targets[i]):
                    correct[i] = not continues_number(tokenizer, p)
                else:
                    correct[i] = p == targets[i][step]
    return correct


def browser_details(values, indices, task, correct):
    """Per example what the report's browser shows: the numbers, the answer, whether the model
    gave it, and each number's rank (0 = smallest; ranks below k are the leaves, k the root)."""
    rank = ksmallest.ranks(indices)
    answers = ksmallest.answers(task, indices)
    return [{"statements": [str(values[j]) for j in row], "question": task.name,
             "answer": str(values[answer]), "correct": bool(right), "rank": r.tolist()}
            for row, answer, right, r in zip(indices, answers, correct, rank)]


@dataclass
class KSmallestReading(Reading):
    """The k-th smallest task's Reading: the task and number set of the model, the examples'
    number indices, and what scoring a multi-token answer needs."""

    model: object = None
    tokenizer: object = None
    task: object = None                # ksmallest.Spec of the model (config, then task.json)
    numbers: object = None             # its NumberSet or MultiTokenNumbers
    indices: np.ndarray | None = None  # (examples, list_len) indices into the number set
    seed: int = 0                      # the stream the examples are drawn from

    @property
    def multi_token(self):
        return isinstance(self.numbers, ksmallest.MultiTokenNumbers)


def read_config(run):
    """The run's ReadConfig with this task's defaults: 256 short prompts per batch, and mean
    query pooling (one query token: its pooling changes nothing). The causal and attention-map
    analyses read with it too."""
    return run.read.with_defaults(query_pool="mean", batch_size=256)


class KSmallestPart(Part):
    """The k-th smallest task in the analyses (part.py): per k (one, or every k with
    config.all_k, on the same attention) the tree's labels, accuracy and the chance check
    against input-only answerers. The task (k, list length, number set) is the config's, then
    the model's task.json."""

    task_name = "ksmallest"
    grouped_by = "example"
    default_p = 2                      # kNN Euclidean distance (the paper's, for this task)
    config_class = KSmallestConfig

    def __init__(self, config, seed=0):
        """`seed`: the examples a dump without a model writes (with a model: the run's seed)."""
        self.config, self.seed = config, seed

    @classmethod
    def from_args(cls, args):
        return cls(KSmallestConfig.from_args(args), args.seed)

    def load(self):
        """Nothing to read: the examples are drawn from the task's number stream."""

    def dump(self, path, reading=None):
        """The probed examples with their trees; without a model, over the tiny model's number
        set 0..S-1 (no tokenizer needed for it)."""
        if reading is None:
            task = resolve_task(self.config)
            values, seed = np.arange(task.num_set), self.seed
        else:
            task, values, seed = reading.task, reading.numbers.numbers, reading.seed
        dump_numbers(path, task, values, ksmallest.probe_examples(task, self.config.n_examples,
                                                                   seed))

    def reading(self, model, tokenizer, run):
        """The prompts: one token per number (a statement each) where the tokenizer has enough
        single-token numbers, else each number a statement of its tokens."""
        config = self.config
        task, numbers = task_of_model(model, tokenizer, config, run.model or model.name_or_path,
                                      multi_token=True)
        if config.n_examples < run.folds:
            raise UserError(f"KSmallestConfig.n_examples {config.n_examples} is too few for "
                            f"{run.folds}-fold cross-validation: probe more examples or use fewer "
                            "RunConfig.folds")
        indices = ksmallest.probe_examples(task, config.n_examples, run.seed)
        reading = KSmallestReading([], read_config(run),
                                   normalise=True, pad_id=padding_id(tokenizer), model=model,
                                   tokenizer=tokenizer, task=task, numbers=numbers,
                                   indices=indices, seed=run.seed)
        if reading.multi_token:
            reading.examples = multi_token_examples(tokenizer, numbers, indices)
            # The longest prompt plus the answer's tokens, fed while scoring it.
            check_fits(model, max(len(e.input_ids) for e in reading.examples)
                       + len(str(numbers.numbers[-1])) + 1)
        else:
            reading.examples = to_examples(numbers, indices)
            # the answer is the next token: one of the numbers' tokens after a space
            reading.targets = [int(t) for t in numbers.later_ids[ksmallest.answers(task, indices)]]
        return reading

    def settings(self, reading, extracted, probing):
        task, numbers, indices = reading.task, reading.numbers, reading.indices
        predicted = extracted.predicted
        for k in range(task.list_len // 2) if self.config.all_k else [task.k]:
            task_k = ksmallest.Spec(k, task.list_len, task.num_set)
            useful, depth = ksmallest.reasoning_tree(task_k, indices)
            answers = ksmallest.answers(task_k, indices)
            if reading.multi_token:
                correct = multi_token_correct(reading.model, reading.tokenizer, numbers,
                                              reading.examples, indices, answers, predicted,
                                              reading.read, reading.pad_id)
                task_accuracy = float(correct.mean())
            else:
                correct = np.asarray(predicted) == np.asarray(numbers.later_ids[answers])
                task_accuracy = accuracy(predicted, numbers.later_ids[answers])
            yield Setting(task_k.name, slice(None), list(useful), list(depth),
                          details=browser_details(numbers.numbers, indices, task_k, correct),
                          scores={"k": k, "accuracy": task_accuracy,
                                  **chance_check(task_accuracy, answers,
                                                 ksmallest_answers(indices))})

    def meta(self, reading):
        task = reading.task
        return {"list_len": task.list_len,
                "numbers": "multi-token" if reading.multi_token else "single-token",
                "num_set": task.num_set, "n_examples": self.config.n_examples}
