"""Writing outputs so that nothing of the user's is lost and no run leaves half-written files.

Three rules, one place (docs/ROBUSTNESS.md lists what the user sees):
- An output folder is checked before any work: it must be missing, empty, or one this tool wrote
  before (it holds MARKER); a folder with other files is refused unless the user passes --force,
  and even then only files with the names we write are replaced, nothing else is deleted.
- A run holds a lock on its output folder (an advisory lock on MARKER), so a second run into the
  same folder is refused at once instead of racing on the same files.
- Every file or folder is written under a unique temporary name ending in PARTIAL and renamed into
  place when complete. A failed run removes what it created; a run killed outright (SIGKILL) can
  leave a *.partial entry, which the next run into that folder removes before it starts.
"""

import fcntl
import json
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager, suppress

from mechprobe.cli import UserError

MARKER = ".mechprobe"  # in every output folder this tool created; also its lock file
PARTIAL = ".partial"   # suffix of everything still being written


# torch is imported inside the functions that need it: data generators use this module and
# should start in a fraction of a second.


def remove(path):
    """Delete a file or folder tree; a missing one is fine."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with suppress(FileNotFoundError):
            os.remove(path)


@contextmanager
def atomic_path(path, folder=False):
    """Yield a unique temporary path beside `path` (a file, or an empty folder with folder=True);
    it replaces `path` when the block ends without error and is removed when it fails."""
    parent, name = os.path.split(os.path.abspath(path))
    if folder:
        tmp = tempfile.mkdtemp(dir=parent, prefix=f".{name}.", suffix=PARTIAL)
    else:
        handle, tmp = tempfile.mkstemp(dir=parent, prefix=f".{name}.", suffix=PARTIAL)
        os.close(handle)
    try:
        yield tmp
        if folder and os.path.isdir(path):
            # os.replace cannot put a folder over a non-empty one: move the old one aside first.
            old = tempfile.mkdtemp(dir=parent, prefix=f".{name}.old.", suffix=PARTIAL)
            os.replace(path, os.path.join(old, name))
            os.replace(tmp, path)
            remove(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise


def write_json(path, obj):
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def write_lines(path, lines):
    """A text file of lines (e.g. a JSONL dump), complete or not at all."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.writelines(lines)


def save_torch(path, obj):
    """torch.save of plain types and tensors only, so it loads back with weights_only=True."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path, device, what):
    """torch.load that never runs a pickle: a damaged or foreign file is one line naming --restart."""
    import torch

    try:
        with warnings.catch_warnings():  # torch warns on every foreign pickle protocol
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError (zip), EOFError, ...
        raise UserError(f"{path} is not a {what} this tool wrote ({type(err).__name__}): rerun with "
                        "--restart to discard it, or choose another --out") from None


def is_ours(folder):
    return os.path.isfile(os.path.join(folder, MARKER))


def check_path_text(path, flag):
    """Refuse a path whose text would make us act on another folder than the user sees: an empty
    one (the working directory), or one with '..' after a folder that does not exist (the kernel
    creates that folder, while abspath() skips it and names an existing one), or a symbolic link
    to nothing (makedirs fails on it, and it must never be taken for a folder we created)."""
    if not path.strip():
        raise UserError(f"{flag} is empty: give a path")
    parts = path.split(os.sep)
    for i, part in enumerate(parts):
        prefix = os.sep.join(parts[:i]) or (os.sep if path.startswith(os.sep) else ".")
        if part == ".." and not os.path.isdir(prefix):
            raise UserError(f"{flag} {path}: '..' follows {prefix}, which is not a folder: write "
                            "the path without it")
    if os.path.islink(path) and not os.path.exists(path):
        raise UserError(f"{flag} {path} is a symbolic link to {os.readlink(path)}, which does not "
                        "exist: create its target or choose another path")


def check_output_dir(path, force=False, flag="--out"):
    """Refuse an output folder that cannot or must not be written, before any work is done."""
    check_path_text(path, flag)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{flag} {path} is a file: give a folder path (it is created if missing)")
    if os.path.isdir(path):
        try:
            foreign = [name for name in os.listdir(path) if name != MARKER]
        except OSError as err:
            raise UserError(f"{flag} {path} cannot be read ({err.strerror}): choose another "
                            "folder") from None
        if foreign and not is_ours(path) and not force:
            raise UserError(f"{flag} {path} already holds files this tool did not write (e.g. "
                            f"{sorted(foreign)[0]}): choose a new or empty folder, or pass --force "
                            "to write into it (files with our output names are replaced, nothing "
                            "else is touched)")
        return
    ancestor = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise UserError(f"{flag} {path} lies inside {ancestor}, which is a file: choose a folder path")


def check_output_file(path, flag, looks_ours=lambda path: False, force=False):
    """An output file: its folder must exist, it must not be a folder, and an existing file is
    replaced only if `looks_ours(path)` says this tool wrote it (or with --force)."""
    check_path_text(path, flag)
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UserError(f"{flag} {path} is a folder: give a file path")
    if not os.path.isdir(parent):
        raise UserError(f"{flag} {path}: its folder {parent} does not exist: create it first or "
                        "choose another path")
    if os.path.exists(path) and not force and not looks_ours(path):
        raise UserError(f"{flag} {path} exists and was not written by this tool: choose another "
                        "path, or pass --force to replace it")
    try:  # a file can be made there (and is really there: /proc accepts the create, keeps nothing)
        handle, probe = tempfile.mkstemp(dir=parent, prefix=".write-check.", suffix=PARTIAL)
        os.close(handle)
        os.remove(probe)
    except OSError as err:
        raise UserError(f"cannot write to {flag} {path} ({err.strerror}): choose a writable "
                        "folder") from None


def _first_missing(path):
    """The topmost folder of `path` that does not exist yet (what makedirs will create)."""
    path = os.path.abspath(path)
    while not os.path.exists(os.path.dirname(path)):
        path = os.path.dirname(path)
    return path


@contextmanager
def output_dir(path, force=False, keep_on_interrupt=False, flag="--out"):
    """The output folder of one run: checked, created, locked, and cleaned up on failure.

    When the block fails, everything created in the folder during the run is removed (the folder
    itself too if the run created it), so the folder is as it was before. With keep_on_interrupt
    (runs that resume from a checkpoint) a Ctrl-C keeps what was written so far.
    """
    check_output_dir(path, force, flag)
    created = None if os.path.exists(path) else _first_missing(path)
    if created is not None and os.path.lexists(created):  # never remove on failure what exists
        raise UserError(f"{flag} {path} does not exist but {created} does: give a plain path")
    # A foreign folder written into with --force stays foreign: the marker goes again at the end.
    foreign = not created and not is_ours(path) and bool(os.listdir(path))
    lock = None
    try:
        os.makedirs(path, exist_ok=True)
        before = set(os.listdir(path))
        lock = open(os.path.join(path, MARKER), "a+")
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Only with the lock held: a *.partial entry is a killed run's leftover, not the work in
        # progress of a run still writing here.
        for name in list(before):
            if name.endswith(PARTIAL):
                remove(os.path.join(path, name))
                before.discard(name)
        if os.path.getsize(lock.name) == 0:
            lock.write(json.dumps({"written_by": "MechanisticProbe"}) + "\n")
            lock.flush()
    except BlockingIOError:
        lock.close()
        raise UserError(f"another run is writing to {flag} {path}: wait for it to finish, or "
                        "choose another folder") from None
    except OSError as err:
        if lock:
            lock.close()
        if created:
            remove(created)
        raise UserError(f"cannot write to {flag} {path} ({err.strerror}): choose a writable "
                        "folder") from None
    try:
        yield path
    except BaseException as err:
        if not (keep_on_interrupt and isinstance(err, KeyboardInterrupt)):
            if created:
                remove(created)
            else:
                for name in set(os.listdir(path)) - before:
                    remove(os.path.join(path, name))
        raise
    finally:
        lock.close()
        if foreign:
            remove(lock.name)


@contextmanager
def removed_on_failure(path):
    """A file the block may write outside an output folder (--dump-examples): if the block fails,
    a file it created is removed again."""
    existed = os.path.exists(path)
    try:
        yield path
    except BaseException:
        if not existed:
            remove(path)
        raise


def looks_like_dump(path):
    """True for a JSONL file whose first line is an example as --dump-examples writes it."""
    try:
        with open(path) as f:
            first = json.loads(f.readline())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(first, dict) and {"statements", "useful"} <= first.keys()



@contextmanager
def staged_files(folder):
    """Yield a temporary folder inside `folder`; when the block succeeds, each file in it is moved
    into `folder` (replacing a file of the same name), so every file is complete or absent."""
    tmp = tempfile.mkdtemp(dir=folder, prefix=".stage.", suffix=PARTIAL)
    try:
        yield tmp
        for name in sorted(os.listdir(tmp)):
            os.replace(os.path.join(tmp, name), os.path.join(folder, name))
    finally:
        remove(tmp)


def save_pretrained_into(folder, *objects):
    """save_pretrained() of a model and its tokenizer into `folder`, file by file complete."""
    with staged_files(folder) as tmp:
        for obj in objects:
            obj.save_pretrained(tmp)
