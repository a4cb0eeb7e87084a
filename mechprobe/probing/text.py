"""Probing on text tasks, ProofWriter, ARC and a user's own jsonl file (docs/METHOD.md, Tasks 2
and 3): statements in a prompt, the fine-tuned setting (no shots, mean over question tokens) and
the in-context setting (--icl N shots from train, max over question tokens).

A task is its data interface (mechprobe.tasks.proofwriter, mechprobe.tasks.arc, or a
mechprobe.tasks.jsonl.JsonlTask): load(root, split) returning labelled questions with .id,
.statements, .question, .target, .choices, .group and .bucket; SUFFIX; GROUPED_BY; HOW_TO_GET.
"""

import json
import re
import time
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import balanced_accuracy_score

from mechprobe import seeds
from mechprobe.attention.features import Example, segment_tokens
from mechprobe.cli import UserError, require, whole
from mechprobe.models import check_fits, input_device, position_limit
from mechprobe.outputs import write_lines
from mechprobe.parallel import is_main_process, world_size
from mechprobe.probing.knn import Samples, mean_of, probe_stages
from mechprobe.probing.pipeline import (
    ProbeResult,
    chance_check,
    extract_pair,
    feature_cache,
    load_model,
    parse_layers,
    probe_setting,
    report,
)
from mechprobe.probing.shortcut_control import shortcut_control
from mechprobe.tasks import arc, proofwriter
from mechprobe.tasks.jsonl import JsonlTask
from mechprobe.tasks.shortcuts import proofwriter_answers

TASKS = {"proofwriter": proofwriter, "arc": arc}
# Input-only answerers per task besides the commonest answer (probing.chance_check); ARC's
# options are too varied for a cheap rule to mean much.
SHORTCUTS = {"proofwriter": proofwriter_answers, "arc": lambda questions: {}}


def prompt(question, suffix):
    return f"{question.context} {question.question}{suffix}"


def shot_text(question, suffix):
    return f"{prompt(question, suffix)} {question.target}\n"


SHOT_MODES = ("per-question", "fixed")


def add_prompt_args(parser):
    """Flags of the in-context prompts (probe.py and corrupt.py)."""
    parser.add_argument("--shots", default="per-question", choices=SHOT_MODES,
                        help="with --icl: draw the shots for each question (the paper; seeded by "
                        "--seed and the question) or use one fixed set for every question")
    parser.add_argument("--prompt", default="plain", choices=PROMPT_STYLES,
                        help="plain: the paper's prompt text; chat: the same shots and question "
                        "as turns of the tokenizer's chat template (instruct models)")
    parser.add_argument("--skip-long", action="store_true",
                        help="leave out prompts longer than the model's positions (counted in the "
                        "output) instead of stopping")


def shot_pools(train):
    """The training questions by answer (True/False, or option letters in order); answers no
    training question has (an option letter never correct) get no pool."""
    answers = list(dict.fromkeys(c for q in train for c in q.choices))
    pools = {a: [q for q in train if q.target == a] for a in answers}
    return {a: pool for a, pool in pools.items() if pool}


def shot_counts(pools, n_shots, exclude=None):
    """How many shots each answer gets: dealt in turn, so spread evenly, an answer with too few
    training questions (ARC's options) leaving its turns to the others."""
    room = {a: len(pool) - sum(q.id == exclude for q in pool) for a, pool in pools.items()}
    if not pools:
        raise UserError("the questions shots would come from have no answers (a shot shows its "
                        "answer): add answer and choices to them, or use --icl 0")
    if sum(room.values()) < n_shots:
        raise UserError(f"the train split has {sum(room.values())} questions to draw shots from, "
                        f"fewer than --icl {n_shots}: use fewer shots")
    counts = dict.fromkeys(pools, 0)
    answers = [a for _ in range(n_shots) for a in pools]     # a, b, ..., a, b, ...
    for answer in answers:
        if sum(counts.values()) == n_shots:
            break
        if counts[answer] < room[answer]:
            counts[answer] += 1
    return counts


def draw_shots(pools, n_shots, rng, exclude=None):
    """n_shots questions spread evenly over the answers, drawn by rng, then shuffled; never the
    question `exclude` (an id: a probed train question is not its own shot)."""
    shots = []
    for answer, count in shot_counts(pools, n_shots, exclude).items():
        pool = pools[answer]
        extra = int(exclude is not None and count < len(pool))   # a spare, should one be excluded
        picked = [i for i in rng.choice(len(pool), size=min(len(pool), count + extra), replace=False)
                  if pool[i].id != exclude][:count]
        shots += [pool[i] for i in sorted(picked)]
    order = rng.permutation(len(shots))
    return [shots[i] for i in order]


def choose_shots(train, n_shots, seed):
    """One fixed set of n_shots training questions (--shots fixed), balanced over the answers."""
    return draw_shots(shot_pools(train), n_shots, seeds.rng(seed, seeds.SHOTS))


def shots_for(questions, train, n_shots, mode, seed):
    """Per question, its in-context shots from `train`. 'per-question' (the paper) draws them for
    each question, seeded by the seed and the question's id, so a question gets the same shots
    whatever else is probed and accuracy and S_P do not hang on one draw; 'fixed' gives every
    question the same set."""
    if not n_shots:
        return [[] for _ in questions]
    if mode == "fixed":
        return [choose_shots(train, n_shots, seed)] * len(questions)
    pools = shot_pools(train)
    return [draw_shots(pools, n_shots, seeds.rng(seed, seeds.SHOTS, zlib.crc32(q.id.encode())),
                       exclude=q.id) for q in questions]


def shot_prefix(shots, suffix):
    return "".join(shot_text(q, suffix) for q in shots)


def shot_record(mode, questions, shots):
    """results.json's record of the shots: the fixed set's ids, or each question's."""
    if mode == "fixed" or not any(shots):
        return [s.id for s in shots[0]] if shots else []
    return {q.id: [s.id for s in these] for q, these in zip(questions, shots)}


def fitting_prompts(model, questions, examples, skip_long):
    """Indices of the questions whose prompts (all of `examples[i]` for question i) fit the
    model's positions; over-long ones are an error, or skipped with --skip-long."""
    longest = [max(len(e.input_ids) for e in group) for group in examples]
    return check_fits(model, longest, "use fewer --icl shots or a model with more positions, or "
                      "pass --skip-long to leave the long prompts out (counted)",
                      names=[f"question {q.id}" for q in questions], skip=skip_long)


PROMPT_STYLES = ("plain", "chat")
_PLACE = "\x00MECHPROBE_QUESTION\x00"   # where the probed question goes in a rendered chat


def chat_frame(tokenizer, shots, suffix):
    """(text before, text after) the probed question in the tokenizer's chat template: each shot a
    user turn answered by an assistant turn, then the question's user turn and the assistant's
    opening."""
    if not getattr(tokenizer, "chat_template", None):
        raise UserError("--prompt chat needs a tokenizer with a chat template (an instruct "
                        "model's); this one has none: use --prompt plain")
    turns = []
    for shot in shots:
        turns += [{"role": "user", "content": prompt(shot, suffix)},
                  {"role": "assistant", "content": shot.target}]
    turns.append({"role": "user", "content": _PLACE})
    try:
        text = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    except Exception as err:   # the template is the model's own code (jinja2): any error
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"the tokenizer's chat template fails on these turns ({type(err).__name__}: "
                        f"{first[:150]}): use --prompt plain, or fix chat_template in its "
                        "tokenizer_config.json") from None
    if text.count(_PLACE) != 1:
        raise UserError("the tokenizer's chat template does not show the user's turn as given: "
                        "use --prompt plain")
    before, after = text.split(_PLACE)
    return before, after


def to_example(tokenizer, question, shots, suffix, style="plain"):
    """The prompt of `question` after its in-context `shots` as an Example.

    plain (the paper): shots, then statements joined by spaces + ' ' + question + suffix.
    chat: the same turns in the tokenizer's chat template (chat_frame), ending where the
    assistant's answer begins. Query tokens run from the question's start to the prompt's end."""
    if style == "chat":
        before, after = chat_frame(tokenizer, shots, suffix)
    else:
        before, after = shot_prefix(shots, suffix), ""
    segments, statement_segments = [before], []
    for index, statement in enumerate(question.statements):
        if index:
            segments.append(" ")
        statement_segments.append(len(segments))
        segments.append(statement)
    segments += [" ", question.question + suffix + after]
    # A chat template writes its own special tokens (BOS included) as text.
    ids, positions = segment_tokens(tokenizer, segments, add_special_tokens=style != "chat")
    return Example(ids, positions[-1], [positions[i] for i in statement_segments])


def prompt_answer_ids(tokenizer, question, shots, suffix, words, style="plain"):
    """answer_ids for prompts like `question`'s: ' True' after a plain prompt, 'True' where a chat
    template's assistant turn begins."""
    if style == "chat":
        before, after = chat_frame(tokenizer, shots, suffix)
        return answer_ids(tokenizer, before + prompt(question, suffix) + after, words, sep="",
                          add_special_tokens=False)
    return answer_ids(tokenizer, shot_prefix(shots, suffix) + prompt(question, suffix), words)


def answer_ids(tokenizer, text, words, sep=" ", add_special_tokens=True):
    """The token ids the tokenizer itself uses for '<sep><word>' right after `text`, per word."""
    base = tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]
    ids = []
    for word in words:
        extended = tokenizer(f"{text}{sep}{word}", add_special_tokens=add_special_tokens)["input_ids"]
        if extended[:len(base)] != base or len(extended) == len(base):
            extended = base + tokenizer(f"{sep}{word}", add_special_tokens=False)["input_ids"]
        ids.append(extended[len(base)])
    if len(set(ids)) < len(ids):
        raise UserError(f"the tokenizer gives the answers {list(words)} overlapping first tokens: "
                        "this model cannot be scored on this task")
    return ids


def by_bucket(questions):
    """{bucket: questions in file order}, buckets in size order; questions in no bucket left out."""
    buckets = {}
    for q in questions:
        if q.bucket is not None:
            buckets.setdefault(q.bucket, []).append(q)
    return {b: buckets[b] for b in sorted(buckets, key=bucket_order)}


def probed_buckets(buckets, folds, grouped_by):
    """(bucket, its questions, their span in the flat order, their groups) for each bucket with
    enough groups for `folds`-fold cross-validation; the others are skipped with a line."""
    start = 0
    for bucket, members in buckets.items():
        span = slice(start, start + len(members))
        start += len(members)
        groups = [q.group for q in members]
        if len(set(groups)) < folds:
            print(f"skipping bucket {bucket}: {len(members)} examples from {len(set(groups))} "
                  f"{grouped_by}s, fewer than {folds} folds")
            continue
        yield bucket, members, span, groups


def bucket_order(name):
    """'m=2' < 'm=12' by number; a user's own bucket names (jsonl) by name, after those."""
    number = name.split("=")[-1]
    return (0, int(number), name) if number.isdigit() else (1, 0, name)


def bucket_sizes(questions, split):
    """One line: how many questions each bucket holds before sampling, and how many fit none."""
    buckets = by_bucket(questions)
    outside = len(questions) - sum(len(members) for members in buckets.values())
    sizes = ", ".join(f"{b} {len(members)}" for b, members in buckets.items()) or "none"
    return f"{split}: questions per bucket: {sizes}; in no bucket: {outside}"


def sample_buckets(questions, per_bucket, seed):
    """{bucket: questions}, at most per_bucket each, sampled without replacement, in file order."""
    rng = seeds.rng(seed, seeds.BUCKETS)
    buckets = by_bucket(questions)
    order = list(buckets)
    sampled = {}
    for bucket in order:
        pool = buckets[bucket]
        if len(pool) > per_bucket:
            pool = [pool[i] for i in sorted(rng.choice(len(pool), size=per_bucket, replace=False))]
        sampled[bucket] = pool
    return sampled


def words(text):
    return set(re.findall(r"\w+", text.lower()))


def text_features(question):
    """The text-only control: per statement, whether it is a rule, its word overlap with the
    question (Jaccard), and its relative position; shape (statements, 1, 3) like attention features."""
    asked = words(question.question)
    n = len(question.statements)
    rows = []
    for index, (sid, statement) in enumerate(zip(question.statement_ids, question.statements)):
        said = words(statement)
        overlap = len(said & asked) / max(1, len(said | asked))
        rows.append([float(sid.startswith("rule")), overlap, index / max(1, n - 1)])
    return np.array(rows, dtype=np.float32)[:, None, :]


def token_span(positions):
    """[start, end) of a run of token positions (a segment's tokens are consecutive)."""
    return [positions[0], positions[-1] + 1] if positions else None


def dump_examples(path, questions, suffix, examples=None):
    """One JSON line per question, in the schema the jsonl task reads back (with `group`,
    `choices` and `suffix`); with `examples` (its tokenized prompt, one per question) also the
    prompt's token ids and the [start, end) token spans of each statement and of the query, so
    that a user can check them against the model's tokenizer."""
    rows = []
    for index, q in enumerate(questions):
        row = {**q.dump(), "answer": q.target, "choices": list(q.choices), "group": q.group,
               "suffix": suffix}
        if examples is not None:
            example = examples[index]
            row.update({"input_ids": [int(i) for i in example.input_ids],
                        "statement_spans": [token_span(p) for p in example.statements],
                        "query_span": token_span(example.query)})
        rows.append(json.dumps(row) + "\n")
    write_lines(path, rows)
    print(f"wrote {len(questions)} examples to {path}"
          + ("" if examples is None else " (with token ids and spans)"))


@dataclass
class TextConfig:
    """What a ProofWriter, ARC or jsonl run probes (probe.py --task proofwriter|arc|jsonl)."""

    task: str                          # proofwriter, arc or jsonl
    data: str                          # the data folder (jsonl: the file)
    split: str = "test"                # probed split (shots always come from train)
    icl: int = 0                       # in-context shots per prompt (0: the fine-tuned setting)
    shots: str = "per-question"        # or "fixed": one shot set for every question
    prompt: str = "plain"              # or "chat": shots and question in the chat template
    skip_long: bool = False            # leave out (and count) prompts longer than the model's limit
    buckets: str = "exact"             # ProofWriter depth-1 buckets: exact or upto
    n_examples: int = 1024             # at most this many questions per bucket
    shots_data: str | None = None      # jsonl: the file shots come from (default: the same file)

    def __post_init__(self):
        require(self.task in ("proofwriter", "arc", "jsonl"), "TextConfig.task must be "
                f"proofwriter, arc or jsonl, got {self.task!r}")
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
        require(self.shots_data is None or self.task == "jsonl",
                "TextConfig.shots_data goes with task jsonl (the other tasks' shots come from "
                "their train split)")

    @classmethod
    def from_args(cls, args):
        return cls(task=args.task, data=args.data, split=args.split, icl=args.icl, shots=args.shots,
                   prompt=args.prompt, skip_long=args.skip_long, buckets=args.buckets, n_examples=args.n_examples,
                   shots_data=getattr(args, "shots_data", None))


def task_data(config):
    """The task's data interface: a module (ProofWriter, ARC) or a JsonlTask over the file."""
    if config.task == "jsonl":
        return JsonlTask(config.data, config.shots_data)
    return TASKS[config.task]


def load_questions(config):
    """(data interface, the probed split's labelled questions); one line per problem."""
    data = task_data(config)
    if config.data is None:
        raise UserError(f"--task {config.task} needs --data: {data.HOW_TO_GET}")
    options = {"buckets": config.buckets} if config.task == "proofwriter" else {}
    questions = data.load(config.data, config.split, **options)
    if not questions:
        raise UserError(f"the {config.split} split of {config.data} holds no question that can be "
                        f"probed (empty or filtered files): {data.HOW_TO_GET}")
    return data, questions


def probe_questions(model, tokenizer, questions, run, config, data=None, train=(), cache=None):
    """Probe `model` and its random twin on labelled questions (a task's, or
    mechprobe.tasks.jsonl records): per bucket the F1s, S_P1/S_P2, layer-wise rows, accuracy and
    the near-chance check. `train`: where in-context shots come from (config.icl of them);
    `cache`: a FeatureCache that keeps the features for a later run."""
    data = data or task_data(config)
    buckets = sample_buckets(questions, config.n_examples, run.seed)
    if not buckets:
        raise UserError(f"no questions of the probed depths in the {config.split} split of "
                        f"{config.data}: {data.HOW_TO_GET}")
    flat = [q for bucket in buckets.values() for q in bucket]
    shots = shots_for(flat, train, config.icl, config.shots, run.seed)
    device = input_device(model)
    layers = parse_layers(run.read.layers, model.config.get_text_config().num_hidden_layers)
    read = run.read.with_defaults(query_pool="max" if config.icl else "mean", batch_size=16)
    examples = [to_example(tokenizer, q, these, data.SUFFIX, config.prompt)
                for q, these in zip(flat, shots)]
    fits = fitting_prompts(model, flat, [[e] for e in examples], config.skip_long)
    skipped = len(flat) - len(fits)
    if skipped:
        print(f"skipped {skipped} of {len(flat)} prompts longer than the model's "
              f"{position_limit(model)} positions (--skip-long)")
        kept = {flat[i].id for i in fits}
        buckets = {b: [q for q in members if q.id in kept] for b, members in buckets.items()}
        buckets = {b: members for b, members in buckets.items() if members}
        if not buckets:
            raise UserError(f"every prompt is longer than the model's {position_limit(model)} "
                            "positions: use fewer --icl shots or a model with more positions")
        flat, examples = [flat[i] for i in fits], [examples[i] for i in fits]
        shots = [shots[i] for i in fits]
    # Accuracy needs answers: a user's jsonl file may have none (then only the probes run).
    scored = all(q.target is not None and q.choices for q in flat)
    words = list(dict.fromkeys(c for q in flat for c in q.choices)) if scored else []
    word_ids = (prompt_answer_ids(tokenizer, flat[0], shots[0], data.SUFFIX, words, config.prompt)
                if scored else None)
    pad_id = tokenizer.pad_token_id or 0
    extracted = extract_pair(model, examples, layers, read, run.seed, pad_id, word_ids, cache)
    features, random_features, scores = (extracted.features, extracted.random_features,
                                         extracted.scores)
    if not is_main_process():      # the other processes only read attention
        return None
    if scored:  # the prediction is the question's own choice with the highest logit
        predicted = [max(q.choices, key=lambda c: scores[i, words.index(c)])
                     for i, q in enumerate(flat)]
        correct = np.array([p == q.target for p, q in zip(predicted, flat)])

    knn = run.knn(default_p=1)
    shortcuts = SHORTCUTS.get(config.task, lambda questions: {})
    settings = {}
    for bucket, members, span, groups in probed_buckets(buckets, knn.folds, data.GROUPED_BY):
        useful = [np.array(q.useful) for q in members]
        depth = [np.array([-1 if d is None else d for d in q.depth]) for q in members]
        result = probe_setting(features[span], random_features[span], useful, depth, knn, layers,
                               groups, [q.id for q in members],
                               browser_details(members, predicted[span] if scored else None))
        control = probe_stages(Samples.from_examples([text_features(q) for q in members], useful,
                                                     depth, groups), knn)
        result["f1_text_control"] = {stage: mean_of(value) for stage, value in control.items()}
        if scored:
            bucket_accuracy = float(correct[span].mean())
            # The probed questions are mostly True (77-91% per ProofWriter bucket): balanced
            # accuracy (mean recall per answer) shows whether the model tells them apart at all.
            with warnings.catch_warnings():   # a choice nobody gives the answer: fine here
                warnings.simplefilter("ignore")
                balanced = balanced_accuracy_score([q.target for q in members], predicted[span])
            result = {"accuracy": bucket_accuracy, "balanced_accuracy": float(balanced),
                      **chance_check(bucket_accuracy, [q.target for q in members],
                                     shortcuts(members)), **result}
        settings[bucket] = result
    if not settings:
        raise UserError(f"every bucket has fewer {data.GROUPED_BY}s than --folds {knn.folds}: "
                        "probe more questions (--n-examples) or use fewer --folds")
    if scored and config.task == "proofwriter":
        controls = shortcut_controls(model, tokenizer, config, data, buckets, settings, train,
                                     read, words, word_ids, pad_id, run.seed)
        for bucket, control in controls.items():
            settings[bucket]["shortcut_control"] = control
    meta = {"task": config.task, "model": run.model, "data": config.data, "split": config.split,
            "icl": config.icl, "shots": config.shots if config.icl else None,
            "prompt": config.prompt,
            "shot_ids": shot_record(config.shots, flat, shots), "skipped_long": skipped,
            "position_limit": position_limit(model), "layers": layers,
            "buckets": config.buckets if config.task == "proofwriter" else None,
            "cv_groups": data.GROUPED_BY,
            "per_head": read.per_head, "query_pool": read.query_pool,
            "statement_pool": read.statement_pool,
            "probe": {"neighbors": knn.neighbors, "p": knn.p, "folds": knn.folds},
            "answer_words": words, "answer_token_ids": word_ids, "seed": run.seed,
            "device": str(device),
            "mean_prompt_tokens": float(np.mean([len(e.input_ids) for e in examples])),
            "memory": {"model_mb": model.get_memory_footprint(return_buffers=False) / 2**20,
                       "extraction_peak_extra_mb": None if extracted.peak_extra_bytes is None
                       else extracted.peak_extra_bytes / 2**20},
            "features_cached": extracted.cached, "world_size": world_size(),
            "seconds_per_prompt": extracted.seconds_per_prompt}
    return ProbeResult(meta, settings)


def proof_edges(question):
    """A ProofWriter question's proof as (premise, conclusion) statement positions; None for
    other tasks' questions (no proof string)."""
    if not getattr(question, "proofs", ""):
        return None
    from mechprobe.tasks.trees import parse_proofs

    position = {sid: i for i, sid in enumerate(question.statement_ids)}
    proof = parse_proofs(question.proofs)[0]
    return [[position[a], position[b]] for a, b in proof.edges if a in position and b in position]


def browser_details(questions, predicted=None):
    """Per question what the report's browser shows: statements, question, answer, the model's
    answer and whether it is right (None without answers), the proof's edges where there is one."""
    return [{"statements": list(q.statements), "question": q.question, "answer": q.target,
             "predicted": None if predicted is None else predicted[i],
             "correct": None if predicted is None else bool(predicted[i] == q.target),
             "edges": proof_edges(q)}
            for i, q in enumerate(questions)]


def shortcut_controls(model, tokenizer, config, data, buckets, settings, train, read, words,
                      word_ids, pad_id, seed):
    """shortcut_control.py's accuracy per bucket, on the same split's unprobed questions
    prompted as the probed ones; {} where the data holds only probed questions (the paper's
    preprocessed files) or every question is probed."""
    try:
        everything = data.load(config.data, config.split, everything=True, buckets=config.buckets)
    except UserError:
        return {}

    def prompts(questions):
        shots = shots_for(questions, train, config.icl, config.shots, seed)
        return [to_example(tokenizer, q, these, data.SUFFIX, config.prompt)
                for q, these in zip(questions, shots)]

    def fits(questions, examples):
        return fitting_prompts(model, questions, [[e] for e in examples], skip_long=True)

    return shortcut_control(model, everything, buckets, settings, SHORTCUTS[config.task], prompts,
                            fits, words, word_ids, read, pad_id, seed)


def run(config, run=None, out=None, dump_path=None, cache_mode="off"):
    """probe.py for a text task: load the data, write the dump (with --dump-examples), probe
    the model (without a model: only the dump), save and print; `cache_mode` (on, off or
    strict) keeps features in OUT/features for the next run. Returns the results dict."""
    started = time.time()
    data, questions = load_questions(config)
    print(bucket_sizes(questions, config.split))
    if run is None:
        if not dump_path:
            raise UserError("pass --model (a model to probe) or --dump-examples FILE")
        dump_examples(dump_path, questions, data.SUFFIX)
        return None
    train = data.load(config.data, "train") if config.icl else []
    model, tokenizer = load_model(run.model, run.device, run.dtype, run.placement())
    parse_layers(run.read.layers, model.config.get_text_config().num_hidden_layers)
    if dump_path:   # every question, each with the prompt it is (or would be) probed with
        dump_shots = shots_for(questions, train, config.icl, config.shots, run.seed)
        dump_examples(dump_path, questions, data.SUFFIX,
                      [to_example(tokenizer, q, these, data.SUFFIX, config.prompt)
                       for q, these in zip(questions, dump_shots)])
    result = probe_questions(model, tokenizer, questions, run, config, data, train,
                             feature_cache(out, cache_mode))
    if result is None:          # another process than the main one: nothing to write
        return None
    return report(out, result.meta, result.settings, started, result.predictions)
