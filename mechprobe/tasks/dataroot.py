"""What --data names: a task's folder, a downloaded copy of the authors' Hugging Face dataset repo
(which holds data/proofwriter/ and data/arc/), or `hf:<repo id>` in the local Hugging Face cache."""

import os

from mechprobe.cli import UserError

AUTHORS_DATASET = "yyyyifan/MechanisticProbe_ProofWriter_ARC"


def cached_snapshot(repo_id):
    """The local snapshot folder of a dataset repo; never downloads (the machines that probe are
    often offline, and a silent multi-GB download is not what a path argument should do)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    how = f"download it first with `hf download {repo_id} --repo-type dataset`"
    if not repo_id:
        raise UserError(f"--data hf: needs a dataset id, e.g. hf:{AUTHORS_DATASET}")
    try:
        return snapshot_download(repo_id, repo_type="dataset", local_files_only=True)
    except (LocalEntryNotFoundError, OSError, ValueError):
        raise UserError(f"--data hf:{repo_id} is not in the local Hugging Face cache: {how}") from None


def resolve(spec, task):
    """The folder to read `task` ('proofwriter' or 'arc') from: the repo's data/<task> (or
    <task>) subfolder when `spec` is a dataset root that has one, else `spec` itself."""
    if spec.startswith("hf:"):
        spec = cached_snapshot(spec[len("hf:"):])
    for nested in (os.path.join(spec, "data", task), os.path.join(spec, task)):
        if os.path.isdir(nested):
            return nested
    return spec
