"""make_data.py random-init: a fine-tuned model folder's architecture with random weights, and the
k-th smallest wrapper's comparison of the fine-tuned model with it (PRETRAINED=random)."""

import json
import os
import subprocess
import sys

import torch
from conftest import ROOT, SMALL_TINY, refused, run_ok
from safetensors.torch import load_file

from mechprobe.models import load_pretrained
from mechprobe.tiny_models import TinyConfig, build_tiny


def test_random_init_keeps_architecture_tokenizer_and_task(small_finetuned, tmp_path):
    model_dir, out = small_finetuned / "model", tmp_path / "random"
    printed = run_ok("make_data", "random-init", "--model", model_dir, "--out", out)
    assert "randomly initialised (seed 0)" in printed
    assert (out / "task.json").read_bytes() == (model_dir / "task.json").read_bytes()
    trained, tokenizer = load_pretrained(str(model_dir))
    untrained, same_tokenizer = load_pretrained(str(out))
    assert untrained.config.to_diff_dict() == trained.config.to_diff_dict()
    assert same_tokenizer.get_vocab() == tokenizer.get_vocab()
    weights = untrained.state_dict()
    assert any(not torch.equal(weights[name], value) for name, value in trained.state_dict().items())
    # With fine-tuning's seed: the very weights the fine-tuning started from.
    layers, heads, dim = (int(v) for v in SMALL_TINY[1::2])
    start, _ = build_tiny(range(512), TinyConfig(layers, heads, dim), seed=0)
    assert all(torch.equal(weights[name], value) for name, value in start.state_dict().items())
    assert json.loads((out / ".mechprobe").read_text())["command"] == "make_data.py random-init"
    first = load_file(out / "model.safetensors")
    run_ok("make_data", "random-init", "--model", model_dir, "--out", out, "--seed", "1")  # ours: rewritten
    assert not torch.equal(load_file(out / "model.safetensors")["transformer.wte.weight"],
                           first["transformer.wte.weight"])


def test_random_init_never_writes_over_the_model(small_finetuned, tmp_path):
    model_dir = small_finetuned / "model"
    before = (model_dir / "model.safetensors").read_bytes()
    refused("make_data", "random-init", "--model", model_dir, "--out", model_dir,
            words=["did not write"])
    refused("make_data", "random-init", "--model", model_dir, "--out", model_dir, "--force",
            words=["is the --model folder"])
    assert (model_dir / "model.safetensors").read_bytes() == before
    assert not (model_dir / ".mechprobe").exists()
    refused("make_data", "random-init", "--model", tmp_path / "nothing", "--out", tmp_path / "o",
            words=["does not exist"])


def test_wrapper_compares_the_fine_tuned_model_with_its_random_init(small_finetuned, tmp_path):
    """PRETRAINED=random bash run_probing_gpt2.sh: probe, random-init, --all-k probe, comparison."""
    os.makedirs(tmp_path / "ft")
    os.symlink(small_finetuned, tmp_path / "ft" / "min01")
    env = {**os.environ, "PYTHON": sys.executable, "FINETUNED": str(tmp_path / "ft"),
           "TASKS": "min01", "PRETRAINED": "random", "OUT": str(tmp_path / "out"),
           "N_EXAMPLES": "48", "DEVICE": "cpu", "EXTRA": "--folds 3"}
    done = subprocess.run(["bash", os.path.join(ROOT, "run_probing_gpt2.sh")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split()[:2] for line in done.stdout.splitlines() if line.startswith("min01 ")]
    assert rows[-2:] == [["min01", "min01"], ["min01", "random-init"]], done.stdout
    assert "also probed: random-init: min00, min02, min03" in done.stdout
    assert os.path.isfile(tmp_path / "out" / "random-init-model" / "task.json")
