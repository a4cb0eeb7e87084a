"""Bad input found by a hostile-user sweep: each is one line naming the problem and the fix (exit
2, before any model work), or accepted where the input is valid. The library raises ConfigError
(a ValueError) from a config's constructor, naming fields; the command line names flags.

docs/ROBUSTNESS.md lists the cases."""

import json

import numpy as np
import pytest
from conftest import refused
from conftest import run_cli as cli

ROW = {"id": "q1", "statements": ["a is big.", "b is small."], "question": "a is big?",
       "useful": [1, 0], "depth": [0, None], "answer": "True", "choices": ["True", "False"]}


def jsonl(tmp_path, *rows, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize("change, words", [
    ({"suffix": ["?"]}, ["suffix must be a string"]),
    ({"question": ""}, ["question must be a non-empty string"]),
    ({"question": 7}, ["question must be a non-empty string"]),
    ({"choices": ["True", "True"], "answer": "True"}, ["twice"]),
    ({"group": {"a": 1}}, ["group must be a string"]),
])
def test_jsonl_fields_of_the_wrong_kind(tmp_path, change, words):
    data = jsonl(tmp_path, {**ROW, **change})
    refused("probe", "--task", "jsonl", "--data", data, "--dump-examples", tmp_path / "d.jsonl",
            words=[f"{data}:1", *words])


def test_shots_data_goes_with_jsonl_and_keeps_one_suffix(tmp_path, generated):
    refused("probe", "--task", "proofwriter", "--data", generated / "data", "--shots-data",
            generated / "data", "--dump-examples", tmp_path / "d.jsonl",
            words=["--shots-data", "task jsonl"])
    from mechprobe.probing.config import TextConfig
    from mechprobe.tasks.jsonl import JsonlTask

    probed = jsonl(tmp_path, {**ROW, "suffix": " True or False?"})
    shots = jsonl(tmp_path, {**ROW, "suffix": " Answer:"}, name="shots.jsonl")
    task = JsonlTask(TextConfig(task="jsonl", data=str(probed), shots_data=str(shots)))
    task.load("test")
    from mechprobe.cli import UserError

    with pytest.raises(UserError, match="--shots-data .* suffix ' Answer:'"):
        task.shots()
    assert task.suffix == " True or False?"
    folder = tmp_path / "afolder"
    folder.mkdir()
    with pytest.raises(UserError, match="--shots-data"):
        JsonlTask(TextConfig(task="jsonl", data=str(probed), shots_data=str(folder))).shots()


def test_shots_without_answers_say_so(tmp_path):
    from mechprobe.cli import UserError
    from mechprobe.tasks.prompts import shots_for
    from mechprobe.tasks.jsonl import from_rows

    plain = {k: v for k, v in ROW.items() if k not in ("answer", "choices")}
    rows = from_rows(enumerate([{**plain, "id": f"q{i}"} for i in range(4)], 1))
    with pytest.raises(UserError, match="no answers"):
        shots_for(rows, rows, 2, "per-question", 0)


def test_a_byte_order_mark_is_accepted(tmp_path, generated):
    import shutil

    data = tmp_path / "pw"
    shutil.copytree(generated / "data", data)
    target = data / "CWA" / "depth-1" / "meta-test.jsonl"
    target.write_bytes(b"\xef\xbb\xbf" + target.read_bytes())
    code, printed, err = cli("probe", "--task", "proofwriter", "--data", data, "--dump-examples",
                             tmp_path / "d.jsonl")
    assert code == 0, err
    clean = generated / "data" / "CWA" / "depth-1" / "meta-test.jsonl"
    bom = jsonl(tmp_path, ROW, name="bom.jsonl")
    bom.write_bytes(b"\xef\xbb\xbf" + bom.read_bytes())
    assert cli("probe", "--task", "jsonl", "--data", bom, "--dump-examples",
               tmp_path / "e.jsonl")[0] == 0
    assert clean.exists()


def test_unreadable_data_files_are_one_line(tmp_path, generated, monkeypatch):
    import builtins
    import errno
    import os
    import shutil

    import mechprobe.jsonfiles

    data = tmp_path / "pw"
    shutil.copytree(generated / "data", data)
    target = data / "CWA" / "depth-1" / "meta-test.jsonl"

    def denied(path, *args, **kwargs):   # root reads any file: deny it the way a user is denied
        if os.fspath(path) == str(target):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(mechprobe.jsonfiles, "open", denied, raising=False)
    refused("probe", "--task", "proofwriter", "--data", data, "--dump-examples",
            tmp_path / "d.jsonl", words=["cannot read", "meta-test.jsonl"])


def test_arc_answer_outside_its_options(tmp_path):
    assert cli("make_data", "arc", "--out", tmp_path / "arc")[0] == 0
    path = tmp_path / "arc" / "reasoning_annotated_test.jsonl"
    lines = path.read_text().splitlines()
    record = json.loads(lines[0])
    record["answer"] = "Z"
    path.write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    refused("probe", "--task", "arc", "--data", tmp_path / "arc", "--dump-examples",
            tmp_path / "d.jsonl", words=["not one of the options"])


@pytest.mark.parametrize("argv", [["--n-examples", "1000000000"], ["--num-set", "10000000"],
                                  ["--list-len", "100000"]])
def test_size_flags_are_bounded(tmp_path, argv):
    refused("probe", "--k", "1", *argv, "--dump-examples", tmp_path / "d.jsonl",
            words=[argv[0]])


# --- the library: configs refuse bad fields when built, before any model work -----------------------

@pytest.mark.parametrize("make, field", [
    (lambda m: m.RunConfig(neighbors=0), "neighbors"),
    (lambda m: m.RunConfig(folds=1), "folds"),
    (lambda m: m.RunConfig(seed=-1), "seed"),
    (lambda m: m.ReadConfig(batch_size=0), "batch_size"),
    (lambda m: m.TextConfig(task="squad", data="x"), "task"),
    (lambda m: m.TextConfig(task="jsonl", data="x", icl=-2), "icl"),
    (lambda m: m.KSmallestConfig(n_examples=0), "n_examples"),
])
def test_configs_refuse_bad_fields(make, field):
    import mechprobe

    with pytest.raises(mechprobe.ConfigError, match=field):
        make(mechprobe)
    with pytest.raises(ValueError):   # a ConfigError is a ValueError, for generic handlers
        make(mechprobe)


def test_probe_refuses_rows_that_are_not_rows():
    import mechprobe

    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError("the model was used")

    with pytest.raises(mechprobe.ConfigError, match="rows"):
        mechprobe.probe(Untouchable(), Untouchable(), None)
    with pytest.raises(mechprobe.ConfigError, match="icl"):
        mechprobe.probe(Untouchable(), Untouchable(), [ROW], icl=-2)


def test_a_run_config_that_disagrees_with_the_loaded_model_is_refused(bpe_gpt2_dir):
    import mechprobe

    model, tokenizer = mechprobe.load_model(bpe_gpt2_dir, "cpu", "float32")
    with pytest.raises(mechprobe.ConfigError, match="RunConfig.dtype"):
        mechprobe.probe(model, tokenizer, [ROW], mechprobe.RunConfig(dtype="bfloat16"))


def test_the_command_line_names_flags_not_fields(tmp_path, small_finetuned):
    afile = tmp_path / "afile"
    afile.write_text("x")
    refused("probe", "--model", small_finetuned / "model", "--out", tmp_path / "o",
            "--device-map", "auto", "--offload-folder", afile, words=["--offload-folder", "is a file"])


def test_max_memory_for_a_gpu_this_machine_lacks_is_named(tmp_path, small_finetuned):
    """accelerate only logs a warning for a GPU that is not there, then loading failed with an
    error that blamed the model folder ("pass an intact local directory")."""
    import torch

    import mechprobe

    count = (torch.accelerator.device_count() if hasattr(torch, "accelerator")
             else torch.cuda.device_count())
    missing = max(7, count)
    line = refused("probe", "--model", small_finetuned / "model", "--out", tmp_path / "o",
                   "--device", "cpu", "--device-map", "auto", "--max-memory",
                   f"{missing}=1GiB,cpu=2GiB", words=[f"--max-memory names GPU {missing}",
                                                      "this machine has"])
    assert "intact" not in line and not (tmp_path / "o").exists()
    refused("probe", "--model", small_finetuned / "model", "--out", tmp_path / "o",
            "--device-map", "auto", "--max-memory", "gpu=1GiB",
            words=["--max-memory names device 'gpu'", "GPU number"])
    with pytest.raises(mechprobe.ConfigError, match=f"RunConfig.max_memory names GPU {missing}"):
        mechprobe.RunConfig(device_map="auto", max_memory={missing: "1GiB"})
    mechprobe.RunConfig(device_map="auto", max_memory={"cpu": "2GiB", "disk": "9GiB"})

# --- models and caches --------------------------------------------------------------------------------

def test_a_seq2seq_model_is_named_not_blamed(tmp_path, bpe_gpt2_dir):
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    model = tmp_path / "t5"
    T5ForConditionalGeneration(T5Config(vocab_size=600, d_model=32, d_ff=64, num_layers=1,
                                        num_heads=2, d_kv=16)).save_pretrained(model)
    AutoTokenizer.from_pretrained(bpe_gpt2_dir).save_pretrained(model)
    line = refused("probe", "--model", model, "--k", "0", "--out", tmp_path / "o", "--device", "cpu",
                   words=["T5Config", "not a causal"])
    assert "intact" not in line


def test_a_chat_template_that_raises_is_one_line(tmp_path, bpe_gpt2_dir):
    from transformers import AutoTokenizer

    from mechprobe.cli import UserError
    from mechprobe.tasks.prompts import chat_frame

    tokenizer = AutoTokenizer.from_pretrained(bpe_gpt2_dir)
    tokenizer.chat_template = "{{ raise_exception('no system turns') }}"
    with pytest.raises(UserError, match="TextConfig.prompt plain"):
        chat_frame(tokenizer, [], "?")


def test_features_as_a_file_is_refused_before_work(tmp_path, small_finetuned):
    out = tmp_path / "o"
    out.mkdir()
    (out / "features").write_text("mine")
    refused("probe", "--model", small_finetuned / "model", "--n-examples", "16", "--device", "cpu",
            "--out", out, "--force", words=["features", "--feature-cache off"])
    assert (out / "features").read_text() == "mine"


@pytest.mark.parametrize("tamper", ["layers", "nan", "short"])
def test_a_tampered_feature_cache(tmp_path, small_finetuned, tamper):
    out = tmp_path / "o"
    common = ["--model", small_finetuned / "model", "--n-examples", "16", "--device", "cpu",
              "--out", out]
    code, first, err = cli("probe", *common)
    assert code == 0, err
    [stored] = (out / "features").iterdir()
    with np.load(stored) as arrays:
        arrays = dict(arrays)
    if tamper == "layers":
        arrays["features"] = arrays["features"][:, :1]
    elif tamper == "nan":
        arrays["features"] = np.full_like(arrays["features"], np.nan)
    else:
        arrays["predicted"] = arrays["predicted"][:3]
    with open(stored, "wb") as f:
        np.savez(f, **arrays)
    refused("probe", *common, "--feature-cache", "strict", words=["damaged", "strict"])
    code, again, err = cli("probe", *common)     # not strict: recomputed, same numbers
    assert code == 0, err and "recomputing" in again
    summary = [line for line in first.splitlines() if line.startswith("min01")]
    assert summary and summary == [line for line in again.splitlines() if line.startswith("min01")]


def test_a_missing_hub_id_without_offline_mode_is_one_line(tmp_path, monkeypatch):
    """No retries page: one request, then one line (no network here, or no such model)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))   # an empty cache
    refused("probe", "--model", "nobody/no-such-model", "--k", "1", "--out", tmp_path / "o",
            words=["nobody/no-such-model"])
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("wrapper", ["run_finetune_gpt2.sh", "run_probing_gpt2.sh",
                                     "run_knockout_gpt2.sh"])
def test_extra_flags_are_passed_as_written(tmp_path, wrapper):
    """$EXTRA is split into flags but never matched against file names (`*` stays `*`)."""
    import os
    import subprocess
    from pathlib import Path

    echo = tmp_path / "python"
    echo.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    echo.chmod(0o755)
    repo = Path(__file__).parent.parent
    env = {**os.environ, "PYTHON": str(echo), "EXTRA": "--layers * --note ?", "TASKS": "min01",
           "OUT": str(tmp_path / "out"), "FINETUNED": str(tmp_path / "ft")}
    done = subprocess.run(["bash", str(repo / wrapper)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    args = done.stdout.splitlines()
    assert "*" in args and "?" in args, args
