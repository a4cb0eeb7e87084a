"""A model spread over devices (--device-map) reads the same attention as the model in one piece."""

import json

import numpy as np
import pytest
from conftest import run_ok

from mechprobe.attention.features import Example
from mechprobe.models import input_device
from mechprobe.probing.config import ReadConfig
from mechprobe.probing.extraction import features_of
from mechprobe.models import load_model, random_twin

# GPT-2's modules, the second block kept on disk (accelerate loads it for each forward).
LAYOUT = {"transformer.wte": "cpu", "transformer.wpe": "cpu", "transformer.h.0": "cpu",
          "transformer.h.1": "disk", "transformer.ln_f": "cpu", "lm_head": "cpu"}


def examples():
    rng = np.random.default_rng(0)
    out = []
    for length in (9, 12, 7, 12):
        ids = rng.integers(1, 500, size=length).tolist()
        out.append(Example(ids, [length - 2, length - 1], [[i] for i in range(length - 2)]))
    return out


@pytest.mark.parametrize("twin", [False, True])
def test_split_over_cpu_and_disk_equals_the_whole_model(bpe_gpt2_dir, tmp_path, twin):
    whole, _ = load_model(bpe_gpt2_dir, "cpu", "float32")
    split, _ = load_model(bpe_gpt2_dir, "cpu", "float32",
                          {"device_map": LAYOUT, "offload_folder": str(tmp_path / "off")})
    assert split.hf_device_map["transformer.h.1"] == "disk" and input_device(split).type == "cpu"
    if twin:   # the random twin is laid out like the model and initialised from the same seed
        whole, split = random_twin(whole, 3), random_twin(split, 3)
    read = ReadConfig(batch_size=2, query_pool="mean", per_head=True)
    a_features, a_predicted, a_logits = features_of(whole, examples(), [0, 1], read, 0, [5, 7])
    b_features, b_predicted, b_logits = features_of(split, examples(), [0, 1], read, 0, [5, 7])
    assert max(float(np.abs(a - b).max()) for a, b in zip(a_features, b_features)) <= 1e-6
    assert np.array_equal(a_predicted, b_predicted) and np.allclose(a_logits, b_logits, atol=1e-5)


def test_probe_with_a_device_map_gives_the_same_scores(small_finetuned, tmp_path):
    common = ["--model", small_finetuned / "model", "--n-examples", "32", "--device", "cpu"]
    run_ok("probe", *common, "--out", tmp_path / "one")
    run_ok("probe", *common, "--device-map", "sequential", "--max-memory", "cpu=2GiB",
           "--out", tmp_path / "spread")
    one, spread = (json.loads((tmp_path / name / "results.json").read_text())
                   for name in ("one", "spread"))
    assert spread["f1"] == one["f1"] and spread["f1_random"] == one["f1_random"]


def two_processes(script, argv, out):
    """`torchrun --nproc_per_node 2 script.py argv --out out` (what `accelerate launch` runs on
    GPUs), on CPU processes; returns the results.json it wrote."""
    import os
    import subprocess
    import sys

    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([torchrun, "--nproc_per_node", "2", os.path.join(root, f"{script}.py"),
                           *map(str, argv), "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


@pytest.mark.e2e
def test_two_processes_give_the_single_process_results(small_finetuned, tmp_path):
    """probe.py with 2 processes: each reads half of the examples, the main one probes and
    writes; the numbers equal one process's."""
    common = ["--model", str(small_finetuned / "model"), "--n-examples", "48", "--device", "cpu",
              "--feature-cache", "off"]
    run_ok("probe", *common, "--out", tmp_path / "one")
    two = two_processes("probe", common, tmp_path / "two")
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1
    for key in ("f1", "f1_random", "probing_score", "layerwise", "accuracy"):
        assert two[key] == one[key], key


@pytest.mark.e2e
def test_causal_and_corrupt_in_two_processes_equal_one(small_finetuned, generated, tmp_path):
    """causal.py and corrupt.py with 2 processes: each runs the model on its share (head
    entropies, every pruned accuracy, the attention flow; clean and corrupted prompts), the
    main one writes; the results equal one process's (the flow, summed in another order, to
    float rounding)."""
    causal = ["--model", small_finetuned / "model", "--n-examples", 48, "--random-repeats", 2,
              "--case-examples", 16, "--device", "cpu"]
    run_ok("causal", *causal, "--out", tmp_path / "causal1")
    two = two_processes("causal", causal, tmp_path / "causal2")
    one = json.loads((tmp_path / "causal1" / "results.json").read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["pruning"] == one["pruning"] and two["unpruned_accuracy"] == one["unpruned_accuracy"]
    assert np.allclose(two["entropy"]["position"], one["entropy"]["position"], atol=1e-6)
    assert np.allclose(two["case_study"]["flow"], one["case_study"]["flow"], atol=1e-6)
    assert two["case_study"]["accuracy_pruned"] == one["case_study"]["accuracy_pruned"]

    corrupt = ["--model", generated / "model", "--data", generated / "data", "--split", "train",
               "--icl", "1", "--repeats", "4", "--min-subset", "8", "--max-subset", "10",
               "--folds", "2", "--neighbors", "2", "--device", "cpu"]
    run_ok("corrupt", *corrupt, "--out", tmp_path / "corrupt1")
    two = two_processes("corrupt", corrupt, tmp_path / "corrupt2")
    one = json.loads((tmp_path / "corrupt1" / "results.json").read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["subsets"] == one["subsets"] and two["clean_accuracy"] == one["clean_accuracy"]
