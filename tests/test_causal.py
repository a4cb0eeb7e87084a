"""attn_visual.py and causal.py end to end on a small fine-tuned model, and their pieces."""

import json

import numpy as np
import pytest
import torch
from conftest import run_ok
from scipy.stats import entropy as scipy_entropy

from mechprobe.analysis import causal

from mechprobe.tasks import ksmallest
from mechprobe.analysis.last_token import by_rank

FIGURES_ATTN = ["attention_by_rank", "attention_by_position"]
FIGURES_CAUSAL = ["entropy_position", "entropy_size", "pruning", "attention_flow"]


def assert_figures(out, names):
    for name in names:
        for ext in ("png", "pdf"):
            assert (out / f"{name}.{ext}").stat().st_size > 0


def load_eager(model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager").eval()
    return model, AutoTokenizer.from_pretrained(model_dir)


def examples(tokenizer, n, seed=0):
    """The k = 1 test examples causal.py and attn_visual.py draw: (indices, token ids, answer ids)."""
    task = ksmallest.Spec(k=1)
    numbers = ksmallest.number_set(tokenizer, task.num_set)
    assert numbers.prefix == ()                     # the tiny GPT-2 puts no BOS before the numbers
    indices = ksmallest.probe_examples(task, n, seed)
    return indices, numbers.encode(indices), numbers.later_ids[ksmallest.answers(task, indices)]


def eager_last_token_attention(model, ids):
    """(n, layers, heads, L) from transformers' own eager attention: no recorder involved."""
    with torch.no_grad():
        attentions = model(torch.as_tensor(ids), output_attentions=True).attentions
    return torch.stack([a[:, :, -1, :] for a in attentions], dim=1).numpy()


def ablated_accuracy(model, ids, answers, heads):
    """Accuracy of a copy of the GPT-2 whose `heads` [(layer, head)] have zero value weights, so
    they add nothing to the attention output: head pruning done without the recorder."""
    import copy

    pruned = copy.deepcopy(model)
    dim = pruned.config.n_embd
    size = dim // pruned.config.n_head
    for layer, head in heads:
        attn = pruned.transformer.h[layer].attn.c_attn
        columns = slice(2 * dim + head * size, 2 * dim + (head + 1) * size)   # the head's values
        with torch.no_grad():
            attn.weight[:, columns] = 0
            attn.bias[columns] = 0
    with torch.no_grad():
        predicted = pruned(torch.as_tensor(ids)).logits[:, -1].argmax(-1).numpy()
    return float(np.mean(predicted == answers))


def test_attn_visual(small_finetuned, tmp_path):
    out = tmp_path / "attn"
    printed = run_ok("attn_visual", "--model", small_finetuned / "model", "--n-examples", 64,
                     "--device", "cpu", "--out", out)
    assert "top_rank" in printed
    results = json.loads((out / "results.json").read_text())
    for key in ("by_rank", "by_position"):
        matrix = np.array(results[key])
        assert matrix.shape == (2, 16)                    # layers x numbers
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-5)
    # both recomputed from transformers' eager attention: head mean, then example mean, by input
    # position and by sorted rank (ties by position)
    model, tokenizer = load_eager(small_finetuned / "model")
    indices, ids, _ = examples(tokenizer, 64)
    head_mean = eager_last_token_attention(model, ids).mean(axis=2)                # (n, layers, L)
    np.testing.assert_allclose(results["by_position"], head_mean.mean(axis=0), atol=1e-5)
    order = np.argsort(indices, axis=-1, kind="stable")
    np.testing.assert_allclose(results["by_rank"],
                               np.take_along_axis(head_mean, order[:, None, :], axis=-1).mean(axis=0),
                               atol=1e-5)
    assert len(results["layers"]) == 2
    assert_figures(out, FIGURES_ATTN)
    run_ok("attn_visual", "--model", small_finetuned / "model", "--random-init",
           "--n-examples", 16, "--device", "cpu", "--out", tmp_path / "original")
    assert json.loads((tmp_path / "original" / "results.json").read_text())["random_init"] is True


def test_causal(small_finetuned, tmp_path):
    out = tmp_path / "causal"
    printed = run_ok("causal", "--model", small_finetuned / "model", "--n-examples", 64,
                     "--random-repeats", 3, "--case-examples", 16, "--device", "cpu", "--out", out)
    assert "min_size_entropy" in printed and "case study" in printed
    results = json.loads((out / "results.json").read_text())

    # The entropies, recomputed from transformers' eager attention with scipy's entropy.
    model, tokenizer = load_eager(small_finetuned / "model")
    indices, ids, answers = examples(tokenizer, 64)
    attention = eager_last_token_attention(model, ids).mean(axis=0)                # (layers, heads, L)
    order = np.argsort(indices, axis=-1, kind="stable")
    by_size = np.take_along_axis(eager_last_token_attention(model, ids), order[:, None, None, :],
                                 axis=-1).mean(axis=0)
    for name, mean in (("position", attention), ("size", by_size)):
        expected = scipy_entropy(mean, axis=-1) / np.log(16)
        np.testing.assert_allclose(results["entropy"][name], expected, atol=1e-5)

    # Pruning: 4 heads, so fraction f prunes round(4 f) of them; the same heads give the same
    # accuracy, and each point equals pruning those heads by zeroing their value weights.
    unpruned = ablated_accuracy(model, ids, answers, [])
    assert results["unpruned_accuracy"] == unpruned
    position = np.array(results["entropy"]["position"])
    ranked = [divmod(int(i), 2) for i in np.argsort(position.ravel(), kind="stable")]
    for curve in ("random", "min_position_entropy", "min_size_entropy"):
        rows = results["pruning"][curve]
        assert [r["fraction"] for r in rows] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
        assert [r["n_pruned"] for r in rows] == [0, 1, 1, 2, 2, 2, 3, 3, 4]
        assert rows[0]["accuracy"] == unpruned                           # nothing pruned
        assert rows[-1]["accuracy"] == ablated_accuracy(model, ids, answers, ranked)   # all pruned
        for r in rows:        # a share of the 64 examples; the random curve a mean of 3 draws
            runs = r.get("accuracy_runs", [r["accuracy"]])
            assert all(a * 64 == round(a * 64) for a in runs) and r["accuracy"] == pytest.approx(np.mean(runs))
    assert all(len(r["accuracy_runs"]) == 3 for r in results["pruning"]["random"])
    assert results["pruning"]["random"][0]["accuracy_runs"] == [unpruned] * 3
    lowest = results["pruning"]["min_position_entropy"]
    for row in lowest:
        assert row["accuracy"] == ablated_accuracy(model, ids, answers, ranked[:row["n_pruned"]])
    case = results["case_study"]
    assert case["pruned_heads"] == sorted([list(h) for h in ranked[:2]])   # 40% of 4: the lowest two
    assert np.array(case["flow"]).shape == (2, 16, 16)
    assert_figures(out, FIGURES_CAUSAL)


def test_pruning_the_case_study_heads_lowers_accuracy(learned_min01):
    """The heads the case study prunes (the 40% of lowest position entropy) carry the answer:
    pruning them costs at least 0.3 of accuracy on a model that learned the task (measured: 0.88
    unpruned, 0.33 pruned). Masking no head is the plain model, to the example."""
    from mechprobe.analysis.causal import CASE_FRACTION, lowest_first_mask
    from mechprobe.analysis.last_token import accuracy_with_heads_masked, last_token_attention
    from mechprobe.attention.recorder import Recorder

    model, tokenizer = load_eager(learned_min01 / "model")
    task = ksmallest.Spec(k=1, list_len=8, num_set=64)
    numbers = ksmallest.number_set(tokenizer, task.num_set)
    indices = ksmallest.probe_examples(task, 512, 0)
    ids, answers = numbers.encode(indices), numbers.later_ids[ksmallest.answers(task, indices)]
    with torch.no_grad():
        plain = float(np.mean(model(torch.as_tensor(ids)).logits[:, -1].argmax(-1).numpy() == answers))
    assert plain >= 0.7                                          # the model has learned the task

    recorder = Recorder(model)
    position_entropy = causal.normalised_entropy(last_token_attention(recorder, ids, 256).mean(axis=0))
    heads = lowest_first_mask(position_entropy, int(round(CASE_FRACTION * position_entropy.size)))
    assert heads.tolist() != [[1, 1], [1, 1]] and heads.sum() == 2           # two of four heads
    pruned = accuracy_with_heads_masked(recorder, ids, answers, heads, 256)
    assert pruned <= plain - 0.3
    # the recorder's pruning is the head's output zeroed: the same as zeroing its value weights
    assert pruned == ablated_accuracy(model, ids, answers, [(int(l), int(h)) for l, h in zip(*np.nonzero(heads == 0))])
    assert accuracy_with_heads_masked(recorder, ids, answers, np.ones((2, 2)), 256) == plain
    assert accuracy_with_heads_masked(recorder, ids, answers, None, 256) == plain


def test_entropy_masks_and_placement():
    uniform, peaked = np.full(8, 1 / 8), np.eye(8)[3]
    np.testing.assert_allclose(causal.normalised_entropy(np.stack([uniform, peaked])), [1.0, 0.0])
    entropy = np.array([[0.5, 0.1], [0.9, 0.2]])
    assert causal.lowest_first_mask(entropy, 2).tolist() == [[1, 0], [1, 0]]
    mask = causal.random_mask((3, 4), 5, np.random.default_rng(0))
    assert mask.shape == (3, 4) and mask.sum() == 7

    indices = ksmallest.generate(ksmallest.Spec(k=1), 50, 0)
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
