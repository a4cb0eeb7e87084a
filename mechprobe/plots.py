"""Figures, each saved as PNG and PDF side by side."""

import os

import matplotlib

matplotlib.use("Agg")  # no display on servers or in CI
import matplotlib.pyplot as plt  # noqa: E402

from mechprobe.outputs import atomic_path  # noqa: E402


def save_figure(fig, out_dir, name):
    """Write OUT/name.png and OUT/name.pdf; returns the two paths."""
    paths = []
    for ext in ("png", "pdf"):
        path = os.path.join(out_dir, f"{name}.{ext}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def line_plot(series, xlabel, ylabel, title):
    """series: {label: (xs, ys)} -> a figure with one line per label."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, label=label, marker="o" if len(xs) < 30 else None, markersize=3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return fig


def heatmap(matrix, xlabel, ylabel, title, xticks=None, yticks=None, cbar="attention",
            vmin=None, vmax=None):
    """A matrix as an image, row 0 at the bottom (layer 0 low, as in the paper's figures)."""
    rows, cols = len(matrix), len(matrix[0])
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * cols + 2), max(2.5, 0.35 * rows + 1.5)))
    image = ax.imshow(matrix, origin="lower", aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax)
    ax.set_xticks(range(cols), xticks if xticks is not None else range(cols))
    ax.set_yticks(range(rows), yticks if yticks is not None else range(rows))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=cbar)
    return fig
