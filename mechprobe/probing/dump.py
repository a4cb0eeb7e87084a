"""--dump-examples: the examples a run probes, one JSON line each in the jsonl task's schema
(docs/DATA.md), so that any task's dump reads back as `--task jsonl`."""

import json

from mechprobe.outputs import write_lines
from mechprobe.tasks import ksmallest


def token_span(positions):
    """[start, end) of a run of token positions (a segment's tokens are consecutive)."""
    return [positions[0], positions[-1] + 1] if positions else None


def dump_questions(path, questions, suffix, examples=None):
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


def dump_numbers(path, task, values, indices):
    """k-th smallest examples (`indices` into the number set `values`) with their trees."""
    useful, depth = ksmallest.reasoning_tree(task, indices)
    answers = ksmallest.answers(task, indices)
    write_lines(path, (json.dumps({
        "id": str(i), "statements": [str(values[j]) for j in row], "question": task.name,
        "answer": str(values[answers[i]]), "useful": useful[i].astype(int).tolist(),
        "depth": [int(d) if u else None for u, d in zip(useful[i], depth[i])],
        "qdep": 1 if task.k > 0 else 0, "bucket": None}) + "\n" for i, row in enumerate(indices)))
    print(f"wrote {len(indices)} examples to {path}")
