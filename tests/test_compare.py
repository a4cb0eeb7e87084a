"""compare.py: probing runs side by side, and the refusal of runs that cannot be compared."""

import json

from conftest import refused, run_ok
from test_trees_bootstrap import setting

from mechprobe.probing.result import ProbeResult

META = {"task": "ksmallest", "probe": {"neighbors": 5, "p": 2, "folds": 5}, "list_len": 16,
        "num_set": 512, "n_examples": 40}


def saved(folder, seed, **meta):
    """A probe.py-like result folder from a synthetic setting (a model whose features carry the
    labels, seeded)."""
    result, _, _ = setting(seed=seed)
    ProbeResult({**META, **meta}, {"min01": {**result, "accuracy": 0.5}}).save(str(folder))
    return folder


def test_two_runs_side_by_side(tmp_path):
    a, b = saved(tmp_path / "a", 0), saved(tmp_path / "b", 3)
    printed = run_ok("compare", a, b, "--out", tmp_path / "cmp")
    rows = [line.split() for line in printed.splitlines() if line.startswith("min01")]
    assert [row[1] for row in rows] == ["a", "b"]
    for row, folder in zip(rows, (a, b)):
        results = json.loads((folder / "results.json").read_text())
        assert row[4] == f"{results['probing_score']['useful']:.4f}"
        low, high = results["interval"]["probing_score"]["useful"]
        assert row[5] == f"[{low:.3f},{high:.3f}]"
        assert row[8] == f"{results['tree_recovery']['model']['tree']:.4f}"
    assert (tmp_path / "cmp" / "comparison.png").is_file()
    assert (tmp_path / "cmp" / "comparison.txt").read_text().startswith("setting")


def test_runs_of_another_task_or_way_are_refused(tmp_path):
    a = saved(tmp_path / "a", 0)
    other_folds = saved(tmp_path / "folds", 0, probe={"neighbors": 5, "p": 2, "folds": 3})
    refused("compare", a, other_folds, words=["folds is not comparable with a", "probe"])
    other_task = saved(tmp_path / "pw", 0, task="proofwriter")
    refused("compare", a, other_task, words=["task 'proofwriter' against 'ksmallest'"])
    refused("compare", a, tmp_path, words=["no results.json"])
    refused("compare", a, words=["two or more"])


def test_an_all_k_run_is_compared_on_the_shared_k(tmp_path):
    """A fine-tuned model's one k beside an --all-k run (its random-init architecture or a
    pretrained model): the shared setting is compared, the others named in one line."""
    one = saved(tmp_path / "min01", 0)
    result, _, _ = setting(seed=3)
    every_k = {f"min{k:02d}": {**result, "accuracy": 0.1} for k in range(3)}
    ProbeResult(META, every_k).save(str(tmp_path / "random-init"))
    printed = run_ok("compare", one, tmp_path / "random-init")
    assert [line.split()[:2] for line in printed.splitlines() if line.startswith("min0")] == [
        ["min01", "min01"], ["min01", "random-init"]]
    assert "also probed: random-init: min00, min02" in printed


def test_runs_of_two_probes_side_by_side_name_their_probes(tmp_path):
    """The kNN beside a logistic probe on the same model: comparable (the same task and folds),
    and the table names each run's probe; runs of one probe keep the table as before."""
    a = saved(tmp_path / "a", 0)
    b = saved(tmp_path / "b", 3, probe={"name": "logistic", "c": 1.0, "max_iter": 1000,
                                        "features": "standardised", "folds": 5})
    printed = run_ok("compare", a, b)
    assert printed.splitlines()[0].split()[:3] == ["setting", "run", "probe"]
    rows = [line for line in printed.splitlines() if line.startswith("min01")]
    assert "knn k=5 p=2 5 folds" in rows[0] and "logistic c=1 5 folds" in rows[1]
    same = run_ok("compare", a, saved(tmp_path / "c", 3))
    assert "probe" not in same.splitlines()[0]


def test_a_truncated_results_json_is_named(tmp_path):
    """A results.json cut in half (a copy interrupted, a disk that filled) or that is not an
    object: one line naming the file and the fix, not a JSONDecodeError traceback."""
    a, b = saved(tmp_path / "a", 0), saved(tmp_path / "b", 3)
    text = (b / "results.json").read_text()
    (b / "results.json").write_text(text[:len(text) // 2])
    refused("compare", a, b, words=[str(b / "results.json"), "not valid JSON", "truncated",
                                    "rerun the probe"])
    (b / "results.json").write_text("[1, 2]")
    refused("compare", a, b, words=[str(b / "results.json"), "is not a probe.py result"])
