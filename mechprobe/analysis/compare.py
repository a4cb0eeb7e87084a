"""Probing runs side by side: one table and one figure from several probe.py result folders
(compare.py). Runs are comparable when they probe the same task the same way (the same data or
number task) and share at least one setting; the probes may differ (the kNN beside a logistic
probe: is a score the model's or the probe's?), and the table names each run's. The table and
figure hold the shared settings (an --all-k run beside a fine-tuned model's run: its k), and the
text names the settings left out."""

import os

from mechprobe.cli import UserError, format_table
from mechprobe.jsonfiles import read_json
from mechprobe.probing.intervals_table import ci

# What must agree for two runs' scores to be read against each other, per task kind.
SAME_EVERYWHERE = ("task",)
SAME_PER_TASK = {"ksmallest": ("list_len", "num_set", "n_examples"),
                 "proofwriter": ("data", "split", "buckets"),
                 "arc": ("data", "split"), "jsonl": ("data", "split")}

COLUMNS = ["setting", "run", "probe", "n", "accuracy", "S_P1", "S_P1_95", "S_P2", "S_P2_95",
           "tree", "tree_rand"]      # "probe" only where the runs' probes differ


def probe_name(record):
    """results.json's probe as a short label: 'knn k=8 p=2 5 folds', 'logistic c=1 5 folds'."""
    record = dict(record)
    name = record.pop("name", "knn")          # runs before the probe was named were kNN ones
    folds = record.pop("folds", None)
    if name == "knn":
        label = f"knn k={record.get('neighbors')} p={record.get('p')}"
    elif name == "logistic":
        label = f"logistic c={record.get('c'):g}"
    else:
        label = name
    return label + (f" {folds} folds" if folds else "")


def read_run(folder):
    """A probe.py folder's results.json, with the folder's name as `run`."""
    path = os.path.join(folder, "results.json")
    if not os.path.isfile(path):
        raise UserError(f"{folder} holds no results.json: pass folders that probe.py wrote")
    # A run killed while writing, or a file cut short in a copy, leaves JSON that ends early.
    results = read_json(path, fix="rerun the probe (probe.py) that wrote it")
    if not isinstance(results, dict) or "settings" not in results or "probe" not in results:
        raise UserError(f"{path} is not a probe.py result (no settings): compare.py compares "
                        "probing runs")
    return {"run": os.path.basename(os.path.normpath(folder)), **results}


def check_comparable(runs):
    """The settings all runs share, in the first run's order; a UserError of one line naming the
    first run that differs, and how, where they cannot be compared."""
    first = runs[0]
    keys = SAME_EVERYWHERE + SAME_PER_TASK.get(first["task"], ())
    for other in runs[1:]:
        for key in keys:
            if other.get(key) != first.get(key):
                raise UserError(f"{other['run']} is not comparable with {first['run']}: {key} "
                                f"{other.get(key)!r} against {first.get(key)!r}")
        # the classifier may differ (that is a question worth asking), the folds may not
        folds, first_folds = other["probe"].get("folds"), first["probe"].get("folds")
        if folds != first_folds:
            raise UserError(f"{other['run']} is not comparable with {first['run']}: probe folds "
                            f"{folds!r} against {first_folds!r}")
    shared = [s for s in first["settings"] if all(s in r["settings"] for r in runs[1:])]
    if not shared:
        raise UserError(f"the runs share no setting ({first['run']}: "
                        f"{', '.join(first['settings'])}): compare runs of the same settings")
    return shared


def table_rows(runs, settings):
    """One row per shared setting and run: accuracy, S_P1 and S_P2 with their intervals, tree
    recovery of model and twin (None where a run predates them)."""
    rows = []
    for setting in settings:
        for run in runs:
            result = run["settings"][setting]
            found = result.get("interval", {}).get("probing_score", {})
            trees = result.get("tree_recovery", {})
            rows.append({"setting": setting, "run": run["run"], "probe": probe_name(run["probe"]),
                         "n": result["n_examples"],
                         "accuracy": result.get("accuracy"),
                         "S_P1": result["probing_score"]["useful"],
                         "S_P1_95": ci(found.get("useful")),
                         "S_P2": result["probing_score"]["depth"],
                         "S_P2_95": ci(found.get("depth")),
                         "tree": trees.get("model", {}).get("tree"),
                         "tree_rand": trees.get("random", {}).get("tree")})
    return rows


def figure(runs, settings):
    """Layer-wise S_P1 and S_P2 (single layers) of every run and shared setting, overlaid."""
    from matplotlib.ticker import MaxNLocator

    from mechprobe.plots import subplots

    fig, axes = subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, (stage, label) in zip(axes, (("useful", "S_P1 (usefulness)"),
                                         ("depth", "S_P2 (depth class)"))):
        ax.set_title(label)
        ax.set_xlabel("layer (0-based)")
        ax.axhline(0, color="0.6", linewidth=0.8)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))
        for index, run in enumerate(runs):
            for style, setting in zip(("-", "--", ":", "-."), settings):
                rows = [r for r in run["settings"][setting]["layerwise"]
                        if r["mode"] == "single" and r[f"probing_score_{stage}"] is not None]
                if rows:
                    ax.plot([r["layer"] for r in rows],
                            [r[f"probing_score_{stage}"] for r in rows], color=f"C{index}",
                            linestyle=style, marker="o" if len(rows) <= 16 else None,
                            markersize=3, label=f"{run['run']}: {setting}")
    axes[0].set_ylabel("probing score, single layer")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3,
               frameon=False, fontsize=9)
    fig.tight_layout()
    return fig


def compare(folders, out=None):
    """The comparison's printed text; with `out`, also OUT/comparison.txt and
    OUT/comparison.{png,pdf}. At most four shared settings are drawn (line styles)."""
    if len(folders) < 2:
        raise UserError("pass two or more probe.py result folders to compare")
    runs = [read_run(folder) for folder in folders]
    if len({r["run"] for r in runs}) < len(runs):    # runs/x/min01 and runs/y/min01: whole paths
        for run, folder in zip(runs, folders):
            run["run"] = os.path.normpath(folder)
    settings = check_comparable(runs)
    # An --all-k run beside a one-k run: the shared k is compared, and the rest named.
    others = [f"{run['run']}: {', '.join(s for s in run['settings'] if s not in settings)}"
              for run in runs if len(run["settings"]) > len(settings)]
    # the probe column where the runs' probes differ (the same probe everywhere: as before)
    columns = [c for c in COLUMNS if c != "probe"
               or len({probe_name(run["probe"]) for run in runs}) > 1]
    text = format_table(table_rows(runs, settings), columns) + (
        "\n_95: 95% bootstrap intervals over examples; tree, tree_rand: share of examples whose "
        "whole tree the probes\nrecover for the model and its random twin (docs/METHOD.md "
        "section 5); '-': a run written before them.") + (
        f"\nonly the settings every run has are compared; also probed: {'; '.join(others)}"
        if others else "")
    if out:
        from mechprobe.outputs import write_lines
        from mechprobe.plots import save_figure

        save_figure(figure(runs, settings[:4]), out, "comparison")
        write_lines(os.path.join(out, "comparison.txt"), [text + "\n"])
    return text
