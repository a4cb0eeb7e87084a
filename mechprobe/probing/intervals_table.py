"""The printed form of tree recovery and the bootstrap intervals (bootstrap.py,
tree_recovery.py): two columns beside S_P1 and S_P2 in the summary, and one more table with the
F1s' intervals."""

from mechprobe.cli import format_table


def ci(found):
    """[low, high] as '[0.912,0.951]'; None (no interval) stays None, printed '-'."""
    return None if found is None else f"[{found[0]:.3f},{found[1]:.3f}]"


def summary_columns(result):
    """The summary row's new cells of a setting: S_P intervals and tree recovery (model, twin);
    nothing for a results.json written before they existed."""
    if "interval" not in result:
        return {}
    sp = result["interval"]["probing_score"]
    trees = result["tree_recovery"]
    return {"S_P1_95": ci(sp["useful"]), "S_P2_95": ci(sp["depth"]),
            "tree": trees["model"]["tree"], "tree_rand": trees["random"]["tree"]}


def beside_scores(columns):
    """The summary's columns with each interval right after its score and tree recovery after
    S_P2's interval."""
    placed = [c for c in columns if c not in ("S_P1_95", "S_P2_95", "tree", "tree_rand")]
    for score, extra in (("S_P1", ["S_P1_95"]), ("S_P2", ["S_P2_95", "tree", "tree_rand"])):
        if score in placed and extra[0] in columns:
            at = placed.index(score) + 1
            placed[at:at] = [c for c in extra if c in columns]
    return placed


INTERVAL_COLUMNS = ["setting", "f1_useful_95", "f1_rand_useful_95", "p_useful", "f1_depth_95",
                    "f1_rand_depth_95", "p_depth", "useful_set", "useful_set_rand"]


def interval_rows(settings):
    """One row per setting with intervals: the F1s' intervals, the one-sided p-values of
    F1 > F1 twin, and the share of examples whose useful set is exactly right."""
    rows = []
    for name, result in settings.items():
        if "interval" not in result:
            continue
        found, p = result["interval"], result["f1_above_random_p"]
        trees = result["tree_recovery"]
        rows.append({"setting": name,
                     "f1_useful_95": ci(found["f1"]["useful"]),
                     "f1_rand_useful_95": ci(found["f1_random"]["useful"]),
                     "p_useful": p["useful"],
                     "f1_depth_95": ci(found["f1"]["depth"]),
                     "f1_rand_depth_95": ci(found["f1_random"]["depth"]),
                     "p_depth": p["depth"],
                     "useful_set": trees["model"]["useful_set"],
                     "useful_set_rand": trees["random"]["useful_set"]})
    return rows


def interval_report(settings):
    """The intervals' table, its legend and the flag for S_P intervals that include 0 ('' for
    a results.json without intervals)."""
    rows = interval_rows(settings)
    if not rows:
        return ""
    how = next(r["bootstrap"] for r in settings.values() if "bootstrap" in r)
    lines = [format_table(rows, INTERVAL_COLUMNS),
             f"_95: {how['level']:.0%} bootstrap intervals over examples ({how['replicates']} "
             f"replicates, seed {how['seed']}; out-of-fold predictions\n"
             "resampled, probes not refitted); p_*: one-sided bootstrap p-value of F1 > F1_rand;\n"
             "tree, useful_set: share of examples whose whole tree (useful set and depth classes),\n"
             "or useful set, the probe gets right (METHOD.md, section 5)."]
    zero = []
    for name, result in settings.items():
        found = result.get("probing_score_includes_zero", {})
        scores = [label for stage, label in (("useful", "S_P1"), ("depth", "S_P2"))
                  if found.get(stage)]
        if scores:
            zero.append(f"{name} ({', '.join(scores)})")
    if zero:
        lines.append(f"flag: the S_P interval includes 0 in {', '.join(zero)}: there the attention "
                     "is not shown to carry more of the tree than the random twin's.")
    return "\n".join(lines)
