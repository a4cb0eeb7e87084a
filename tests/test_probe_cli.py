"""probe.py --task ksmallest end to end, and its F1 recomputed independently from eager attention."""

import json
import re

import numpy as np
import pytest
import torch
from conftest import refused, run_ok, run_script
from test_report_html import CHROMIUM, browse
from sklearn.metrics import f1_score
from sklearn.model_selection import GroupKFold
from sklearn.neighbors import KNeighborsClassifier
from transformers import AutoModelForCausalLM, AutoTokenizer

from mechprobe import seeds
from mechprobe.tasks import ksmallest
from mechprobe.models import twin_seed

N = 64


def probe_cli(model_dir, out, *extra):
    """probe.py --task ksmallest in this process; returns what it printed."""
    return run_ok("probe", "--task", "ksmallest", "--model", model_dir, "--out", out,
                  "--n-examples", N, "--batch-size", 16, "--device", "cpu", *extra)


def eager_features(model, ids):
    """The old way: one example per forward, eager attention, full matrices, rows sliced after."""
    features = []
    for row in ids:
        with torch.no_grad():
            attentions = model(torch.tensor([row]), output_attentions=True).attentions
        f = torch.stack([a[0, :, -1, :].mean(0) for a in attentions], dim=1).numpy()  # (L, layers)
        features.append(f / f.max())
    return features


def independent_f1(features, labels, seed=0):
    X = np.concatenate(features)
    groups = np.repeat(np.arange(len(features)), len(features[0]))
    y = np.concatenate(labels)
    scores = []
    for train, test in GroupKFold(5, shuffle=True, random_state=seed).split(X, y, groups):
        knn = KNeighborsClassifier(8, weights="distance", p=2).fit(X[train], y[train])
        scores.append(f1_score(y[test], knn.predict(X[test]), average="macro"))
    return float(np.mean(scores))


def independent_predictions(features, labels, seed=0):
    """sklearn's out-of-fold labels on the same grouped folds as independent_f1."""
    X = np.concatenate(features)
    groups = np.repeat(np.arange(len(features)), len(features[0]))
    y = np.concatenate(labels)
    predicted = np.zeros(len(y), dtype=y.dtype)
    for train, test in GroupKFold(5, shuffle=True, random_state=seed).split(X, y, groups):
        predicted[test] = KNeighborsClassifier(8, weights="distance", p=2).fit(
            X[train], y[train]).predict(X[test])
    return predicted


def test_probe_results_match_an_independent_recomputation(small_finetuned, tmp_path):
    model_dir = small_finetuned / "model"
    printed = probe_cli(model_dir, tmp_path / "probe")
    assert "S_P1" in printed and "f1_useful" in printed
    results = json.loads((tmp_path / "probe" / "results.json").read_text())
    for key in ("f1", "f1_random", "probing_score", "f1_spread", "layerwise", "accuracy", "settings"):
        assert key in results
    assert set(results["settings"]) == {"min01"} and results["layers"] == [0, 1]
    assert [(r["layer"], r["mode"]) for r in results["layerwise"]] == [
        (0, "single"), (1, "single"), (0, "cumulative"), (1, "cumulative")]
    for name in ("layerwise_min01.png", "layerwise_min01.pdf"):
        assert (tmp_path / "probe" / name).stat().st_size > 0

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    task = ksmallest.Spec(k=1)
    indices = ksmallest.generate(task, N, seeds.rng(0, seeds.PROBE_EXAMPLES))
    numbers = ksmallest.number_set(tokenizer, task.num_set)
    ids = numbers.encode(indices).tolist()
    useful, depth = ksmallest.reasoning_tree(task, indices)
    trained = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager").eval()
    torch.manual_seed(twin_seed(0))
    untrained = AutoModelForCausalLM.from_config(trained.config, attn_implementation="eager").eval()
    rows = [json.loads(line) for line in (tmp_path / "probe" / "predictions.jsonl").open()]
    assert len(rows) == results["n_statements"] == N * task.list_len
    assert (tmp_path / "probe" / "report.html").stat().st_size > 0
    for model, key, who in ((trained, "f1", "model"), (untrained, "f1_random", "random")):
        features = eager_features(model, ids)
        assert independent_f1(features, useful.astype(int)) == pytest.approx(results[key]["useful"], abs=1e-9)
        # predictions.jsonl: sklearn's own out-of-fold labels, statement by statement
        assert [r[who]["useful"] for r in rows] == independent_predictions(
            features, useful.astype(int)).tolist()
        depth_features = [f[u] for f, u in zip(features, useful)]
        depth_labels = [d[u] for d, u in zip(depth, useful)]
        assert independent_f1(depth_features, depth_labels) == pytest.approx(results[key]["depth"], abs=1e-9)

    with torch.no_grad():
        predicted = trained(torch.tensor(ids)).logits[:, -1].argmax(-1).numpy()
    answers = numbers.later_ids[ksmallest.answers(task, indices)]
    assert results["accuracy"] == pytest.approx(float(np.mean(predicted == answers)))


def test_all_k_and_layer_subset(small_finetuned, tmp_path):
    probe_cli(small_finetuned / "model", tmp_path / "p", "--all-k", "--layers", "1")
    results = json.loads((tmp_path / "p" / "results.json").read_text())
    assert list(results["settings"]) == [f"min{k:02d}" for k in range(8)]
    assert results["settings"]["min00"]["f1"]["depth"] is None        # a single class at k = 0
    assert results["settings"]["min03"]["f1"]["depth"] is not None
    recovery = results["settings"]["min00"]["tree_recovery"]["model"]   # the root alone:
    assert recovery["tree"] == recovery["useful_set"]                   # no depth to get wrong
    if CHROMIUM:    # the report of a real run, in a real browser: ranks, leaves and the root
        dom, log = browse(tmp_path / "p" / "report.html", "setting=min03&example=2", tmp_path)
        assert 'data-ready="yes"' in dom and re.search(r'<div id="errors">\s*</div>', dom)
        assert "Uncaught" not in log and "<th>rank</th>" in dom
        assert dom.count("<td>leaf</td>") == 3 and dom.count("<td>root</td>") == 1   # k = 3
    assert results["layers"] == [1] and len(results["settings"]["min03"]["layerwise"]) == 2
    for setting in results["settings"].values():
        rates = setting["input_only_rates"]
        assert set(rates) == {"commonest answer", "copy the last number", "copy the first number"}
        assert setting["baseline_rate"] == max(rates.values()) == rates[setting["baseline"]]


def test_chance_guard_compares_with_the_best_input_only_answerer():
    """A model that beats the commonest answer but not copying the last number (an untrained
    GPT-2 with tied embeddings) is near chance, and the guard names the copying."""
    from mechprobe.baselines import chance_check, near_chance
    from mechprobe.tasks.shortcuts import ksmallest_answers

    task = ksmallest.Spec(k=2)
    indices = ksmallest.generate(task, 1024, 0)
    answers = ksmallest.answers(task, indices)
    copied = indices[:, -1]
    assert np.mean(copied == answers) > 0.04     # the last number is often the third smallest
    check = chance_check(0.07, answers, ksmallest_answers(indices))
    assert not near_chance(0.07, check["majority_rate"], 1024)   # the old guard let it pass
    assert check["near_chance"] and check["baseline"] == "copy the last number"
    assert check["baseline_rate"] == pytest.approx(np.mean(copied == answers))


def test_dump_examples_needs_no_model(tmp_path):
    path = tmp_path / "examples.jsonl"
    printed = run_ok("probe", "--task", "ksmallest", "--k", "2", "--list-len", "6",
                     "--n-examples", "5", "--dump-examples", path)
    assert "wrote 5 examples" in printed
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 5
    for ex in lines:
        assert set(ex) == {"id", "statements", "question", "answer", "useful", "depth", "qdep", "bucket"}
        values = [int(s) for s in ex["statements"]]
        order = sorted(range(6), key=lambda i: (values[i], i))          # ties by position
        assert int(ex["answer"]) == values[order[2]]
        assert [i for i in range(6) if ex["useful"][i]] == sorted(order[:3])
        assert ex["depth"][order[2]] == 1 and ex["depth"][order[0]] == ex["depth"][order[1]] == 0
        assert all(ex["depth"][i] is None for i in order[3:])


@pytest.mark.parametrize("flags, message", [
    (["--model", "tiny"], "must name a trained model"),
    (["--model", "./no/such/dir"], "does not exist"),
    (["--model", "MODEL", "--layers", "0-5"], "--layers"),
    (["--model", "MODEL", "--k", "16"], "k < --list-len"),
    (["--model", "MODEL", "--n-examples", "3"], "cross-validation"),
    (["--model", "MODEL", "--list-len", "80"], "exceed the model's 64 positions"),
])
def test_bad_inputs_fail_in_one_line(small_finetuned, tmp_path, flags, message):
    out = tmp_path / "out"
    flags = [str(small_finetuned / "model") if f == "MODEL" else f for f in flags]
    refused("probe", "--task", "ksmallest", "--device", "cpu", "--out", out, *flags, words=[message])
    assert not (out / "results.json").exists()


@pytest.mark.e2e
def test_the_real_script_exits_2_with_one_line(tmp_path):
    """The process boundary: `python probe.py` itself turns a user error into exit 2, one line."""
    out = tmp_path / "out"
    proc = run_script("probe.py", "--task", "ksmallest", "--model", "./no/such/dir", "--out", str(out),
                      "--device", "cpu", check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert "does not exist" in proc.stderr and not out.exists()


def digit_tokenizer():
    """Numbers split into single digits (as LLaMA and SmolLM2 do) and a BOS added to every text."""
    from tokenizers import processors

    from mechprobe.tiny_models import word_tokenizer

    tokenizer = word_tokenizer([str(d) for d in range(10)], 64, specials=("<pad>", "<unk>", "<s>"))
    backend = tokenizer.backend_tokenizer
    from tokenizers import pre_tokenizers
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                     pre_tokenizers.Digits(individual_digits=True)])
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 2)])
    tokenizer.bos_token = "<s>"
    return tokenizer


@pytest.fixture(scope="module")
def digit_llama(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = digit_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=64, pad_token_id=0, bos_token_id=2, eos_token_id=2)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("digit_llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_multi_token_numbers_are_pooled_statements(digit_llama, tmp_path):
    """A tokenizer without single-token numbers: each number is a statement of its digits, the
    BOS stays in front, and the F1 equals an independent recomputation from eager attention."""
    args = ("--k", "2", "--list-len", "6", "--num-set", "200", "--layers", "0,1")
    printed = probe_cli(digit_llama, tmp_path / "probe", *args)
    assert "written as several tokens each" in printed
    results = json.loads((tmp_path / "probe" / "results.json").read_text())
    assert results["numbers"] == "multi-token" and set(results["settings"]) == {"min02"}
    assert results["f1"]["depth"] is not None

    tokenizer = AutoTokenizer.from_pretrained(digit_llama)
    task = ksmallest.Spec(k=2, list_len=6, num_set=200)
    indices = ksmallest.probe_examples(task, N, 0)
    useful, depth = ksmallest.reasoning_tree(task, indices)
    trained = AutoModelForCausalLM.from_pretrained(digit_llama, attn_implementation="eager").eval()
    torch.manual_seed(twin_seed(0))
    untrained = AutoModelForCausalLM.from_config(trained.config, attn_implementation="eager").eval()
    rows = []
    for row in indices:
        ids, spans = [2], []        # BOS, then each number's digits
        for n in row:
            spans.append(list(range(len(ids), len(ids) + len(str(n)))))
            ids += [int(d) + 3 for d in str(n)]
        rows.append((ids, spans))
    assert tokenizer(" ".join(map(str, indices[0])))["input_ids"] == rows[0][0]
    for model, key in ((trained, "f1"), (untrained, "f1_random")):
        features = []
        for ids, spans in rows:
            with torch.no_grad():
                attentions = model(torch.tensor([ids]), output_attentions=True).attentions
            last = torch.stack([a[0, :, -1, :].mean(0) for a in attentions], dim=1).numpy()
            f = np.stack([last[span].mean(0) for span in spans])       # (numbers, layers)
            features.append(f / f.max())
        assert independent_f1(features, useful.astype(int)) == pytest.approx(results[key]["useful"], abs=1e-6)
        depth_features = [f[u] for f, u in zip(features, useful)]
        depth_labels = [d[u] for d, u in zip(depth, useful)]
        assert independent_f1(depth_features, depth_labels) == pytest.approx(results[key]["depth"], abs=1e-6)

    # Accuracy by plain greedy decoding: right when the answer's digits come out, then a non-digit.
    correct = []
    for (ids, _), answer in zip(rows, ksmallest.answers(task, indices)):
        digits, written = [int(d) + 3 for d in str(answer)], []
        with torch.no_grad():
            while len(written) <= len(digits):
                written.append(int(trained(torch.tensor([ids + written])).logits[0, -1].argmax()))
        correct.append(written[:-1] == digits and not 3 <= written[-1] <= 12)
    assert results["accuracy"] == np.mean(correct)
