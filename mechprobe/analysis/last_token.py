"""The last token's attention on k-th smallest examples, by input position and by sorted rank.

Shared by the attention visualisation and the causal analysis (METHOD.md): both average the last
token's attention over the test set, laid out by position (1st..L-th number of the input) or by
rank (1st..L-th smallest), per head or head-averaged.

Started as several processes (mechprobe.parallel), each runs the model on its share of the
examples and the results are combined, so every process returns what one process would.
"""

import numpy as np
import torch
from tqdm.auto import tqdm

from mechprobe.parallel import gathered, my_share, summed
from mechprobe.models import input_device


def last_token_attention(recorder, ids, batch_size, desc="attention"):
    """(n, layers, heads, L): every head's attention from the last token to each position."""
    device = input_device(recorder.model)
    ids = torch.as_tensor(ids)
    share = my_share(len(ids))
    mine = ids[share]
    last = ids.shape[1] - 1
    out = []
    for start in tqdm(range(0, len(mine), batch_size), desc=desc, unit="batch", leave=False):
        chunk = mine[start:start + batch_size].to(device)
        rows = torch.full((len(chunk), 1), last, device=device)
        _, recorded = recorder.forward(chunk, rows=rows, per_head=True)
        out.append(torch.stack([recorded[layer][:, :, 0] for layer in sorted(recorded)], dim=1).cpu())
    (attention,) = gathered(share, [torch.cat(out).numpy()], len(ids))
    return attention


def by_rank(attention, indices):
    """Reorder the last axis from input position to sorted rank (ties by position)."""
    order = np.argsort(indices, axis=-1, kind="stable")            # (n, L): position of each rank
    return np.take_along_axis(attention, order[:, None, None, :], axis=-1)


def accuracy_with_heads_masked(recorder, ids, targets, head_mask, batch_size):
    """Next-token accuracy at the last position with the heads where head_mask is 0 zeroed."""
    device = input_device(recorder.model)
    n = len(ids)
    share = my_share(n)
    ids, targets = torch.as_tensor(ids)[share], np.asarray(targets)[share]
    mask = None if head_mask is None else torch.as_tensor(head_mask, dtype=torch.float32, device=device)
    correct = 0
    for start in range(0, len(ids), batch_size):
        chunk = ids[start:start + batch_size].to(device)
        last = torch.full((len(chunk),), chunk.shape[1] - 1, device=device)
        logits, _ = recorder.forward(chunk, head_mask=mask, logits_at=last)
        correct += int((logits.argmax(-1).cpu().numpy() == targets[start:start + len(chunk)]).sum())
    return summed(correct) / n
