"""Causal analysis on the k-th smallest task (METHOD.md): head entropy, pruning, attention flow.

Heads that focus their attention (low entropy over positions or over sorted ranks) are the
candidates for doing the reasoning. Pruning them, against pruning heads at random, tests whether
the answer depends on them. Pruning a head zeroes its contribution to the attention output,
through the recorder (transformers 5 ignores head_mask).
"""

import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from mechprobe import seeds
from mechprobe.tasks import ksmallest
from mechprobe.cli import UserError, format_table
from mechprobe.analysis.last_token import accuracy_with_heads_masked, by_rank, last_token_attention
from mechprobe.outputs import make_dirs, write_json
from mechprobe.parallel import is_main_process, my_share, summed, world_size
from mechprobe.plots import heatmap, save_figure, subplots
from mechprobe.probing.config import KSmallestConfig
from mechprobe.probing.ksmallest import load_task_model, read_config
from mechprobe.attention.recorder import Recorder
from mechprobe.models import input_device

FRACTIONS = [round(0.1 * i, 1) for i in range(1, 10)]
CASE_FRACTION = 0.4
def case_positions(list_len):
    """1-based positions that receive the smallest and second smallest in the case study: the
    paper's 8 and 12 of 16 numbers, at the same relative places for other list lengths."""
    if list_len < 4:
        raise UserError(f"the case study places the two smallest numbers at half and three quarters "
                        f"of the list, which needs --list-len 4 or more (got {list_len})")
    return list_len // 2, 3 * list_len // 4


# Not scipy.stats.entropy: its values differ in the last bits (another log; float32 input stays
# float32), which would change the printed entropies and the pruning order of near-ties.
def normalised_entropy(distributions):
    """Entropy of each distribution along the last axis, divided by log(length): in [0, 1]."""
    p = distributions / distributions.sum(axis=-1, keepdims=True)
    logs = np.log(np.where(p > 0, p, 1.0))
    return -(p * logs).sum(axis=-1) / np.log(p.shape[-1])


def lowest_first_mask(entropy, n_pruned):
    """(layers, heads) keep-mask with the n_pruned lowest-entropy heads zeroed (ties: lower index)."""
    mask = np.ones(entropy.size, dtype=np.float32)
    mask[np.argsort(entropy.ravel(), kind="stable")[:n_pruned]] = 0
    return mask.reshape(entropy.shape)


def random_mask(shape, n_pruned, rng):
    mask = np.ones(int(np.prod(shape)), dtype=np.float32)
    mask[rng.choice(mask.size, size=n_pruned, replace=False)] = 0
    return mask.reshape(shape)


def pruning_curves(accuracy_of, position_entropy, size_entropy, repeats, seed):
    """Accuracy at each pruned fraction: at random (mean and spread over repeats), lowest
    position entropy first, lowest size entropy first."""
    n_heads = position_entropy.size
    curves = {"random": [], "min_position_entropy": [], "min_size_entropy": []}
    for fraction in FRACTIONS:
        n_pruned = int(round(fraction * n_heads))
        runs = [accuracy_of(random_mask(position_entropy.shape, n_pruned,
                                        seeds.rng(seed, seeds.PRUNING, repeat)))
                for repeat in range(repeats)]
        curves["random"].append({"fraction": fraction, "n_pruned": n_pruned,
                                 "accuracy": float(np.mean(runs)), "accuracy_std": float(np.std(runs)),
                                 "accuracy_runs": runs})
        for name, entropy in (("min_position_entropy", position_entropy),
                              ("min_size_entropy", size_entropy)):
            curves[name].append({"fraction": fraction, "n_pruned": n_pruned,
                                 "accuracy": accuracy_of(lowest_first_mask(entropy, n_pruned))})
    return curves


def pruning_figure(curves, unpruned, title):
    fig, ax = subplots(figsize=(5.5, 3.8))
    x = [row["fraction"] for row in curves["random"]]
    mean = np.array([row["accuracy"] for row in curves["random"]])
    std = np.array([row["accuracy_std"] for row in curves["random"]])
    ax.plot(x, mean, marker="o", label="random (mean ± std)")
    ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    for name, label in (("min_position_entropy", "lowest position entropy first"),
                        ("min_size_entropy", "lowest size entropy first")):
        ax.plot(x, [row["accuracy"] for row in curves[name]], marker="s", label=label)
    ax.axhline(unpruned, color="grey", linestyle="--", label="unpruned")
    ax.set_xlabel("fraction of heads pruned")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def place_smallest(indices, positions):
    """Examples whose smallest values are distinct, with the smallest and second smallest swapped
    into the given 0-based positions (distinct values keep 'smallest' unambiguous)."""
    ordered = np.sort(indices, axis=-1)
    placed = indices[(ordered[:, 0] < ordered[:, 1]) & (ordered[:, 1] < ordered[:, 2])].copy()
    for row in placed:
        for rank, target in enumerate(positions):
            source = int(np.argsort(row, kind="stable")[rank])
            row[[source, target]] = row[[target, source]]
    return placed


def attention_flow(recorder, ids, head_mask, batch_size):
    """(layers, L, L): head-mean attention of every position, over the heads left unpruned,
    averaged over examples; [l, i, j] = how much position i attends to j in layer l."""
    device = input_device(recorder.model)
    keep = torch.as_tensor(head_mask, dtype=torch.float32)
    n = len(ids)
    ids = torch.as_tensor(ids)[my_share(n)]       # this process's share; the sums are combined
    length = ids.shape[1]
    total = torch.zeros(len(keep), length, length, dtype=torch.float32)
    for start in range(0, len(ids), batch_size):
        chunk = ids[start:start + batch_size].to(device)
        rows = torch.arange(length, device=device).expand(len(chunk), -1)
        _, recorded = recorder.forward(chunk, rows=rows, per_head=True, head_mask=keep.to(device))
        # (batch, heads, L, L) per layer -> mean over kept heads -> sum over the batch
        flows = torch.stack([(recorded[l].cpu() * keep[l][None, :, None, None]).sum(1)
                             / keep[l].sum().clamp(min=1) for l in sorted(recorded)], dim=1)
        total = total + flows.sum(0)
    return summed(total.numpy()) / n


def flow_from(flow, source):
    """How much of each position's input at each layer traces back to `source` (attention only,
    residual stream ignored): v_0 = one-hot(source), v_{l+1} = A_l v_l. Returns (layers+1, L)."""
    v = np.zeros(flow.shape[1])
    v[source] = 1.0
    trace = [v]
    for layer in flow:
        v = layer @ v
        trace.append(v)
    return np.array(trace)


def flow_figure(flow, sources, title, threshold=0.05):
    """Positions across, layers up; grey lines: attention above threshold; coloured: the part of
    it that carries information from each source position."""
    n_layers, length, _ = flow.shape
    fig, ax = subplots(figsize=(8, 1.2 * n_layers + 1.5))
    for layer in range(n_layers):
        for i in range(length):
            for j in range(i + 1):
                if flow[layer, i, j] > threshold:
                    ax.plot([j, i], [layer, layer + 1], color="lightgrey",
                            linewidth=2 * flow[layer, i, j], zorder=1)
    colours = ["tab:red", "tab:blue"]
    for colour, source in zip(colours, sources):
        trace = flow_from(flow, source)
        for layer in range(n_layers):
            carried = flow[layer] * trace[layer][None, :]
            top = carried.max() or 1.0
            for i in range(length):
                for j in range(i + 1):
                    if carried[i, j] > threshold * top:
                        ax.plot([j, i], [layer, layer + 1], color=colour, alpha=min(1.0, carried[i, j] / top),
                                linewidth=2.5 * carried[i, j] / top + 0.3, zorder=2)
        ax.scatter([source], [0], color=colour, s=60, zorder=3,
                   label=f"from position {source + 1}")
    ax.scatter(np.repeat(np.arange(length), n_layers + 1), np.tile(np.arange(n_layers + 1), length),
               color="black", s=6, zorder=3)
    ax.set_xticks(range(length), range(1, length + 1))
    ax.set_yticks(range(n_layers + 1), ["input"] + [f"after layer {l}" for l in range(n_layers)])
    ax.set_xlabel("position (1-based)")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    return fig


@dataclass
class CausalConfig(KSmallestConfig):
    """causal.py: the k-th smallest examples, and how many random prunings and case examples."""

    random_repeats: int = 10           # random-pruning draws per fraction
    case_examples: int = 256           # examples of the attention-flow case study


def run(config, run_config, out):
    """Head entropies, pruning curves and the case study: figures, results.json, the printed
    tables. `run_config` (a RunConfig) names the model, device, batch size and seed."""
    started = time.time()
    model, _, task, numbers = load_task_model(run_config, config)
    positions = case_positions(task.list_len)
    with Recorder(model) as recorder:     # the model gets its attention implementation back
        batch_size = read_config(run_config).batch_size
        indices = ksmallest.probe_examples(task, config.n_examples, run_config.seed)
        ids = numbers.encode(indices)
        targets = numbers.later_ids[ksmallest.answers(task, indices)]

        skip = len(numbers.prefix)   # a BOS before the numbers is no position of the task
        attention = last_token_attention(recorder, ids, batch_size)[..., skip:]  # (n, layers, heads, L)
        position_entropy = normalised_entropy(attention.mean(axis=0))          # (layers, heads)
        size_entropy = normalised_entropy(by_rank(attention, indices).mean(axis=0))

        def accuracy_of(mask):
            return accuracy_with_heads_masked(recorder, ids, targets, mask, batch_size)

        unpruned = accuracy_of(None)
        curves = pruning_curves(accuracy_of, position_entropy, size_entropy, config.random_repeats, run_config.seed)

        # Case study: 40% lowest-position-entropy heads pruned, smallest and second smallest placed.
        case_mask = lowest_first_mask(position_entropy, int(round(CASE_FRACTION * position_entropy.size)))
        case_indices = place_smallest(indices[:config.case_examples], [p - 1 for p in positions])
        if not len(case_indices):
            raise UserError(f"none of the first {config.case_examples} examples has three distinct "
                            "smallest numbers for the case study: raise --n-examples/--case-examples")
        case_ids = numbers.encode(case_indices)
        case_targets = numbers.later_ids[ksmallest.answers(task, case_indices)]
        flow = attention_flow(recorder, case_ids, case_mask, batch_size)[:, skip:, skip:]
        case = {"pruned_fraction": CASE_FRACTION, "positions": list(positions),
                "n_examples": len(case_ids),
                "pruned_heads": [[int(l), int(h)] for l, h in zip(*np.nonzero(case_mask == 0))],
                "accuracy_pruned": accuracy_with_heads_masked(recorder, case_ids, case_targets, case_mask,
                                                              batch_size),
                "accuracy_unpruned": accuracy_with_heads_masked(recorder, case_ids, case_targets, None,
                                                                batch_size),
                "flow": flow.tolist()}
        if not is_main_process():      # the other processes only ran the model on their shares
            return None

        make_dirs(out)
        n_layers, n_heads = position_entropy.shape
        for name, entropy in (("position", position_entropy), ("size", size_entropy)):
            fig = heatmap(entropy.T, "layer (0-based)", "head", f"{task.name}: {name} entropy / log L",
                          cbar="normalised entropy", vmin=0, vmax=1)
            save_figure(fig, out, f"entropy_{name}")
        save_figure(pruning_figure(curves, unpruned, f"{task.name}: pruning heads"), out, "pruning")
        save_figure(flow_figure(flow, [p - 1 for p in positions],
                                f"{task.name}: attention flow, {int(CASE_FRACTION * 100)}% lowest-position-"
                                f"entropy heads pruned (accuracy {case['accuracy_pruned']:.2f})"),
                    out, "attention_flow")
        results = {"task": task.name, "k": task.k, "model": run_config.model, "n_examples": config.n_examples,
                   "seed": run_config.seed, "random_repeats": config.random_repeats,
                   "entropy": {"position": position_entropy.tolist(), "size": size_entropy.tolist()},
                   "unpruned_accuracy": unpruned, "pruning": curves, "case_study": case,
                   "world_size": world_size(), "seconds": round(time.time() - started, 2)}
        write_json(os.path.join(out, "results.json"), results)

        entropy_rows = [{"layer": l, "head": h, "position_entropy": float(position_entropy[l, h]),
                         "size_entropy": float(size_entropy[l, h])}
                        for l in range(n_layers) for h in range(n_heads)]
        print(format_table(entropy_rows, list(entropy_rows[0])))
        print()
        table = [{"pruned": f"{int(r['fraction'] * 100)}% ({r['n_pruned']})",
                  "random": f"{r['accuracy']:.4f} ± {r['accuracy_std']:.4f}",
                  "min_position_entropy": p["accuracy"], "min_size_entropy": s["accuracy"]}
                 for r, p, s in zip(curves["random"], curves["min_position_entropy"],
                                    curves["min_size_entropy"])]
        print(f"test accuracy with heads pruned ({config.n_examples} examples; unpruned {unpruned:.4f}; "
              f"random: mean ± std over {config.random_repeats} draws)")
        print(format_table(table, list(table[0])))
        print(f"\ncase study: {len(case['pruned_heads'])} lowest-position-entropy heads pruned, smallest "
              f"at position {positions[0]}, second smallest at {positions[1]}: accuracy "
              f"{case['accuracy_pruned']:.4f} (unpruned {case['accuracy_unpruned']:.4f})")
        print(f"results: {os.path.join(out, 'results.json')}")
        return results
