"""Reading dataset files: a damaged file is a one-line error naming the file and line."""

import json

from .cli import UserError


def read_jsonl(path):
    """Yield (line number, record) for each non-empty line."""
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{path}:{number}: not valid JSON ({err.msg}): the file is truncated "
                                "or damaged; download or generate it again") from None


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise UserError(f"{path}:{err.lineno}: not valid JSON ({err.msg}): the file is truncated or "
                        "damaged; download it again") from None
