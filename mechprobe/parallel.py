"""Several processes reading attention at once: `accelerate launch --num_processes N` or
`torchrun --nproc_per_node N` start N copies of a command (WORLD_SIZE=N), one per GPU. Each copy
runs the model on its share of the examples; the shares are gathered so that every process holds
the whole result, and the main process alone fits probes and writes outputs.

One process (WORLD_SIZE unset or 1) is the plain case: every function here is then a no-op.
"""

import os

import numpy as np
import torch


def processes():
    """accelerate's PartialState when the command was started as several processes, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def is_main_process():
    state = processes()
    return state is None or state.is_main_process


def world_size():
    state = processes()
    return 1 if state is None else state.num_processes


def finish_processes():
    """Several processes: wait until the main one has written, then close the process group (a
    process that leaves first would tear it down under the others)."""
    state = processes()
    if state is not None:
        state.wait_for_everyone()
        torch.distributed.destroy_process_group()


def my_share(n):
    """This process's examples out of n, as indices (which `gathered` puts back in order): one
    contiguous piece, cut by accelerate's split_between_processes (all of them for one process)."""
    indices = list(range(n))
    state = processes()
    if state is None:
        return indices
    with state.split_between_processes(indices) as share:
        return share


def gathered(share, columns, n):
    """Every process's share of per-example columns, on every process, in example order.
    `share`: this process's example indices; `columns`: lists (or arrays) with one entry per
    example of the share, or None. Returns the columns over all n examples (arrays stay arrays).
    Ours around accelerate's gather_object, which joins flat lists: the columns are regrouped by
    example, in example order, and a lost example is caught."""
    if processes() is None:
        return columns
    from accelerate.utils import gather_object

    rows = gather_object([(i, *(None if c is None else c[j] for c in columns))
                          for j, i in enumerate(share)])
    rows = sorted(rows, key=lambda row: row[0])
    assert [row[0] for row in rows] == list(range(n)), "a process lost examples"
    result = []
    for index, column in enumerate(columns, start=1):
        values = [row[index] for row in rows]
        result.append(None if column is None else np.array(values) if isinstance(column, np.ndarray)
                      else values)
    return result


def summed(value):
    """The sum of a number over all processes (the number itself for one)."""
    if processes() is None:
        return value
    from accelerate.utils import gather_object

    return sum(gather_object([value]))
