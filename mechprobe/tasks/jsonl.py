"""A researcher's own reasoning data: one JSON object per line (docs/DATA.md, "Your own data").

Each line is one question over a list of statements, labelled with the reasoning tree:

    {"statements": ["Anne is big.", "If someone is big then they are red."],
     "question": "Anne is red.", "useful": [1, 1], "depth": [0, 1],
     "answer": "True", "choices": ["True", "False"], "group": "theory-7", "bucket": "m=2",
     "id": "q1", "suffix": ": True or False?"}

Required: `statements` (non-empty list of strings), `question` (string), `useful` (0/1 per
statement: does the answer need it) and `depth` (per statement its depth class, an integer >= 0,
null where not useful). Optional: `answer` with `choices` (scored like ProofWriter/ARC: the
choice whose first token the model rates highest), `group` (questions that share context share a
cross-validation fold; default: the id), `bucket` (probed separately; default: one setting
"all"), `kinds` (per statement "fact", "rule" or "statement": what the text-only control reads
as its kind; default "statement"), `id` (default: the line number), `suffix` (what follows the question in the prompt, the
same for every line). This is the schema `probe.py --dump-examples` writes, so a dump of any task
reads back as this task.

The prompt is the statements joined by spaces, a space, then the question and the suffix: the
same as for ProofWriter and ARC (mechprobe/tasks/prompts.py).
"""

from dataclasses import dataclass, field

from mechprobe.cli import UserError
from mechprobe.jsonfiles import check_unique_ids, read_jsonl
from mechprobe.tasks.base import KINDS, Question, TextTask, register

HOW_TO_GET = ("write one JSON object per line with statements, question, useful and depth "
              "(docs/DATA.md), e.g. from `probe.py --task proofwriter --dump-examples FILE`")
GROUPED_BY = "group"
ALL = "all"   # the one setting of a file without buckets


@dataclass(kw_only=True)
class Record(Question):
    """One line of the file: the task contract's Question, with the line's other keys kept."""

    extra: dict = field(default_factory=dict)

    def dump(self):
        return {**super().dump(), **self.extra}


def _problem(where, message):
    return UserError(f"{where}: {message}: {HOW_TO_GET}")


def record(row, where, default_id):
    """One parsed line -> Record; every problem is one error naming file and line."""
    if not isinstance(row, dict):
        raise _problem(where, "not a JSON object")
    missing = [key for key in ("statements", "question", "useful", "depth") if key not in row]
    if missing:
        raise _problem(where, f"no {', '.join(missing)}")
    statements, useful, depth = row["statements"], row["useful"], row["depth"]
    if not (isinstance(statements, list) and statements
            and all(isinstance(s, str) and s.strip() for s in statements)):
        raise _problem(where, "statements must be a non-empty list of non-empty strings")
    if not (isinstance(row["question"], str) and row["question"].strip()):
        raise _problem(where, "question must be a non-empty string")
    if not (isinstance(useful, list) and len(useful) == len(statements)
            and all(u in (0, 1) and not isinstance(u, float) for u in useful)):
        raise _problem(where, f"useful must hold 0 or 1 for each of the {len(statements)} statements")
    if not (isinstance(depth, list) and len(depth) == len(statements)):
        raise _problem(where, f"depth must hold a class for each of the {len(statements)} statements")
    for u, d in zip(useful, depth):
        if u and not (isinstance(d, int) and not isinstance(d, bool) and d >= 0):
            raise _problem(where, "depth must be an integer >= 0 for every useful statement")
        if not u and d is not None:
            raise _problem(where, "depth must be null for statements that are not useful")
    answer, choices = row.get("answer"), row.get("choices")
    if answer is not None or choices is not None:
        if not (isinstance(choices, list) and len(choices) >= 2
                and all(isinstance(c, str) and c.strip() for c in choices)):
            raise _problem(where, "choices must be a list of at least two answer words")
        if len(set(choices)) < len(choices):
            raise _problem(where, f"choices {choices} name one answer twice: list each once")
        if not isinstance(answer, str) or answer not in choices:
            raise _problem(where, f"answer must be one of the choices {choices}")
    kinds = row.get("kinds")
    if kinds is not None and not (isinstance(kinds, list) and len(kinds) == len(statements)
                                  and all(k in KINDS for k in kinds)):
        raise _problem(where, f"kinds must name one of {', '.join(KINDS)} for each of the "
                       f"{len(statements)} statements")
    for key in ("suffix", "id", "group", "bucket"):
        value = row.get(key)
        allowed = str if key == "suffix" else (str, int)   # ids may be numbers
        if value is not None and (not isinstance(value, allowed) or isinstance(value, bool)):
            raise _problem(where, f"{key} must be a string")
    known = {"id", "statements", "question", "useful", "depth", "answer", "choices", "group",
             "bucket", "kinds"}
    identifier = str(row.get("id", default_id))
    bucket = row.get("bucket")
    return Record(id=identifier, statements=statements, question=row["question"], useful=useful,
                  depth=depth, answer=answer, choices=tuple(choices or ()),
                  group=str(row.get("group") or identifier),
                  bucket=None if bucket is None else str(bucket), source=where, kinds=kinds,
                  extra={k: v for k, v in row.items() if k not in known})


@register
class JsonlTask(TextTask):
    """A file of the schema above as a task (the config's data; shots from its shots_data, by
    default the same file). The probed file's suffix is the prompt's."""

    name = "jsonl"
    grouped_by = GROUPED_BY
    how_to_get = HOW_TO_GET
    options = ("shots_data",)

    def __init__(self, config=None):
        super().__init__(config)
        self.split = "test"
        self.suffix_set = False    # set by the probed rows; a shots file must then agree

    def load(self, split):
        """Every row of the data; a folder or hub dataset with several splits gives `split`."""
        self.split = split
        return from_file(self.config.data, self, "--data", split)

    def shots(self):
        """The shots file's rows (the probed split's, where it has several)."""
        path = self.config.shots_data or self.config.data
        shots = from_file(path, None, "--shots-data", self.split)
        others = {row_suffix(r) for r in shots} - {self.suffix}
        if self.suffix_set and others:
            raise UserError(f"--shots-data {path}: its suffix {sorted(others)[0]!r} is "
                            f"not the probed file's {self.suffix!r}: shots and questions must share "
                            "one prompt format")
        return shots


def from_rows(rows, where="rows", task=None):
    """Records from a list of dicts (a notebook's data), checked like a file's lines."""
    records, suffixes = [], set()
    for number, row in rows:
        records.append(record(row, f"{where}:{number}", number))
        suffixes.add(row.get("suffix", "") if isinstance(row, dict) else "")
    if not records:
        raise UserError(f"{where} holds no question: {HOW_TO_GET}")
    if len(suffixes) > 1:
        raise UserError(f"{where}: the lines have different suffixes {sorted(suffixes)}: a file is "
                        "one task, with one prompt format")
    if task is not None and not task.suffix_set:
        task.suffix, task.suffix_set = suffixes.pop(), True
    check_unique_ids(records, "jsonl")
    if all(r.bucket is None for r in records):
        for r in records:
            r.bucket = ALL
    return records


def row_suffix(record):
    return record.extra.get("suffix", "")


LIST_FIELDS = ("statements", "useful", "depth", "choices", "kinds")
TABLE_FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".arrow": "arrow"}


def from_file(path, task=None, flag="--data", split="test"):
    """Records from a .jsonl file, any file `datasets` reads (.parquet, .csv, .json, .arrow), a
    `save_to_disk` folder, or hf:ID (a dataset in the local Hugging Face cache; `split` picks
    the split of a folder or hub dataset that has several)."""
    import os

    if path.startswith("hf:") or os.path.isdir(path) or path.endswith(tuple(TABLE_FORMATS)):
        return from_rows(dataset_rows(path, flag, split), path, task)
    if not os.path.isfile(path):
        raise UserError(f"{flag} {path} is not a file: {HOW_TO_GET}")
    # .jsonl keeps our own reader: it names the line of a malformed one, where datasets (arrow)
    # fails for the whole file on the first line whose types disagree with the others.
    return from_rows(read_jsonl(path), path, task)


def dataset_rows(path, flag, split):
    """(row number from 1, dict) for each row of what `datasets` reads at `path`."""
    import os
    import tempfile

    import datasets

    datasets.disable_progress_bars()
    try:
        with tempfile.TemporaryDirectory(prefix="mechprobe-datasets-") as cache:
            # In memory, with a throw-away cache: reading a user's file leaves nothing behind.
            if path.startswith("hf:"):
                data = datasets.load_dataset(path[3:], split=split, keep_in_memory=True)
            elif os.path.isdir(path):
                data = datasets.load_from_disk(path, keep_in_memory=True)
            else:
                if not os.path.isfile(path):
                    raise UserError(f"{flag} {path} is not a file: {HOW_TO_GET}")
                kind = TABLE_FORMATS[os.path.splitext(path)[1]]
                # A CSV cell is text: read it as written ("True" is an answer, not a bool).
                options = {"features": text_columns(path)} if kind == "csv" else {}
                data = datasets.load_dataset(kind, data_files=path, split="train", cache_dir=cache,
                                             keep_in_memory=True, **options)
            if isinstance(data, datasets.DatasetDict):
                if split not in data:
                    raise UserError(f"{flag} {path} has the splits {sorted(data)}, not '{split}': "
                                    "pass --split with one of them")
                data = data[split]
            rows = data.to_list()
    except UserError:
        raise
    except Exception as err:   # datasets' and arrow's own errors: a file it cannot read
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        hint = (f"download it first with `hf download {path[3:]} --repo-type dataset`"
                if path.startswith("hf:") else HOW_TO_GET)
        raise UserError(f"{flag} {path}: datasets cannot read it ({type(err).__name__}: "
                        f"{first[:150]}): {hint}") from None
    for number, row in enumerate(rows, 1):
        yield number, tidy(row)


def text_columns(path):
    """Features reading every column of a CSV file as text."""
    import csv

    import datasets

    from mechprobe.jsonfiles import opened

    with opened(path, "r") as f:
        header = next(csv.reader(f), [])
    return datasets.Features({name: datasets.Value("string") for name in header})


def tidy(row):
    """A table row as the jsonl schema: columns a row did not fill (None) dropped, and the list
    columns of a CSV (JSON text in a cell) decoded."""
    import json

    row = {key: value for key, value in row.items() if value is not None}
    for key in LIST_FIELDS:
        if isinstance(row.get(key), str) and row[key].lstrip().startswith("["):
            try:
                row[key] = json.loads(row[key])
            except ValueError:
                pass   # record() names the field
    return row
