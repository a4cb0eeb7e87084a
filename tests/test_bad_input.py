"""Hostile and mistaken input, in-process: one line, exit 2, nothing of the user's lost or run.

docs/ROBUSTNESS.md lists these cases and what the user sees."""

import json
import os
import pickle

import pytest
from conftest import SMALL_TINY, refused
from conftest import run_cli as cli

from mechprobe.outputs import MARKER, PARTIAL, output_dir, write_json


def snapshot(folder):
    """Every path below `folder` with its bytes (None for folders)."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            found[os.path.relpath(os.path.join(root, name), folder)] = None
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                found[os.path.relpath(os.path.join(root, name), folder)] = f.read()
    return found


@pytest.fixture
def foreign(tmp_path):
    """A user's folder with a note and a subfolder: nothing in it may be lost."""
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "sub" / "data.csv").write_text("1,2\n")
    return folder


class Payload:
    """A pickle that creates a file when loaded: proof that code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


# --- 1. data loss ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["arc"], ["proofwriter", "--n-theories", "15"]])
def test_a_users_folder_is_refused_and_kept(foreign, argv):
    before = snapshot(foreign)
    refused("make_data", *argv, "--out", foreign, words=["--force", "notes.txt"])
    assert snapshot(foreign) == before


def test_llama_into_a_users_folder(generated, foreign):
    before = snapshot(foreign)
    refused("make_data", "llama", "--data", generated / "data", "--out", foreign, words=["--force"])
    assert snapshot(foreign) == before
    # --force writes the model beside the user's files and deletes none of them.
    code, _, err = cli("make_data", "llama", "--data", generated / "data", "--out", foreign, "--force")
    assert code == 0, err
    after = snapshot(foreign)
    assert {k: v for k, v in after.items() if k in before} == before
    assert "config.json" in after
    # Still the user's folder: the marker says so and lists what this tool wrote there.
    marker = json.loads(after[MARKER])
    assert marker["users_folder"] and "config.json" in marker["files"]
    assert "notes.txt" not in marker["files"]
    refused("make_data", "llama", "--data", generated / "data", "--out", foreign, words=["--force"])


def test_our_own_output_is_replaced(tmp_path):
    out = tmp_path / "arc"
    assert cli("make_data", "arc", "--out", out)[0] == 0
    (out / "reasoning_annotated_dev.jsonl").write_text("stale\n")
    assert cli("make_data", "arc", "--out", out)[0] == 0
    assert (out / "reasoning_annotated_dev.jsonl").read_text() != "stale\n"


def test_an_existing_file_as_out_is_untouched(tmp_path):
    target = tmp_path / "results"
    target.write_text("keep me\n")
    refused("make_data", "arc", "--out", target, words=["is a file"])
    refused("make_data", "arc", "--out", target / "inner", words=["is a file"])
    assert target.read_text() == "keep me\n"
    assert sorted(os.listdir(tmp_path)) == ["results"]  # no results.old, no temporary files


@pytest.mark.parametrize("argv", [["make_data", "arc"], ["make_data", "proofwriter", "--n-theories", "15"],
                                  ["finetune_gpt2", *SMALL_TINY], ["attn_visual", "--model", "tiny"],
                                  ["probe", "--k", "1"]])
def test_an_empty_out_never_touches_the_working_directory(tmp_path, monkeypatch, foreign, argv):
    """`--out ''` once removed the working directory (abspath('') is the cwd, taken for a folder the
    failed run had created)."""
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    refused(*argv, "--out", "", words=["empty"])
    assert snapshot(tmp_path) == before


def test_dotdot_after_a_missing_folder_is_refused(tmp_path, monkeypatch, foreign):
    """'nope/../mine' does not exist for the kernel (nope is missing), but abspath() names the
    user's folder: it was written into without --force, and would have been removed on failure."""
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    for out in ("nope/..", "nope/../mine", "nope/../new"):
        refused("make_data", "arc", "--out", out, words=["'..'"])
    refused("probe", "--k", "1", "--dump-examples", "nope/../d.jsonl", words=["'..'"])
    assert snapshot(tmp_path) == before


def test_a_dump_into_an_unwritable_folder_is_one_line():
    """/proc takes the create of a temporary file but keeps nothing: the rename failed with a
    traceback after the work was done."""
    refused("probe", "--k", "1", "--dump-examples", "/proc/x.jsonl", words=["cannot write"])


def test_a_dangling_symlink_as_out_is_kept(tmp_path):
    """A symbolic link to nothing was removed as if the failed run had created it."""
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    refused("make_data", "arc", "--out", link, words=["symbolic link"])
    assert link.is_symlink() and os.listdir(tmp_path) == ["link"]


# --- 2. no pickle from a user's folder --------------------------------------------------------

FINETUNE = ["--task", "min01", "--n-train", "256", "--n-eval", "32", "--steps", "4", "--eval-every",
            "2", "--batch-size", "32", "--device", "cpu", *SMALL_TINY]


def test_a_crafted_checkpoint_never_runs(tmp_path):
    out = tmp_path / "run"
    code, _, err = cli("finetune_gpt2", *FINETUNE, "--out", out, "--stop-after", "2")
    assert code == 130 and "resume" in err
    state = out / "checkpoint" / "state.pt"
    assert state.is_file()
    pwned = tmp_path / "pwned"
    with open(state, "wb") as f:
        pickle.dump({"fingerprint": Payload(pwned)}, f)
    refused("finetune_gpt2", *FINETUNE, "--out", out, words=["--restart", str(state)])
    assert not pwned.exists()
    code, _, err = cli("finetune_gpt2", *FINETUNE, "--out", out, "--restart")
    assert code == 0, err
    assert json.loads((out / "results.json").read_text())["steps"] == 4


def test_an_interruption_before_the_first_checkpoint_says_a_rerun_starts_over(tmp_path):
    """Stopped before the first validation saved a checkpoint, the run used to advise resuming,
    and the rerun silently started over."""
    out = tmp_path / "run"
    code, _, err = cli("finetune_gpt2", *FINETUNE, "--out", out, "--stop-after", "1")
    assert code == 130 and not (out / "checkpoint").exists()
    assert err.strip().splitlines()[-1] == ("interrupted before the first checkpoint was saved: a "
                                            "rerun of the command starts over from the beginning")
    code, _, err = cli("finetune_gpt2", *FINETUNE, "--out", out)
    assert code == 0, err
    assert json.loads((out / "results.json").read_text())["resumed_from_step"] is None

def test_a_resumed_checkpoint_loads_without_pickle(tmp_path):
    """The checkpoint a real run writes is readable with weights_only=True."""
    import torch

    out = tmp_path / "run"
    cli("finetune_gpt2", *FINETUNE, "--out", out, "--stop-after", "2")
    state = torch.load(out / "checkpoint" / "state.pt", weights_only=True)
    assert state["step"] == 2 and state["outcome"]["steps"] == 2


def test_a_malicious_pytorch_model_bin(tmp_path, bpe_gpt2_dir):
    model = tmp_path / "model"
    model.mkdir()
    for name in os.listdir(bpe_gpt2_dir):
        if name != "model.safetensors":
            (model / name).write_bytes(open(os.path.join(bpe_gpt2_dir, name), "rb").read())
    pwned = tmp_path / "pwned"
    with open(model / "pytorch_model.bin", "wb") as f:
        pickle.dump(Payload(pwned), f)
    refused("probe", "--model", model, "--k", "0", "--out", tmp_path / "out", "--device", "cpu",
            words=["could not load model"])
    assert not pwned.exists() and not (tmp_path / "out").exists()


# --- 3, 4, 8. outputs checked and numbers validated before any work ------------------------------

@pytest.mark.parametrize("script,argv,words", [
    ("probe", ["--folds", "1"], ["--folds", "from 2 to"]),
    ("probe", ["--neighbors", "0"], ["--neighbors"]),
    ("probe", ["--seed", "-1"], ["--seed"]),
    ("probe", ["--batch-size", "0"], ["--batch-size"]),
    ("probe", ["--batch-size", "-4"], ["--batch-size"]),
    ("probe", ["--icl", "-1"], ["--icl"]),
    ("finetune_gpt2", ["--lr", "nan"], ["--lr", "finite"]),
    ("finetune_gpt2", ["--steps", "0"], ["--steps"]),
    ("finetune_gpt2", ["--steps", "99999999999999999999999"], ["--steps", "from 1 to"]),
    ("finetune_gpt2", ["--n-train", "10000000000"], ["--n-train"]),
    ("finetune_gpt2", ["--model", "tiny", "--tiny-heads", "3"], ["--tiny-heads 3"]),
    ("attn_visual", ["--n-examples", "0"], ["--n-examples"]),
    ("causal", ["--n-examples", "0"], ["--n-examples"]),
    ("corrupt", ["--repeats", "0"], ["--repeats"]),
    ("probe", ["--max-memory", "lots"], ["--max-memory", "DEVICE=SIZE"]),
    ("probe", ["--k", "1", "--max-memory", "cpu=2GiB"], ["--device-map"]),
])
def test_bad_numbers(tmp_path, script, argv, words):
    out = tmp_path / "out"
    refused(script, "--model", "x", "--out", out, *argv, words=words)
    assert not out.exists()


@pytest.mark.parametrize("script", ["attn_visual", "causal", "corrupt"])
def test_model_is_required(tmp_path, script):
    refused(script, "--out", tmp_path / "o", words=["--model"])
    assert not (tmp_path / "o").exists()


def test_n_theories_is_bounded(tmp_path):
    refused("make_data", "proofwriter", "--out", tmp_path / "d", "--n-theories", "1000000000000",
            words=["--n-theories"])


def test_out_paths_checked_before_work(tmp_path, small_finetuned):
    model = small_finetuned / "model"
    afile = tmp_path / "afile"
    afile.write_text("x")
    common = ["--model", model, "--n-examples", "16", "--device", "cpu"]
    refused("probe", *common, "--out", afile, words=["is a file"])
    refused("probe", *common, "--out", afile / "sub", words=["is a file"])
    refused("probe", *common, "--out", tmp_path / "o", "--dump-examples", tmp_path, words=["folder"])
    refused("probe", *common, "--out", tmp_path / "o", "--dump-examples", tmp_path / "no" / "x.jsonl",
            words=["does not exist"])
    refused("probe", *common, "--out", tmp_path / "o", "--dump-examples", afile,
            words=["--force"])  # a file we did not write is not overwritten
    assert afile.read_text() == "x" and not (tmp_path / "o").exists()


def test_too_many_neighbours_is_recorded_not_silent(tmp_path, small_finetuned):
    out = tmp_path / "out"
    code, printed, err = cli("probe", "--model", small_finetuned / "model", "--n-examples", "16",
                             "--device", "cpu", "--neighbors", "100000", "--out", out)
    assert code == 0, err
    used = json.loads((out / "results.json").read_text())["neighbors_used"]
    assert 0 < used["useful"] < 100000 and "note: --neighbors 100000" in printed


def test_a_failed_probe_leaves_no_dump(tmp_path, small_finetuned):
    out, dump = tmp_path / "out", tmp_path / "examples.jsonl"
    refused("probe", "--model", small_finetuned / "model", "--n-examples", "16", "--device", "cpu",
            "--layers", "0-99", "--out", out, "--dump-examples", dump, words=["--layers"])
    assert not out.exists() and not dump.exists()


def test_layers_reversed_is_named(tmp_path, small_finetuned):
    refused("probe", "--model", small_finetuned / "model", "--n-examples", "16", "--device", "cpu",
            "--layers", "1-0", "--out", tmp_path / "o", words=["reversed", "0-1"])


def test_causal_list_len_follows_the_list(tmp_path, small_finetuned):
    refused("causal", "--model", small_finetuned / "model", "--list-len", "3", "--device", "cpu",
            "--out", tmp_path / "o", words=["--list-len"])
    # A number set the model was not trained on is named as such, not blamed on its task.json.
    line = refused("causal", "--model", small_finetuned / "model", "--num-set", "2", "--device",
                   "cpu", "--out", tmp_path / "o", words=["--num-set 2", "fine-tuned on 512"])
    assert "delete" not in line
    from mechprobe.analysis.causal import case_positions

    assert case_positions(16) == (8, 12) and case_positions(10) == (5, 7)


# --- 6, 10, 11. models that cannot be loaded ------------------------------------------------------

def copy_model(source, target):
    target.mkdir()
    for name in os.listdir(source):
        if os.path.isfile(os.path.join(source, name)):
            (target / name).write_bytes(open(os.path.join(source, name), "rb").read())
    return target


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing"])
def test_damaged_weights(tmp_path, small_finetuned, damage):
    model = copy_model(small_finetuned / "model", tmp_path / "model")
    weights = model / "model.safetensors"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "garbage":
        weights.write_bytes(b"\x00" * 64)
    else:
        weights.unlink()
    refused("probe", "--model", model, "--out", tmp_path / "o", "--device", "cpu",
            words=[str(model)])
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"k": "one"}',
                                     '{"k": 1, "numbers": [10000, 10001]}'])
def test_malformed_task_json(tmp_path, small_finetuned, content):
    model = copy_model(small_finetuned / "model", tmp_path / "model")
    (model / "task.json").write_text(content)
    refused("probe", "--model", model, "--out", tmp_path / "o", "--device", "cpu",
            words=["task.json"])


def test_a_config_that_loads_but_cannot_run(tmp_path, small_finetuned):
    model = copy_model(small_finetuned / "model", tmp_path / "model")
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "n_layer": -1}))
    refused("probe", "--model", model, "--out", tmp_path / "o", "--device", "cpu",
            words=["damaged"])
    assert not (tmp_path / "o").exists()


def test_a_missing_local_path_fails_fast(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    refused("probe", "--model", "runs/nope", "--out", "o", words=["does not exist"])
    refused("probe", "--model", "nobody/no-such-model", "--out", "o", words=["cache"])


def test_an_encoder_is_not_probed_as_causal(tmp_path, bpe_gpt2_dir):
    from transformers import AutoTokenizer, BertConfig, BertLMHeadModel

    model = tmp_path / "bert"
    BertLMHeadModel(BertConfig(vocab_size=600, hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=2, intermediate_size=64)).save_pretrained(model)
    AutoTokenizer.from_pretrained(bpe_gpt2_dir).save_pretrained(model)
    refused("probe", "--model", model, "--k", "0", "--out", tmp_path / "o", "--device", "cpu",
            words=["not a causal"])


# --- 7, 9. two runs, killed runs ---------------------------------------------------------------------

def test_a_second_run_into_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "arc"
    with output_dir(str(out), command="make_data.py arc"):  # a run in progress holds the lock
        refused("make_data", "arc", "--out", out, words=["another run"])
    assert cli("make_data", "arc", "--out", out)[0] == 0


def test_a_refused_second_run_leaves_the_first_runs_files(tmp_path):
    """The second run removed the first one's *.partial files before finding the lock taken, so
    the first run died with a FileNotFoundError traceback."""
    out = tmp_path / "pw"
    with output_dir(str(out), command="make_data.py proofwriter"):
        in_progress = out / f".CWA.x1{PARTIAL}"
        in_progress.mkdir()
        refused("make_data", "proofwriter", "--n-theories", "15", "--out", out, words=["another run"])
        assert in_progress.is_dir()


def test_leftovers_of_a_killed_run_are_removed(tmp_path):
    out = tmp_path / "arc"
    assert cli("make_data", "arc", "--out", out)[0] == 0
    (out / f".results.json.x1{PARTIAL}").write_text("half")
    (out / f".CWA.x2{PARTIAL}").mkdir()
    assert cli("make_data", "arc", "--out", out)[0] == 0
    assert not [name for name in os.listdir(out) if name.endswith(PARTIAL)]


def test_a_failed_run_leaves_the_folder_as_it_was(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    with pytest.raises(RuntimeError):
        with output_dir(str(out), command="test"):
            write_json(str(out / "results.json"), {})
            raise RuntimeError("boom")
    assert os.listdir(out) == []
    with pytest.raises(RuntimeError):
        with output_dir(str(tmp_path / "new" / "deeper"), command="test"):
            raise RuntimeError("boom")
    assert not (tmp_path / "new").exists()


# --- 5, 8. data files ------------------------------------------------------------------------------

@pytest.fixture
def release(tmp_path):
    """A small generated ProofWriter release: (root, its depth-1 test file)."""
    root = tmp_path / "pw"
    assert cli("make_data", "proofwriter", "--out", root, "--n-theories", "15")[0] == 0
    return root, root / "CWA" / "depth-1" / "meta-test.jsonl"


def dump_refused(tmp_path, task, data, words):
    dump = tmp_path / "dump.jsonl"
    refused("probe", "--task", task, "--data", data, "--dump-examples", dump, words=words)
    assert not dump.exists()


def test_release_files_with_bad_bytes_or_fields(tmp_path, release):
    root, path = release
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b"\xff\xfe broken\n")
    dump_refused(tmp_path, "proofwriter", root, [f"{path}:2", "UTF-8"])
    record = json.loads(lines[0])
    for question in record["questions"].values():
        question["QDep"] = "one"
    path.write_text(json.dumps(record) + "\n")
    dump_refused(tmp_path, "proofwriter", root, [f"{path}:1", "ProofWriter theory record"])


def test_duplicate_and_missing_questions(tmp_path, release):
    root, path = release
    first = path.read_text().splitlines()[0]
    for depth in ("0", "1", "2", "3", "5"):
        (root / "CWA" / f"depth-{depth}" / "meta-test.jsonl").write_text("")
    path.write_text(first + "\n" + first + "\n")
    dump_refused(tmp_path, "proofwriter", root, ["appears twice"])
    path.write_text("")
    dump_refused(tmp_path, "proofwriter", root, ["holds no question"])


@pytest.mark.parametrize("content", ["[]", '{"d1": []}', '{"1": {"a": 1}}'])
def test_preprocessed_files_of_another_shape(tmp_path, content):
    for task in ("proofwriter", "arc"):
        folder = tmp_path / task
        folder.mkdir(exist_ok=True)
        (folder / "test.json").write_text(content)
        dump_refused(tmp_path, task, folder, ["not a preprocessed"])


@pytest.mark.parametrize("field,value", [("answer", ""), ("options", ["", "B) x"]),
                                         ("textual_logical_units", [])])
def test_arc_records_with_empty_fields(tmp_path, field, value):
    from mechprobe.tasks.arc import SPLITS

    shipped = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                           "arc_offline")
    folder = tmp_path / "arc"
    folder.mkdir()
    for split in SPLITS:
        name = f"reasoning_annotated_{split}.jsonl"
        (folder / name).write_text(open(os.path.join(shipped, name)).read())
    path = folder / "reasoning_annotated_test.jsonl"
    record = json.loads(path.read_text().splitlines()[0])
    record[field] = value
    path.write_text(json.dumps(record) + "\n")
    dump_refused(tmp_path, "arc", folder, [f"{path}:1"])
