"""attn_visual.py and causal.py end to end on a small fine-tuned model, and their pieces."""

import json

import numpy as np
from conftest import run_script

from mechprobe.analysis import causal

from mechprobe.tasks import ksmallest
from mechprobe.attention.last_token import by_rank

FIGURES_ATTN = ["attention_by_rank", "attention_by_position"]
FIGURES_CAUSAL = ["entropy_position", "entropy_size", "pruning", "attention_flow"]


def assert_figures(out, names):
    for name in names:
        for ext in ("png", "pdf"):
            assert (out / f"{name}.{ext}").stat().st_size > 0


def test_attn_visual(small_finetuned, tmp_path):
    out = tmp_path / "attn"
    proc = run_script("attn_visual.py", "--model", str(small_finetuned / "model"), "--n-examples", "64",
                      "--device", "cpu", "--out", str(out))
    assert "top_rank" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    for key in ("by_rank", "by_position"):
        matrix = np.array(results[key])
        assert matrix.shape == (2, 16)                    # layers x numbers
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-5)
    # the same attention, only laid out differently
    np.testing.assert_allclose(np.sort(results["by_rank"]), np.sort(results["by_position"]), atol=0.5)
    assert len(results["layers"]) == 2
    assert_figures(out, FIGURES_ATTN)
    run_script("attn_visual.py", "--model", str(small_finetuned / "model"), "--random-init",
               "--n-examples", "16", "--device", "cpu", "--out", str(tmp_path / "original"))
    assert json.loads((tmp_path / "original" / "results.json").read_text())["random_init"] is True


def test_causal(small_finetuned, tmp_path):
    out = tmp_path / "causal"
    proc = run_script("causal.py", "--model", str(small_finetuned / "model"), "--n-examples", "64",
                      "--random-repeats", "3", "--case-examples", "16", "--device", "cpu",
                      "--out", str(out))
    assert "min_size_entropy" in proc.stdout and "case study" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    for name in ("position", "size"):
        entropy = np.array(results["entropy"][name])
        assert entropy.shape == (2, 2) and entropy.min() >= 0 and entropy.max() <= 1
    for curve in ("random", "min_position_entropy", "min_size_entropy"):
        rows = results["pruning"][curve]
        assert [r["fraction"] for r in rows] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
        assert all(0 <= r["accuracy"] <= 1 for r in rows)
    assert all(len(r["accuracy_runs"]) == 3 for r in results["pruning"]["random"])
    case = results["case_study"]
    assert len(case["pruned_heads"]) == 2 and np.array(case["flow"]).shape == (2, 16, 16)
    assert_figures(out, FIGURES_CAUSAL)


def test_entropy_masks_and_placement():
    uniform, peaked = np.full(8, 1 / 8), np.eye(8)[3]
    np.testing.assert_allclose(causal.normalised_entropy(np.stack([uniform, peaked])), [1.0, 0.0])
    entropy = np.array([[0.5, 0.1], [0.9, 0.2]])
    assert causal.lowest_first_mask(entropy, 2).tolist() == [[1, 0], [1, 0]]
    mask = causal.random_mask((3, 4), 5, np.random.default_rng(0))
    assert mask.shape == (3, 4) and mask.sum() == 7

    indices = ksmallest.generate(ksmallest.Task(k=1), 50, 0)
    placed = causal.place_smallest(indices, [7, 11])
    assert len(placed) > 30
    for before, after in zip(indices[[i for i in range(50) if len(set(np.sort(indices[i])[:3])) == 3]], placed):
        assert sorted(before) == sorted(after)
        order = np.argsort(after, kind="stable")
        assert order[0] == 7 and order[1] == 11


def test_by_rank_and_flow_trace():
    attention = np.arange(4, dtype=float)[None, None, None, :]            # position p gets weight p
    indices = np.array([[30, 10, 40, 20]])
    assert by_rank(attention, indices)[0, 0, 0].tolist() == [1, 3, 0, 2]  # ranks: 10, 20, 30, 40
    flow = np.array([[[1, 0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]]])        # one layer
    assert causal.flow_from(flow, 0).tolist() == [[1, 0, 0], [1, 0.5, 0.2]]
