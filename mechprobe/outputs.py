"""Writing results so that an interrupted or failed run never leaves a half-written file."""

import json
import os
import random
import shutil

import numpy as np


# torch is imported inside the functions that need it: data generators use this module and
# should start in a fraction of a second.
def seed_everything(seed):
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def write_json(path, obj):
    """Write JSON to a temporary file, then rename it into place (atomic on one filesystem)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def save_torch(path, obj):
    import torch

    tmp = f"{path}.tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def replace_dir(tmp_dir, final_dir):
    """Move a fully written tmp_dir to final_dir, replacing any older copy."""
    old = f"{final_dir}.old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(final_dir):
        os.replace(final_dir, old)
    os.replace(tmp_dir, final_dir)
    shutil.rmtree(old, ignore_errors=True)
