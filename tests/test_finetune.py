import json

import numpy as np
import pytest
import torch
from conftest import SMALL_TINY, refused, run_ok, run_script

from mechprobe.training import ksmallest as finetune
from mechprobe.training.ksmallest import TrainConfig
from mechprobe.tiny_models import build_tiny
from mechprobe.training.loop import select_trainable

QUICK = ["--task", "min01", "--n-train", "600", "--n-eval", "64", "--steps", "12",
         "--eval-every", "4", "--batch-size", "32", *SMALL_TINY]


@pytest.mark.e2e
def test_the_real_script_resumes_and_writes_its_contract(tmp_path):
    """The process boundary: `python finetune_gpt2.py` interrupted exits 130 and says how to resume;
    the same command resumes and writes the files of the contract, reloadable offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "run"
    stopped = run_script("finetune_gpt2.py", *QUICK, "--out", str(out), "--stop-after", "6", check=False)
    assert stopped.returncode == 130, stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1] == (
        "interrupted: rerun the same command to resume from the last checkpoint")
    assert (out / "checkpoint" / "state.pt").is_file() and not (out / "results.json").exists()
    proc = run_script("finetune_gpt2.py", *QUICK, "--out", str(out))
    assert "test_acc" in proc.stdout  # the printed table
    results = json.loads((out / "results.json").read_text())
    for key in ("task", "test_accuracy", "best_val_accuracy", "train_seconds", "steps"):
        assert key in results
    assert results["task"] == "min01" and results["steps"] == 12 and results["resumed_from_step"] == 4
    assert len(results["history"]) == 3 and [h["step"] for h in results["history"]] == [4, 8, 12]
    assert results["best_val_accuracy"] == max(h["val_accuracy"] for h in results["history"])
    for name in ("loss", "accuracy"):
        assert (out / f"{name}.png").stat().st_size > 0 and (out / f"{name}.pdf").stat().st_size > 0
    assert not (out / "checkpoint").exists() and not (out / "model.tmp").exists()

    model = AutoModelForCausalLM.from_pretrained(out / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    task = json.loads((out / "model" / "task.json").read_text())
    assert task["task"] == "min01" and task["k"] == 1 and len(task["numbers"]) == 512
    ids = torch.tensor([tokenizer("5 9 3 7", add_special_tokens=False)["input_ids"]])
    assert model(ids).logits.shape[-1] == len(tokenizer)
    # The test accuracy is the saved model's, recomputed on the test split (the last 64 of the pool).
    from mechprobe.tasks import ksmallest

    kth = ksmallest.Spec(k=1)
    test = ksmallest.make_splits(kth, 600, 64, 0).test
    numbers = ksmallest.number_set(tokenizer, 512)
    with torch.no_grad():
        predicted = model(torch.as_tensor(numbers.encode(test))).logits[:, -1].argmax(-1).numpy()
    expected = float(np.mean(predicted == numbers.later_ids[ksmallest.answers(kth, test)]))
    assert results["test_accuracy"] == pytest.approx(expected, abs=1e-9)


def test_same_seed_same_numbers(tmp_path):
    run_ok("finetune_gpt2", *QUICK, "--out", tmp_path / "a")
    run_ok("finetune_gpt2", *QUICK, "--out", tmp_path / "b")
    ra, rb = (json.loads((tmp_path / d / "results.json").read_text()) for d in "ab")
    assert ra["history"] == rb["history"] and ra["test_accuracy"] == rb["test_accuracy"]


def args_for(out, **overrides):
    """The TrainConfig finetune_gpt2.py would build, for in-process runs of the library."""
    settings = dict(out=str(out), device="cpu", batch_size=32, n_train=600, n_eval=64, steps=12,
                    eval_every=4, tiny_layers=2, tiny_heads=2, tiny_dim=32)
    settings.update(overrides)
    return TrainConfig(**settings)


def test_interrupted_run_resumes_to_the_same_numbers(tmp_path):
    straight = finetune.run(args_for(tmp_path / "straight"))
    # Interrupted after 6 steps: the checkpoint of step 4 remains; steps 5-6 are redone.
    with pytest.raises(KeyboardInterrupt):
        finetune.run(args_for(tmp_path / "resumed", stop_after=6))
    assert (tmp_path / "resumed" / "checkpoint" / "state.pt").exists()
    assert not (tmp_path / "resumed" / "results.json").exists()
    resumed = finetune.run(args_for(tmp_path / "resumed"))
    assert resumed["resumed_from_step"] == 4
    assert resumed["history"] == straight["history"]
    assert resumed["test_accuracy"] == straight["test_accuracy"]


def test_resume_refuses_other_settings_and_restart_discards(tmp_path, capsys):
    with pytest.raises(KeyboardInterrupt):
        finetune.run(args_for(tmp_path, stop_after=5))
    from mechprobe.cli import UserError

    with pytest.raises(UserError, match="--restart"):
        finetune.run(args_for(tmp_path, lr=5e-4))
    fresh = finetune.run(args_for(tmp_path, lr=5e-4, restart=True))
    assert fresh["resumed_from_step"] is None and fresh["lr"] == 5e-4


@pytest.mark.parametrize("tune", ["attn", "mlp", "ln"])
def test_tune_keeps_frozen_weights_unchanged(tmp_path, tune):
    out = tmp_path / tune
    run_ok("finetune_gpt2", *QUICK, "--tune", tune, "--out", out)
    # The same seed builds the same initial weights; compare them with the trained ones.
    initial, _ = build_tiny(range(512), finetune.TinyConfig(2, 2, 32), seed=0)
    trained_names = set(select_trainable(initial, tune))
    from transformers import AutoModelForCausalLM

    trained = dict(AutoModelForCausalLM.from_pretrained(out / "model").named_parameters())
    changed = {name for name, p in initial.named_parameters() if not torch.equal(p, trained[name])}
    assert changed, "training changed nothing"
    assert changed <= trained_names
    assert all(n.split(".")[-2] != "wte" for n in changed)


def test_select_trainable_groups():
    model, _ = build_tiny(range(10), finetune.TinyConfig(2, 2, 16))
    attn = select_trainable(model, "attn")
    assert attn and all(".attn." in n for n in attn)
    assert all(".mlp." in n for n in select_trainable(model, "mlp"))
    ln = select_trainable(model, "ln")
    assert "transformer.ln_f.weight" in ln and all(".ln_" in n or "ln_f" in n for n in ln)
    assert len(select_trainable(model, "all")) == len(list(model.parameters()))


def test_local_bpe_model_directory(tmp_path, bpe_gpt2_dir):
    out = tmp_path / "bpe"
    run_ok("finetune_gpt2", "--task", "min01", "--model", bpe_gpt2_dir, "--num-set", "40",
           "--list-len", "8", "--n-train", "300", "--n-eval", "32", "--steps", "3",
           "--batch-size", "32", "--out", out)
    task = json.loads((out / "model" / "task.json").read_text())
    assert len(task["numbers"]) == 40 and 0 not in task["numbers"]  # "0" is two BPE tokens there


BAD_INPUTS = [
    (["--task", "max01"], "unknown task 'max01'"),
    (["--task", "min16"], "use k < --list-len"),
    (["--num-set", "600", "--model", "{bpe}"], "larger than this tokenizer can supply"),
    (["--model", "./no/such/dir"], "does not exist"),
    (["--model", "{empty}"], "has no config.json"),
    (["--tune", "heads"], "invalid choice"),
]
if not torch.cuda.is_available():
    BAD_INPUTS.append((["--device", "cuda"], "use --device cpu or auto"))


@pytest.mark.parametrize("extra,message", BAD_INPUTS)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, bpe_gpt2_dir, extra, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    extra = [e.format(bpe=bpe_gpt2_dir, empty=empty) for e in extra]
    out = tmp_path / "out"
    refused("finetune_gpt2", "--steps", "2", *extra, "--out", out, words=[message])
    assert not out.exists()


@pytest.mark.parametrize("model, steps, expected", [
    # (eval_every, validation examples, test examples)
    ("tiny", 20, (10, 2000, 2500)),           # a smoke run: two validations of a capped sample
    ("tiny", None, (191, 2500, 2500)),        # the documented default run is unchanged
    ("{bpe}", 20, (10, 2000, 10000)),         # pretrained default --n-train 980,000
    ("{bpe}", None, (765, 10000, 10000)),     # the paper's run is unchanged
    ("{bpe}", 3, (3, 2000, 10000)),           # shorter than the floor: validate once, at the end
])
def test_short_runs_validate_a_small_sample_rarely(tmp_path, bpe_gpt2_dir, model, steps, expected):
    args = args_for(tmp_path / "out", model=model.format(bpe=bpe_gpt2_dir), steps=steps,
                    n_train=None, n_eval=None, eval_every=None, batch_size=None, list_len=8, num_set=40)
    _, _, _, _, _, splits, settings = finetune.prepare(finetune.with_defaults(args, finetune.DEFAULTS))
    assert (settings.eval_every, len(splits.val), len(splits.test)) == expected


def test_explicit_validation_size_and_cadence_are_kept(tmp_path):
    args = args_for(tmp_path / "out", n_train=None, n_eval=5000, steps=20, eval_every=1)
    _, _, _, _, _, splits, settings = finetune.prepare(finetune.with_defaults(args, finetune.DEFAULTS))
    assert (settings.eval_every, len(splits.val)) == (1, 5000)


def test_ksmallest_with_k_is_minkk_spelled_as_probe_py_spells_it(tmp_path):
    """finetune_gpt2.py --task ksmallest --k 1 trains what --task min01 trains."""
    from conftest import run_cli, run_ok

    quick = [a for a in QUICK if a not in ("--task", "min01")]
    run_ok("finetune_gpt2", "--task", "ksmallest", "--k", 1, *quick, "--out", tmp_path / "a")
    run_ok("finetune_gpt2", "--task", "min01", *quick, "--out", tmp_path / "b")
    a, b = (json.loads((tmp_path / x / "results.json").read_text()) for x in "ab")
    assert a["task"] == b["task"] == "min01" and a["test_accuracy"] == b["test_accuracy"]
    code, _, err = run_cli("finetune_gpt2", "--task", "ksmallest", *quick, "--out", tmp_path / "c")
    assert code == 2 and "--task ksmallest needs --k K" in err
