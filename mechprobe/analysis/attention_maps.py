"""Attention visualisation on the k-th smallest task (METHOD.md): where does the last token look?

Per layer, the head-averaged attention of the last token, averaged over test examples, laid out
by sorted rank (1st..L-th smallest) and by input position.
"""

import os
import time

import numpy as np

from mechprobe.tasks import ksmallest
from mechprobe.cli import format_table
from mechprobe.attention.last_token import by_rank, last_token_attention
from mechprobe.outputs import write_json
from mechprobe.plots import heatmap, save_figure
from mechprobe.probing.ksmallest import load
from mechprobe.probing.pipeline import random_twin
from mechprobe.attention.recorder import Recorder


def layer_summary(rank_matrix, position_matrix, k):
    """Per layer: the rank and position receiving most attention, and the share on ranks 0..k."""
    rows = []
    for layer, (ranks, positions) in enumerate(zip(rank_matrix, position_matrix)):
        rows.append({"layer": layer, "top_rank": int(np.argmax(ranks)) + 1,
                     "top_rank_share": float(ranks.max()),
                     "useful_share": float(ranks[:k + 1].sum()),
                     "top_position": int(np.argmax(positions)) + 1,
                     "top_position_share": float(positions.max())})
    return rows


def run(args):
    started = time.time()
    model, _, task, numbers = load(args)
    label = f"{args.model} (random init)" if args.random_init else args.model
    if args.random_init:
        model = random_twin(model, args.seed)
    indices = ksmallest.probe_examples(task, args.n_examples, args.seed)
    attention = last_token_attention(Recorder(model), numbers.encode(indices), args.batch_size or 256)
    attention = attention[..., len(numbers.prefix):]      # the numbers only, not a BOS before them
    head_mean = attention.mean(axis=2, keepdims=True)                     # (n, layers, 1, L)
    position_matrix = head_mean[:, :, 0].mean(axis=0)                     # (layers, L)
    rank_matrix = by_rank(head_mean, indices)[:, :, 0].mean(axis=0)       # (layers, L)

    os.makedirs(args.out, exist_ok=True)
    ticks = range(1, task.list_len + 1)
    for name, matrix, xlabel in (("by_rank", rank_matrix, "sorted rank (1 = smallest)"),
                                 ("by_position", position_matrix, "input position (1-based)")):
        fig = heatmap(matrix, xlabel, "layer (0-based)", f"{label}: last-token attention, {task.name}",
                      xticks=ticks)
        save_figure(fig, args.out, f"attention_{name}")
    summary = layer_summary(rank_matrix, position_matrix, task.k)
    results = {"task": task.name, "k": task.k, "model": args.model, "random_init": args.random_init,
               "n_examples": args.n_examples, "seed": args.seed,
               "by_rank": rank_matrix.tolist(), "by_position": position_matrix.tolist(),
               "layers": summary, "seconds": round(time.time() - started, 2)}
    write_json(os.path.join(args.out, "results.json"), results)
    print(f"{label}, {task.name}: last-token attention averaged over heads and "
          f"{args.n_examples} examples (ranks and positions 1-based; useful_share: on ranks "
          f"1..{task.k + 1})")
    print(format_table(summary, list(summary[0])))
    print(f"results: {os.path.join(args.out, 'results.json')}")
    return results
