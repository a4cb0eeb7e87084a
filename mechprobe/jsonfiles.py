"""Reading dataset files: a damaged file is a one-line error naming the file and line."""

import json

from .cli import UserError


def read_jsonl(path):
    """Yield (line number, record) for each non-empty line."""
    # Lines are read as bytes so that a line that is not UTF-8 is reported with its number.
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
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


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise UserError(f"{path}:{err.lineno}: not valid JSON ({err.msg}): the file is truncated or "
                        "damaged; download it again") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text: the file is damaged or in another encoding; "
                        "download it again") from None
