"""Nothing of the user's lost: which command owns a folder, --force at any depth, clean-up of
exactly what a run created, dump targets, file modes, and weights that load whole or not at all.

docs/ROBUSTNESS.md states the rules; mechprobe/outputs.py keeps them."""

import json
import os
import stat

import pytest
from conftest import refused
from conftest import run_cli as cli
from test_bad_input import copy_model, snapshot

from mechprobe.outputs import MARKER, atomic_path, discard, make_dirs, output_dir, write_json


@pytest.fixture
def mydata(tmp_path):
    """A user's own data file in the documented jsonl schema (what --dump-examples writes)."""
    path = tmp_path / "mydata.jsonl"
    row = {"id": "q1", "statements": ["a is big.", "b is small."], "question": "a is big?",
           "useful": [1, 0], "depth": [0, None], "answer": "True", "choices": ["True", "False"]}
    path.write_text(json.dumps(row) + "\n" + json.dumps({**row, "id": "q2"}) + "\n")
    return path


def kept(path, before):
    assert path.read_bytes() == before


# --- dump targets: an existing file is never replaced without --force, the input never -------

def test_a_dump_never_replaces_a_users_data_file(tmp_path, mydata):
    before = mydata.read_bytes()
    refused("probe", "--k", "1", "--n-examples", "8", "--dump-examples", mydata, words=["--force"])
    kept(mydata, before)
    root = tmp_path / "pw"
    assert cli("make_data", "proofwriter", "--out", root, "--n-theories", "15")[0] == 0
    refused("probe", "--task", "proofwriter", "--data", root, "--dump-examples", mydata,
            words=["exists", "--force"])
    kept(mydata, before)
    # --force replaces a file that is not the run's input.
    code, _, err = cli("probe", "--k", "1", "--n-examples", "8", "--dump-examples", mydata, "--force")
    assert code == 0, err
    assert mydata.read_bytes() != before


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_a_dump_never_rewrites_its_own_input(mydata, force):
    before = mydata.read_bytes()
    refused("probe", "--task", "jsonl", "--data", mydata, "--dump-examples", mydata, *force,
            words=["--data"])
    kept(mydata, before)
    link = mydata.parent / "same.jsonl"     # the same file under another name
    link.symlink_to(mydata)
    refused("probe", "--task", "jsonl", "--data", link, "--dump-examples", mydata, *force,
            words=["--data"])
    kept(mydata, before)


# --- another command's folder ----------------------------------------------------------------------

def test_probing_into_a_finetuning_folder_is_refused(tmp_path, small_finetuned):
    ft = tmp_path / "ft"
    with output_dir(str(ft), command="finetune_gpt2.py"):
        write_json(str(ft / "results.json"), {"test_accuracy": 0.9})
    before = snapshot(ft)
    refused("probe", "--model", small_finetuned / "model", "--n-examples", "16", "--device", "cpu",
            "--out", ft, words=["finetune_gpt2.py", "--force"])
    assert snapshot(ft) == before
    # The fine-tuning command itself may write there again.
    with output_dir(str(ft), command="finetune_gpt2.py"):
        pass


def test_a_folder_marked_by_an_older_version_is_still_ours(tmp_path):
    out = tmp_path / "arc"
    out.mkdir()
    (out / MARKER).write_text('{"written_by": "MechanisticProbe"}\n')
    (out / "results.json").write_text("{}")
    assert cli("make_data", "arc", "--out", out)[0] == 0
    assert json.loads((out / MARKER).read_text())["command"] == "make_data.py arc"


# --- --force and replaced sub-folders keep the user's files at any depth ---------------------------

def test_force_keeps_the_users_files_inside_our_sub_folders(tmp_path):
    mine = tmp_path / "mine"
    (mine / "CWA" / "depth-1").mkdir(parents=True)
    (mine / "CWA" / "notes.txt").write_text("mine\n")
    (mine / "CWA" / "depth-1" / "extra.jsonl").write_text("{}\n")
    before = snapshot(mine)
    argv = ["make_data", "proofwriter", "--out", mine, "--n-theories", "15"]
    refused(*argv, words=["--force"])
    assert snapshot(mine) == before
    for _ in range(2):   # written into with --force, then again (the CWA/ swapped in whole)
        code, _, err = cli(*argv, "--force")
        assert code == 0, err
        after = snapshot(mine)
        assert {k: v for k, v in after.items() if k in before} == before
        assert "CWA/depth-1/meta-test.jsonl" in after


def test_a_replaced_folder_keeps_names_we_did_not_write(tmp_path):
    out = tmp_path / "run"
    with output_dir(str(out), command="test"):
        with atomic_path(str(out / "model"), folder=True) as tmp:
            open(os.path.join(tmp, "config.json"), "w").write("{1}")
            open(os.path.join(tmp, "old.bin"), "w").write("old")
    (out / "model" / "mine.txt").write_text("mine")
    (out / "model" / "sub").mkdir()
    (out / "model" / "sub" / "deep.txt").write_text("deep")
    with output_dir(str(out), command="test"):
        with atomic_path(str(out / "model"), folder=True) as tmp:
            open(os.path.join(tmp, "config.json"), "w").write("{2}")
    assert sorted(os.listdir(out / "model")) == ["config.json", "mine.txt", "sub"]
    assert (out / "model" / "config.json").read_text() == "{2}"     # ours, replaced
    assert (out / "model" / "sub" / "deep.txt").read_text() == "deep"


def test_discard_removes_only_what_we_wrote(tmp_path):
    out = tmp_path / "run"
    with output_dir(str(out), command="test"):
        make_dirs(str(out / "checkpoint"))
        write_json(str(out / "checkpoint" / "state.json"), {})
    (out / "checkpoint" / "mine.txt").write_text("mine")
    with output_dir(str(out), command="test"):
        discard(str(out / "checkpoint"))
    assert os.listdir(out / "checkpoint") == ["mine.txt"]


# --- a failed or interrupted run removes exactly what it created -----------------------------------

@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_clean_up_keeps_what_the_user_saved_meanwhile(tmp_path, error):
    out = tmp_path / "run"
    with output_dir(str(out), command="test"):
        write_json(str(out / "results.json"), {"first": True})
    before = snapshot(out)
    with pytest.raises(error):
        with output_dir(str(out), command="test"):
            write_json(str(out / "results.json"), {"second": True})    # replaced: kept
            write_json(str(out / "figure.json"), {})                     # created: removed
            (out / "notes.txt").write_text("saved by the user during the run")
            raise error
    after = snapshot(out)
    assert after.pop("notes.txt") == b"saved by the user during the run"
    assert set(after) == set(before)


def test_clean_up_of_a_new_folder_keeps_what_the_user_saved(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(RuntimeError):
        with output_dir(str(out), command="test"):
            write_json(str(out / "results.json"), {})
            (out / "notes.txt").write_text("mine")
            raise RuntimeError
    assert os.listdir(out) == ["notes.txt"]


# --- file modes follow the umask -------------------------------------------------------------------

def test_outputs_are_written_with_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "run"
        with output_dir(str(out), command="test"):
            write_json(str(out / "results.json"), {})
            with atomic_path(str(out / "model"), folder=True):
                pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((out / "results.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((out / "model").stat().st_mode) == 0o755


# --- a full disk is one line, nothing half-written -------------------------------------------------

@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB file system (tmpfs; needs root, as in CI): a real full disk."""
    import subprocess

    folder = tmp_path / "disk"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_is_one_line_and_leaves_nothing(tiny_disk):
    refused("make_data", "proofwriter", "--out", tiny_disk / "pw", "--n-theories", "200",
            words=["no space left", "--out"])
    assert os.listdir(tiny_disk) == []


# --- weights load whole or not at all --------------------------------------------------------------

@pytest.mark.parametrize("keep", ["some", "none", "extra"])
def test_partial_weights_are_refused(tmp_path, small_finetuned, keep):
    import torch
    from safetensors.torch import load_file, save_file

    model = copy_model(small_finetuned / "model", tmp_path / "model")
    tensors = load_file(model / "model.safetensors")
    if keep == "some":
        tensors = {k: v for k, v in tensors.items() if ".h.1." not in k}
    elif keep == "none":
        tensors = {"unrelated.weight": torch.zeros(2)}
    else:
        tensors["transformer.h.9.mlp.c_fc.weight"] = torch.zeros(2)
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    line = refused("probe", "--model", model, "--out", tmp_path / "o", "--device", "cpu",
                   words=["do not match", "random" if keep != "extra" else "tensors"])
    assert ("transformer.h.1" in line) == (keep == "some")
    assert not (tmp_path / "o").exists()


def test_partial_weights_load_when_allowed_said_loudly(tmp_path, small_finetuned, capsys):
    from safetensors.torch import load_file, save_file

    from mechprobe.models import load_pretrained

    model = copy_model(small_finetuned / "model", tmp_path / "model")
    tensors = {k: v for k, v in load_file(model / "model.safetensors").items() if ".h.1." not in k}
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    load_pretrained(str(model), allow_partial=True)
    assert "RANDOM" in capsys.readouterr().err
