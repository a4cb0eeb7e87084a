"""Reading dataset files: a damaged file is a one-line error naming the file and line."""

import json

from mechprobe.cli import UserError


def unreadable(path, err):
    """An OSError on reading a data file, as the one line a user can act on."""
    return UserError(f"cannot read {path} ({err.strerror or type(err).__name__}): check that it is "
                     "a readable file")


def opened(path, mode="rb"):
    try:
        return open(path, mode)
    except OSError as err:
        raise unreadable(path, err) from None


def read_jsonl(path):
    """Yield (line number, record) for each non-empty line."""
    # Lines are read as bytes so that a line that is not UTF-8 is reported with its number.
    with opened(path) as f:
        for number, line in enumerate(f, 1):
            if number == 1:
                line = line.removeprefix(b"\xef\xbb\xbf")   # a byte-order mark (Windows editors)
            if not line.strip():
                continue
            try:
                yield number, json.loads(line.decode("utf-8"))
            except UnicodeDecodeError:
                raise UserError(f"{path}:{number}: not UTF-8 text: the file is damaged or in another "
                                "encoding; download or generate it again") from None
            except json.JSONDecodeError as err:
                raise UserError(f"{path}:{number}: not valid JSON ({err.msg}): the file is truncated "
                                "or damaged; download or generate it again") from None


def read_json(path, fix="download it again"):
    """The JSON in `path`; a damaged file is one line naming it and `fix`."""
    try:
        with opened(path) as f:
            return json.loads(f.read().decode("utf-8-sig"))   # -sig: a byte-order mark is fine
    except json.JSONDecodeError as err:
        raise UserError(f"{path}:{err.lineno}: not valid JSON ({err.msg}): the file is truncated or "
                        f"damaged; {fix}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text: the file is damaged or in another encoding; "
                        f"{fix}") from None


def read_by_depth(path, what):
    """The paper's preprocessed {split}.json: {"<depth>": [record, ...]} -> (depth, index, record,
    where) in depth order; a file of another shape is one error naming it."""
    by_depth = read_json(path)
    if not isinstance(by_depth, dict) or not all(
            isinstance(key, str) and key.isdigit() and isinstance(records, list)
            for key, records in by_depth.items()):
        raise UserError(f"{path}: not a preprocessed {what} file (expected an object of depth keys "
                        '"0", "1", ... each holding a list of records): download it again')
    for depth_key in sorted(by_depth, key=int):
        for index, record in enumerate(by_depth[depth_key]):
            yield int(depth_key), index, record, f"{path} (depth {depth_key}, record {index})"


def check_unique_ids(questions, what):
    """Two questions with one id would land in different folds and inflate the scores."""
    seen = {}
    for q in questions:
        if q.id in seen:
            raise UserError(f"{q.source}: question id {q.id} appears twice (also {seen[q.id]}): "
                            f"each {what} question must have its own id; remove the copy")
        seen[q.id] = q.source
    return questions
