"""Prompts: a text task's question as the model reads it (the paper's prompt, or the tokenizer's
chat template), with its in-context shots, token positions and answer tokens (docs/METHOD.md,
Tasks 2 and 3).

The plain prompt is the shots, then the statements joined by spaces, a space, the question and
the task's suffix; the answer word follows it.
"""

import zlib

from mechprobe import seeds
from mechprobe.attention.features import Example, segment_tokens
from mechprobe.cli import UserError
from mechprobe.models import check_fits


def prompt(question, suffix):
    return f"{question.context} {question.question}{suffix}"


def shot_text(question, suffix):
    return f"{prompt(question, suffix)} {question.target}\n"


SHOT_MODES = ("per-question", "fixed")
PROMPT_STYLES = ("plain", "chat")


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
                        "answer): add answer and choices to them, or set TextConfig.icl to 0")
    if sum(room.values()) < n_shots:
        raise UserError(f"the train split has {sum(room.values())} questions to draw shots from, "
                        f"fewer than TextConfig.icl {n_shots}: use fewer shots")
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
    return check_fits(model, longest, "use fewer shots (TextConfig.icl) or a model with more "
                      "positions, or set TextConfig.skip_long to leave the long prompts out "
                      "(counted)",
                      names=[f"question {q.id}" for q in questions], skip=skip_long)


_PLACE = "\x00MECHPROBE_QUESTION\x00"   # where the probed question goes in a rendered chat


def chat_frame(tokenizer, shots, suffix):
    """(text before, text after) the probed question in the tokenizer's chat template: each shot a
    user turn answered by an assistant turn, then the question's user turn and the assistant's
    opening."""
    if not getattr(tokenizer, "chat_template", None):
        raise UserError("TextConfig.prompt chat needs a tokenizer with a chat template (an "
                        "instruct model's); this one has none: use TextConfig.prompt plain")
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
                        f"{first[:150]}): use TextConfig.prompt plain, or fix chat_template in its "
                        "tokenizer_config.json") from None
    if text.count(_PLACE) != 1:
        raise UserError("the tokenizer's chat template does not show the user's turn as given: "
                        "use TextConfig.prompt plain")
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


def chosen_answers(scores, words, questions):
    """Per question the choice whose answer token has the highest logit (`scores` has a column
    per word of `words`): the model's answer, as every experiment scores it."""
    return [max(q.choices, key=lambda c: scores[i, words.index(c)]) for i, q in enumerate(questions)]
