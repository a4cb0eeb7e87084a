"""Figures, each saved as PNG and PDF side by side.

Built as matplotlib Figure objects, not through pyplot: pyplot would need a backend chosen for
the whole process (a notebook's own included) and keeps every figure open until closed.
"""

import os

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mechprobe.outputs import atomic_path


def subplots(*grid, figsize, **kwargs):
    """(figure, axes) as pyplot.subplots gives them, without pyplot."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid, **kwargs)


def save_figure(fig, out_dir, name):
    """Write OUT/name.png and OUT/name.pdf; returns the two paths."""
    paths = []
    for ext in ("png", "pdf"):
        path = os.path.join(out_dir, f"{name}.{ext}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
        paths.append(path)
    return paths


def line_plot(series, xlabel, ylabel, title):
    """series: {label: (xs, ys)} -> a figure with one line per label."""
    fig, ax = subplots(figsize=(5, 3.5))
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, label=label, marker="o" if len(xs) < 30 else None, markersize=3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return fig


# Model lines solid, random twin dashed in its model line's colour: the gap between a solid line
# and its dashed twin is what the probing score measures.
LAYERWISE_STYLES = {"single": ("tab:blue", "o", "single layer"),
                    "cumulative": ("tab:orange", "s", "layers up to it")}
LAYERWISE_STAGES = {"useful": "usefulness", "depth": "depth"}


def layerwise_plot(rows, title):
    """Layer-wise probing rows (layer, mode, f1_<stage>, f1_random_<stage>) -> one panel per
    stage, single and cumulative lines for the model and its random twin."""
    fig, axes = subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, (stage, label) in zip(axes, LAYERWISE_STAGES.items()):
        ax.set_title(label)
        ax.set_xlabel("layer (0-based)")
        ax.grid(alpha=0.3)
        drawn = False
        for mode, (colour, marker, mode_label) in LAYERWISE_STYLES.items():
            picked = [r for r in rows if r["mode"] == mode and r[f"f1_{stage}"] is not None]
            if not picked:
                continue
            drawn = True
            layers = [r["layer"] for r in picked]
            marker = marker if len(layers) <= 16 else None   # markers would merge into a band
            ax.plot(layers, [r[f"f1_{stage}"] for r in picked], color=colour, marker=marker,
                    markersize=4, label=f"model, {mode_label}")
            ax.plot(layers, [r[f"f1_random_{stage}"] for r in picked], color=colour, marker=marker,
                    markersize=4, markerfacecolor="none", linestyle="--", alpha=0.8,
                    label=f"random twin, {mode_label}")
        if drawn:
            ax.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))
        else:
            ax.text(0.5, 0.5, "not applicable\n(fewer than two depth classes)", ha="center",
                    va="center", transform=ax.transAxes, color="0.4")
            ax.set_xticks([])
    axes[0].set_ylabel("macro F1")
    axes[0].set_ylim(0, 1.02)
    fig.suptitle(title)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4,
               frameon=False, fontsize=9)
    fig.tight_layout()
    return fig


def heatmap(matrix, xlabel, ylabel, title, xticks=None, yticks=None, cbar="attention",
            vmin=None, vmax=None):
    """A matrix as an image, row 0 at the bottom (layer 0 low, as in the paper's figures)."""
    rows, cols = len(matrix), len(matrix[0])
    fig, ax = subplots(figsize=(max(4.0, 0.35 * cols + 2), max(2.5, 0.35 * rows + 1.5)))
    image = ax.imshow(matrix, origin="lower", aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax)
    ax.set_xticks(range(cols), xticks if xticks is not None else range(cols))
    ax.set_yticks(range(rows), yticks if yticks is not None else range(rows))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=cbar)
    return fig
