"""Writing outputs so that nothing of the user's is lost and no run leaves half-written files.

The rules, one place (docs/ROBUSTNESS.md lists what the user sees):
- Ownership. Every output folder holds MARKER, a small JSON record of the command that wrote it
  and of every file this tool wrote there (at any depth). A folder is ours to write into only if
  it is missing, empty, or marked by the same command; another command's folder or a folder with
  files we did not write is refused unless the user passes --force. Even then, and in our own
  folders, a name we did not write is never deleted or replaced, at any depth: a sub-folder we
  swap in whole (a model, a data set) takes the user's files from the old one along.
- A run holds a lock on its output folder (an advisory lock on MARKER), so a second run into the
  same folder is refused at once instead of racing on the same files.
- Every file or folder is written under a unique temporary name ending in PARTIAL and renamed into
  place when complete, with the permissions the user's umask gives. A failed or interrupted run
  removes exactly what it created, nothing the user saved meanwhile; a run killed outright
  (SIGKILL) can leave a *.partial entry, which the next run into that folder removes.
Every writer goes through this module (atomic_path, make_dirs, discard), so that it knows what
the running command wrote.
"""

import errno
import fcntl
import json
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager, suppress

from mechprobe.cli import UserError

MARKER = ".mechprobe"  # in every output folder this tool wrote; also its lock file
PARTIAL = ".partial"   # suffix of everything still being written


# torch is imported inside the functions that need it: data generators use this module and
# should start in a fraction of a second.


def _umask():
    """The process's umask (it can only be read by setting it)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask





def remove(path):
    """Delete a file or folder tree; a missing one is fine. Only for paths this tool created
    (temporary names); everything else goes through discard()."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with suppress(FileNotFoundError):
            os.remove(path)


class Ledger:
    """What this tool wrote in one output folder: the marker's record plus this run's writes."""

    def __init__(self, root, command, recorded=(), users=False):
        self.root, self.command, self.users = os.path.abspath(root), command, users
        self.recorded = set(recorded)   # relative paths of files written by earlier runs
        self.written = set()            # ... and by this run
        self.created = []               # absolute paths this run created (files and folders)

    def relative(self, path):
        return os.path.relpath(os.path.abspath(path), self.root)

    def contains(self, path):
        rel = self.relative(path)
        return rel != ".." and not rel.startswith(".." + os.sep)

    def owns(self, path):
        rel = self.relative(path)
        return rel in self.recorded or rel in self.written

    def note(self, path, existed, inside=None):
        """`path` was written: a file, or a folder holding the files `inside` (relative to it;
        default: all of them); `existed`: it replaced an entry."""
        if os.path.isdir(path) and not os.path.islink(path):
            inside = files_in(path) if inside is None else inside
            self.written.update(self.relative(os.path.join(path, f)) for f in inside)
        else:
            self.written.add(self.relative(path))
        if not existed:
            self.created.append(os.path.abspath(path))

    def undo(self):
        """Remove what this run created, newest first: its files, and its folders once empty."""
        for path in reversed(self.created):
            self.remove_written(path)
        self.created = []

    def remove_written(self, path):
        """Remove the files under `path` that this run wrote, then folders left empty."""
        if os.path.isdir(path) and not os.path.islink(path):
            for name in os.listdir(path):
                self.remove_written(os.path.join(path, name))
            with suppress(OSError):   # not empty: something of the user's is inside
                os.rmdir(path)
        elif self.relative(path) in self.written:
            with suppress(FileNotFoundError):
                os.remove(path)
            self.written.discard(self.relative(path))

    def record(self):
        files = {rel for rel in self.recorded | self.written
                 if os.path.lexists(os.path.join(self.root, rel))}
        return {"written_by": "MechanisticProbe", "command": self.command,
                "users_folder": self.users, "files": sorted(files)}


def files_in(folder):
    """Every file below `folder`, relative to it."""
    return [os.path.relpath(os.path.join(root, f), folder)
            for root, _, files in os.walk(folder) for f in files]


_ledgers = []   # the output folders of the runs in progress in this process, innermost last


def ledger_of(path):
    """The ledger of the innermost running output folder that holds `path` (None: no run)."""
    for ledger in reversed(_ledgers):
        if ledger.contains(path):
            return ledger
    return None


def owned(path):
    """True when this tool wrote the file at `path` (in a run's folder, by this or an earlier run)."""
    ledger = ledger_of(path)
    return ledger is not None and ledger.owns(path)


def read_marker(folder):
    """A folder's marker as a dict, {} for a marker of an older version or a damaged one, None
    when there is none."""
    path = os.path.join(folder, MARKER)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            marker = json.loads(f.read() or "{}")
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return marker if isinstance(marker, dict) else {}


def _set_mode(path, folder):
    """mkstemp/mkdtemp make 0600/0700 entries; give them what the user's umask says."""
    with suppress(OSError):
        os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def make_dirs(path):
    """os.makedirs(exist_ok=True) whose new folders a failed run removes again (if empty)."""
    path = os.path.abspath(path)
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for folder in reversed(missing):
        os.makedirs(folder, exist_ok=True)
        ledger = ledger_of(folder)
        if ledger is not None:
            ledger.created.append(folder)


def discard(path, names=()):
    """Delete what this tool wrote under `path` (e.g. a finished run's checkpoint/): the files the
    running command's ledger lists, and files named one of `names` (our output names there, known
    also outside a run, as when a notebook calls the library); every other name is kept, and
    folders are removed once empty."""
    ledger = ledger_of(path)
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        for name in os.listdir(path):
            discard(os.path.join(path, name), names)
        with suppress(OSError):
            os.rmdir(path)
    elif (ledger is not None and ledger.owns(path)) or os.path.basename(path) in names or \
            path.endswith(PARTIAL):
        with suppress(FileNotFoundError):
            os.remove(path)
        if ledger is not None:
            ledger.written.discard(ledger.relative(path))
            ledger.recorded.discard(ledger.relative(path))


def _carry_over(old, new, owns):
    """Move every entry of folder `old` that this tool did not write into folder `new` (which
    replaces `old`), at any depth; an entry at one of our output names is replaced by ours."""
    for name in os.listdir(old):
        source, target = os.path.join(old, name), os.path.join(new, name)
        if os.path.isdir(source) and not os.path.islink(source):
            if not os.path.lexists(target):
                os.mkdir(target)
                _carry_over(source, target, owns)
                with suppress(OSError):   # nothing of the user's was in it
                    os.rmdir(target)
            elif os.path.isdir(target) and not os.path.islink(target):
                _carry_over(source, target, owns)
            else:
                raise UserError(f"{source} is a folder of yours where this tool writes the file "
                                f"{name}: move it away and rerun")
        elif not owns(source) and not os.path.lexists(target):
            os.replace(source, target)


@contextmanager
def atomic_path(path, folder=False):
    """Yield a unique temporary path beside `path` (a file, or an empty folder with folder=True);
    it replaces `path` when the block ends without error and is removed when it fails. A folder
    replacing an existing one keeps the names in it that this tool did not write."""
    parent, name = os.path.split(os.path.abspath(path))
    if folder:
        tmp = tempfile.mkdtemp(dir=parent, prefix=f".{name}.", suffix=PARTIAL)
    else:
        handle, tmp = tempfile.mkstemp(dir=parent, prefix=f".{name}.", suffix=PARTIAL)
        os.close(handle)
    _set_mode(tmp, folder)
    existed = os.path.lexists(path)
    ledger = ledger_of(path)
    inside = None
    try:
        yield tmp
        inside = files_in(tmp) if folder else None   # ours, before the user's join them
        if folder and os.path.isdir(path):
            # os.replace cannot put a folder over a non-empty one: move the old one aside first.
            old = tempfile.mkdtemp(dir=parent, prefix=f".{name}.old.", suffix=PARTIAL)
            os.replace(path, os.path.join(old, name))
            try:
                owns = (lambda p: ledger.owns(os.path.join(path, os.path.relpath(
                    p, os.path.join(old, name))))) if ledger else (lambda p: False)
                _carry_over(os.path.join(old, name), tmp, owns)
            except BaseException:
                os.replace(os.path.join(old, name), path)   # the old folder back, as it was
                remove(old)
                raise
            os.replace(tmp, path)
            remove(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise
    if ledger is not None:
        ledger.note(path, existed, inside)


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
        try:
            torch.save(obj, tmp)
        except RuntimeError as err:   # torch's zip writer says "failed writing", not ENOSPC
            if no_space_left(os.path.dirname(tmp)):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path) from err
            raise


def no_space_left(folder, below=1 << 20):
    """True when the file system of `folder` has less than `below` bytes free."""
    try:
        info = os.statvfs(folder)
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < below


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


def is_ours(folder, command=None):
    """True when `folder` holds our marker and is not a user's folder we wrote into with --force;
    with `command`, also when the marker names another command (a marker of an older version
    names none and counts as anyone's)."""
    marker = read_marker(folder)
    if marker is None or marker.get("users_folder"):
        return False
    return command is None or marker.get("command") in (None, command)


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


FORCE_HINT = ("or pass --force to write into it (files with our output names are replaced, nothing "
              "else is touched)")


def check_output_dir(path, force=False, flag="--out", command=None):
    """Refuse an output folder that cannot or must not be written, before any work is done: one
    holding files we did not write, or another command's output (unless `force`)."""
    check_path_text(path, flag)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{flag} {path} is a file: give a folder path (it is created if missing)")
    if os.path.isdir(path):
        try:
            foreign = sorted(name for name in os.listdir(path) if name != MARKER)
        except OSError as err:
            raise UserError(f"{flag} {path} cannot be read ({err.strerror}): choose another "
                            "folder") from None
        if not foreign or force:
            return
        if not is_ours(path):
            raise UserError(f"{flag} {path} already holds files this tool did not write (e.g. "
                            f"{foreign[0]}): choose a new or empty folder, {FORCE_HINT}")
        if not is_ours(path, command):
            raise UserError(f"{flag} {path} holds the output of {read_marker(path)['command']} "
                            f"(e.g. {foreign[0]}), which this command would overwrite: choose "
                            f"another folder, {FORCE_HINT}")
        return
    ancestor = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise UserError(f"{flag} {path} lies inside {ancestor}, which is a file: choose a folder path")


def check_output_file(path, flag, force=False, inputs=()):
    """An output file (e.g. --dump-examples): its folder must exist, it must not be a folder, an
    existing file is replaced only with --force (a standalone file carries no marker, so this tool
    cannot tell its own from the user's), and never when it is one of the run's `inputs`."""
    check_path_text(path, flag)
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UserError(f"{flag} {path} is a folder: give a file path")
    if not os.path.isdir(parent):
        raise UserError(f"{flag} {path}: its folder {parent} does not exist: create it first or "
                        "choose another path")
    for source_flag, source in inputs:
        if source and os.path.exists(source) and os.path.exists(path) and os.path.samefile(
                source, path):
            raise UserError(f"{flag} {path} is the {source_flag} file this run reads: choose "
                            "another path")
    if os.path.lexists(path) and not force:
        raise UserError(f"{flag} {path} exists: choose another path, or pass --force to replace it")
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


def _write_marker(lock, ledger):
    """Rewrite the marker in place: it is also the lock file, which must keep its inode."""
    lock.seek(0)
    lock.truncate()
    lock.write(json.dumps(ledger.record()) + "\n")
    lock.flush()


@contextmanager
def output_dir(path, force=False, keep_on_interrupt=False, flag="--out", *, command):
    """The output folder of one run of `command`: checked, created, locked, recorded in its
    marker, and cleaned up on failure.

    When the block fails, what the run created in the folder is removed (the folder itself too if
    the run created it and nothing else is in it), so the folder is as it was before, with any
    file the user saved into it meanwhile. With keep_on_interrupt (runs that resume from a
    checkpoint) a Ctrl-C keeps what was written so far.
    """
    check_output_dir(path, force, flag, command)
    created = None if os.path.exists(path) else _first_missing(path)
    if created is not None and os.path.lexists(created):  # never remove on failure what exists
        raise UserError(f"{flag} {path} does not exist but {created} does: give a plain path")
    # A user's folder written into with --force stays the user's: the marker says so.
    marker = read_marker(path) if not created else None
    users = bool(not created and os.listdir(path) and (marker is None or marker.get("users_folder")))
    if marker and not users and marker.get("command") not in (None, command):
        command = marker["command"]   # --force into another command's folder: still its folder
    ledger = Ledger(path, command, (marker or {}).get("files") or (), users)
    marked = marker is not None   # a failed run that added the marker removes it again
    lock = None
    try:
        make_dirs(path)
        lock = open(os.path.join(path, MARKER), "a+")
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Only with the lock held: a *.partial entry is a killed run's leftover, not the work in
        # progress of a run still writing here.
        for name in os.listdir(path):
            if name.endswith(PARTIAL):
                remove(os.path.join(path, name))
        _write_marker(lock, ledger)
    except BlockingIOError:
        lock.close()
        raise UserError(f"another run is writing to {flag} {path}: wait for it to finish, or "
                        "choose another folder") from None
    except OSError as err:
        if lock:
            lock.close()
        if created:
            remove(created)
        raise disk_error(err, f"{flag} {path}") from None
    _ledgers.append(ledger)
    failed = False
    try:
        yield path
    except BaseException as err:
        failed = not (keep_on_interrupt and isinstance(err, KeyboardInterrupt))
        if failed:
            ledger.undo()
        if isinstance(err, OSError) and (err.errno in (errno.ENOSPC, errno.EDQUOT) or (
                err.errno in DISK_ERRORS and err.filename and ledger.contains(str(err.filename)))):
            raise disk_error(err, f"{flag} {path}") from None   # every writer's, said once
        raise
    finally:
        _ledgers.remove(ledger)
        if failed and not marked:
            lock.close()
            with suppress(FileNotFoundError):
                os.remove(os.path.join(path, MARKER))
            folder = path   # the folders this run made, up to the first one, where empty
            while created:
                with suppress(OSError):
                    os.rmdir(folder)
                if os.path.abspath(folder) == created:
                    break
                folder = os.path.dirname(os.path.abspath(folder))
        else:
            with suppress(OSError):   # a full disk must not hide the run's own error
                _write_marker(lock, ledger)
            lock.close()


DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def disk_error(err, where):
    """An OSError while writing, as the one line a user can act on."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return UserError(f"no space left on the device while writing {where}: free some space "
                         "or choose another folder")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return UserError(f"cannot write to {where} ({err.strerror}): choose a writable folder")
    return UserError(f"cannot write to {where} ({err.strerror}): check the disk and the path")


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


@contextmanager
def staged_files(folder):
    """Yield a temporary folder inside `folder`; when the block succeeds, each file in it is moved
    into `folder` (replacing a file of the same name), so every file is complete or absent."""
    tmp = tempfile.mkdtemp(dir=folder, prefix=".stage.", suffix=PARTIAL)
    ledger = ledger_of(folder)
    try:
        yield tmp
        for name in sorted(os.listdir(tmp)):
            target = os.path.join(folder, name)
            existed = os.path.lexists(target)
            _set_mode(os.path.join(tmp, name), os.path.isdir(os.path.join(tmp, name)))
            os.replace(os.path.join(tmp, name), target)
            if ledger is not None:
                ledger.note(target, existed)
    finally:
        remove(tmp)


def save_pretrained_into(folder, *objects):
    """save_pretrained() of a model and its tokenizer into `folder`, file by file complete."""
    with staged_files(folder) as tmp:
        for obj in objects:
            obj.save_pretrained(tmp)
