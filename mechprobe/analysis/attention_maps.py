"""Attention visualisation on the k-th smallest task (METHOD.md): where does the last token look?

Per layer, the head-averaged attention of the last token, averaged over test examples, laid out
by sorted rank (1st..L-th smallest) and by input position.
"""

import os
import time
from dataclasses import dataclass

import numpy as np

from mechprobe.tasks import ksmallest
from mechprobe.cli import format_table
from mechprobe.analysis.last_token import by_rank, last_token_attention
from mechprobe.outputs import make_dirs, write_json
from mechprobe.plots import heatmap, save_figure
from mechprobe.probing.config import KSmallestConfig
from mechprobe.probing.ksmallest import load_task_model, read_config
from mechprobe.models import random_twin
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


@dataclass
class AttentionMapsConfig(KSmallestConfig):
    """attn_visual.py: which k-th smallest examples, and whether to read a random twin instead."""

    random_init: bool = False          # the same architecture, randomly initialised


def run(config, run_config, out):
    """Last-token attention by sorted rank and by position, per layer: figures, results.json,
    the printed table. `run_config` (a RunConfig) names the model, device and seed."""
    started = time.time()
    model, _, task, numbers = load_task_model(run_config, config)
    label = f"{run_config.model} (random init)" if config.random_init else run_config.model
    if config.random_init:
        model = random_twin(model, run_config.seed)
    indices = ksmallest.probe_examples(task, config.n_examples, run_config.seed)
    with Recorder(model) as recorder:
        attention = last_token_attention(recorder, numbers.encode(indices),
                                         read_config(run_config).batch_size)
    attention = attention[..., len(numbers.prefix):]      # the numbers only, not a BOS before them
    head_mean = attention.mean(axis=2, keepdims=True)                     # (n, layers, 1, L)
    position_matrix = head_mean[:, :, 0].mean(axis=0)                     # (layers, L)
    rank_matrix = by_rank(head_mean, indices)[:, :, 0].mean(axis=0)       # (layers, L)

    make_dirs(out)
    ticks = range(1, task.list_len + 1)
    for name, matrix, xlabel in (("by_rank", rank_matrix, "sorted rank (1 = smallest)"),
                                 ("by_position", position_matrix, "input position (1-based)")):
        fig = heatmap(matrix, xlabel, "layer (0-based)", f"{label}: last-token attention, {task.name}",
                      xticks=ticks)
        save_figure(fig, out, f"attention_{name}")
    summary = layer_summary(rank_matrix, position_matrix, task.k)
    results = {"task": task.name, "k": task.k, "model": run_config.model, "random_init": config.random_init,
               "n_examples": config.n_examples, "seed": run_config.seed,
               "by_rank": rank_matrix.tolist(), "by_position": position_matrix.tolist(),
               "layers": summary, "seconds": round(time.time() - started, 2)}
    write_json(os.path.join(out, "results.json"), results)
    print(f"{label}, {task.name}: last-token attention averaged over heads and "
          f"{config.n_examples} examples (ranks and positions 1-based; useful_share: on ranks "
          f"1..{task.k + 1})")
    print(format_table(summary, list(summary[0])))
    print(f"results: {os.path.join(out, 'results.json')}")
    return results
